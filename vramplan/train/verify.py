"""Verification before the full run: try plans in order of speed; step down on OOM or on a peak over the limit."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..calibrate.records import measured_peak
from ..plan import TrainPlan
from ..units import GiB


@dataclass(frozen=True)
class Trial:
    """What a verification run reports: status 'ok' or 'oom' (or 'error'), and the measured peak."""

    status: str
    peak_bytes: int = 0
    tokens_per_s: float = 0.0
    error: str = ""
    rank_peaks: tuple[int, ...] = ()
    """On several GPUs: each rank's measured peak (peak_bytes is the largest)."""

    @classmethod
    def from_record(cls, record: dict) -> "Trial":
        """A one-GPU verification run's record (the measure worker's)."""
        return cls(record["status"], measured_peak(record), record.get("tokens_per_s", 0.0), record.get("error", ""))


@dataclass
class Verification:
    plan: TrainPlan | None
    trial: Trial | None
    log: list[str] = field(default_factory=list)
    tried: list[tuple[TrainPlan, Trial]] = field(default_factory=list)


def verify(candidates: list[TrainPlan], run: Callable[[TrainPlan], Trial], limit_bytes: int,
           say: Callable[[str], None] = print, capped: bool = False) -> Verification:
    """The first candidate whose real steps finish under limit_bytes. `run` does the real steps. capped: the
    steps ran under an allocator cap of limit_bytes (train --memory-cap), which is then what enforces the limit:
    finishing is passing, as on a card of that size (the NVML peak may pass the cap by the kernel images CUDA
    loads lazily, outside the allocator)."""
    result = Verification(None, None)
    for i, plan in enumerate(candidates):
        trial = run(plan)
        result.tried.append((plan, trial))
        label = f"micro-batch {plan.batch} x {plan.grad_accum}, checkpointing {'on' if plan.gradient_checkpointing else 'off'}, r={plan.rank}"
        if trial.status == "ok" and (capped or trial.peak_bytes <= limit_bytes):
            where = (" (ranks: " + ", ".join(f"{p / GiB:.2f}" for p in trial.rank_peaks) + " GiB)"
                     if len(trial.rank_peaks) > 1 else "")
            within = "under the memory cap of" if capped else "within"
            msg = (f"verified: {label}: peak {trial.peak_bytes / GiB:.2f} GiB {within} {limit_bytes / GiB:.2f} GiB"
                   + where)
            result.log.append(msg)
            say(msg)
            result.plan, result.trial = plan, trial
            return result
        why = ("ran out of memory" if trial.status == "oom" else
               f"peaked at {trial.peak_bytes / GiB:.2f} GiB, over {limit_bytes / GiB:.2f} GiB"
               if trial.status == "ok" else f"failed: {trial.error}")
        nxt = "; stepping down to the next plan" if i + 1 < len(candidates) else "; no plan left"
        msg = f"{label} {why}{nxt}"
        result.log.append(msg)
        say(msg)
        if trial.status == "error":
            break  # not a memory problem: a smaller plan will not fix it
    return result
