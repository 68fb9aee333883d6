"""Training progress on stderr: a bar with the measured tokens/s, the time left and the predicted tokens/s.

On a terminal the bar redraws in place; otherwise (a log file, a pipe) it is a plain line every few steps. stdout
is never written, so `--json` keeps it for its one object.
"""
from __future__ import annotations

import sys
import time

BAR_WIDTH = 24
LINES_WHEN_PIPED = 20
"""Plain lines over a run when stderr is not a terminal (and one at the last step)."""


class Progress:
    """The progress of one run: measured tokens/s over the steps after the first (which builds the optimizer
    state and warms the kernels), and the time left at that pace."""

    def __init__(self, total_steps: int, tokens_per_step: float, predicted_tokens_per_s: float | None = None,
                 stream=None, clock=time.monotonic):
        self.total, self.tokens_per_step, self.predicted = max(1, total_steps), tokens_per_step, predicted_tokens_per_s
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every = max(1, self.total // LINES_WHEN_PIPED)
        self.warm_at: float | None = None
        self.warm_step = 0
        self.loss: float | None = None
        self.drawn = 0  # characters of the bar on the terminal line

    def measured_tokens_per_s(self, step: int, now: float) -> float | None:
        if self.warm_at is None or step <= self.warm_step or now <= self.warm_at:
            return None
        return (step - self.warm_step) * self.tokens_per_step / (now - self.warm_at)

    def line(self, step: int, now: float) -> str:
        done = min(1.0, step / self.total)
        filled = round(done * BAR_WIDTH)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        parts = [f"[{bar}] step {step}/{self.total}"]
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4f}")
        rate = self.measured_tokens_per_s(step, now)
        if rate:
            left = (self.total - step) * self.tokens_per_step / rate
            parts.append(f"{rate:,.0f} tokens/s" + (f" (predicted {self.predicted:,.0f})" if self.predicted else ""))
            parts.append(f"{format_duration(left)} left")
        elif self.predicted:
            parts.append(f"predicted {self.predicted:,.0f} tokens/s")
        return "  ".join(parts)

    def step_end(self, step: int) -> None:
        now = self.clock()
        if self.warm_at is None:  # the first step's end starts the clock
            self.warm_at, self.warm_step = now, step
        if self.tty:
            text = self.line(step, now)
            self.stream.write("\r" + text.ljust(self.drawn) + ("\n" if step >= self.total else ""))
            self.drawn = 0 if step >= self.total else len(text)
        elif step % self.every == 0 or step >= self.total:
            self.stream.write(self.line(step, now) + "\n")
        self.stream.flush()


    def note(self, text: str) -> None:
        """A line of its own (an evaluation's loss): over the bar on a terminal, which the next step redraws."""
        self.stream.write(("\r" + text.ljust(self.drawn) if self.tty else text) + "\n")
        self.drawn = 0
        self.stream.flush()


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def progress_callback(tokens_per_step: float, predicted_tokens_per_s: float | None = None, stream=None):
    """The Progress as a TrainerCallback (the total comes from the trainer's state at train begin); it replaces
    the Trainer's PrinterCallback, whose log dicts would break the bar (vramplan.train.run.build_trainer)."""
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        def __init__(self):
            self.progress: Progress | None = None

        def on_train_begin(self, args, state, control, **kw):
            self.progress = Progress(state.max_steps, tokens_per_step, predicted_tokens_per_s, stream)

        def on_log(self, args, state, control, logs=None, **kw):
            if self.progress is not None and logs and "loss" in logs:
                self.progress.loss = logs["loss"]

        def on_step_end(self, args, state, control, **kw):
            if self.progress is not None:
                self.progress.step_end(state.global_step)

        def on_evaluate(self, args, state, control, metrics=None, **kw):
            if self.progress is not None and metrics and "eval_loss" in metrics:
                self.progress.note(f"evaluation after step {state.global_step}: loss {metrics['eval_loss']:.4f}")

    return ProgressCallback()
