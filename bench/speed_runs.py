"""Steady-state step times for the speed model: longer runs, the NVML poller stopped after the first steps, on
architectures from 1B to 14B, each in a fresh process (a fork of this one where it can), resumable across
device calls:

    python bench/speed_runs.py [--out calibration/speed_runs] [--budget-s 540] [--only 0,3] [--list]
    python bench/speed_runs.py --predict FILE --all     # every run's predictions, before measuring
    python bench/speed_runs.py --predict calibration/speed_runs/validation2.json --all --only 27,28,...

The earlier records time 3 to 8 steps with a 2 ms NVML poller running throughout; at the sizes people run, a
QLoRA step is bound by the host launching kernels, and both the short runs and the poller's thread (which may
take the GIL from the launching loop) are in their step times. These runs take STEPS optimizer steps, poll NVML for
the first POLL_STEPS only (the peaks are reached there; later steps keep the allocator's counters), and the
speed model's target is the median of the steps after them (vramplan.calibrate.speed_solve). Two plans are
also run with the poller on throughout, to measure what it costs. Plans are the ones people run through TRL's
SFTTrainer (1.16) and the plain Trainer: micro-batch 1 to 8, 1,024 to 8,192 tokens, checkpointing on and off.
Every run is a validation run: its prediction is committed before it is measured. Runs are ordered by model, and
a model's random-weight checkpoint is deleted after its last run (the 14B checkpoints are 30 GB each).
"""
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from partial_ckpt_runs import CkptRun, measure, predict  # noqa: E402
from stack_runs import StackRun, run_validated_set  # noqa: E402
from vramplan.plan import TrainPlan  # noqa: E402

STEPS = 14
POLL_STEPS = 3


def _run(model: str, batch: int, seq: int, checkpointing: bool = True, trainer: str = "trl",
         poll_all: bool = False, grad_accum: int = 1, steps: int = STEPS) -> CkptRun:
    plan = TrainPlan(batch=batch, seq=seq, gradient_checkpointing=checkpointing, grad_accum=grad_accum)
    why = (f"speed: {trainer} b{batch}x{seq}{f' ga{grad_accum}' if grad_accum > 1 else ''} "
           f"{'checkpointing' if checkpointing else 'no checkpointing'}"
           + (", NVML polled throughout" if poll_all else ""))
    return CkptRun(StackRun(model, why, plan, trainer=trainer, steps=steps,
                            nvml_poll_steps=None if poll_all else POLL_STEPS), validation=True)


def runs() -> list[CkptRun]:
    """Grouped by model (each checkpoint built once, then deleted), the small ones first."""
    return [
        _run("llama-3.2-1b", 1, 1024), _run("llama-3.2-1b", 8, 1024), _run("llama-3.2-1b", 1, 1024, trainer="hf"),
        _run("llama-3.2-1b", 1, 1024, trainer="hf", poll_all=True), _run("llama-3.2-1b", 2, 2048, False),
        _run("qwen2.5-1.5b", 2, 2048), _run("qwen2.5-1.5b", 2, 2048, poll_all=True),
        _run("qwen2.5-1.5b", 1, 4096, False),
        _run("gemma-2-2b", 2, 2048), _run("gemma-2-2b", 1, 1024, trainer="hf"),
        _run("llama-3.2-3b", 4, 2048), _run("llama-3.2-3b", 1, 1024, False),
        _run("qwen3-4b", 2, 2048),
        _run("llama-3.1-8b", 2, 2048), _run("llama-3.1-8b", 4, 4096), _run("llama-3.1-8b", 1, 8192),
        _run("llama-3.1-8b", 1, 2048, trainer="hf"),
        _run("mistral-7b-v0.3", 1, 2048, trainer="hf"), _run("mistral-7b-v0.3", 4, 1024, False),
        _run("qwen2.5-7b", 2, 2048), _run("qwen2.5-7b", 8, 1024),
        _run("gemma-2-9b", 2, 2048),
        _run("qwen2.5-14b", 1, 2048), _run("qwen2.5-14b", 4, 2048),
        _run("mistral-nemo-12b", 2, 4096),
        _run("phi-3-mini", 2, 2048),
        _run("qwen3-8b", 1, 4096),
    ] + second_set()


def second_set() -> list[CkptRun]:
    """Plans none of the runs above measured, predicted by the fit those runs joined (validation2.json), before
    they are measured: 13 architectures, grad accumulation among them, the small ones first."""
    return [
        _run("smollm2-1.7b", 8, 1024), _run("tinyllama-1.1b", 4, 2048), _run("qwen2.5-3b", 4, 2048),
        _run("llama-3.2-3b", 2, 2048, False), _run("phi-4-mini", 2, 2048), _run("gemma-3-4b", 2, 2048),
        _run("qwen2.5-7b", 1, 4096, trainer="hf"), _run("llama-3.1-8b", 8, 2048),
        _run("llama-3.1-8b", 2, 2048, grad_accum=4, steps=8), _run("qwen3-8b", 4, 2048),
        _run("gemma-2-9b", 1, 4096), _run("mistral-nemo-12b", 1, 2048), _run("qwen3-14b", 2, 2048),
        _run("qwen2.5-14b", 2, 4096, trainer="hf"),
    ]


def main() -> int:
    cache = Path(tempfile.gettempdir()) / "vramplan-checkpoints"
    return run_validated_set(__doc__, ROOT / "calibration" / "speed_runs", cache, 540.0, runs, predict,
                             lambda items, a, t0: measure(items, Path(a.out), Path(a.cache), a.budget_s, a.timeout,
                                                          t0, profile=a.gpu, drop_checkpoints=True))


if __name__ == "__main__":
    sys.exit(main())
