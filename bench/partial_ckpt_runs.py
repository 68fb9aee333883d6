"""Measured runs of partial (every_n_layers > 1) and offloaded gradient checkpointing, each in a fresh process
(a fork of this one where it can), all within one device call:

    python bench/partial_ckpt_runs.py [--out calibration/partial_ckpt] [--budget-s 390] [--only 0,3] [--list]
    python bench/partial_ckpt_runs.py --predict FILE     # the validation runs' predictions, before measuring

Three architectures (llama-3.2-1b, qwen2.5-1.5b, gemma-2-2b), every_n_layers 2/3/4 with and without offload,
beside full and no checkpointing of the same plans, through TRL 1.16's SFTTrainer and a few through the plain
Trainer; 6 steps each, so the step times (median of steps 2-6) serve the speed side. Each run goes through
bench/stack_runs.py's run_one (vramplan.calibrate.measure_stack), with the prediction made here before it and
the number of layers the Trainer left checkpointed in the record. Records are appended to OUT/<gpu>.jsonl as they
land; runs already there are skipped (resumable), and a run that would not finish inside --budget-s is left for
the next call. These runs decide what goes into profiles/checkpointing_modes.json.
"""
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from stack_runs import (  # noqa: E402
    StackRun, checkpoint, gpu_name, preload_stack, run_one, run_validated_set, slug, stack_plan)
from vramplan.plan import TrainPlan  # noqa: E402
from vramplan.profiles import checkpointing  # noqa: E402

STEPS = 6
FIRST_GUESS_S = 25.0
"""Seconds a small-model run takes on an H200 (stack import excluded), until the first run says otherwise."""


@dataclass(frozen=True)
class CkptRun:
    run: StackRun
    validation: bool = False
    """Predicted (--predict) before any of these runs, to check the model on runs it was not looked at with."""


def _plan(batch: int, seq: int, every: int | None, offload: bool = False) -> TrainPlan:
    """every: None turns checkpointing off; 1 is full checkpointing."""
    if every is None:
        return TrainPlan(batch=batch, seq=seq, gradient_checkpointing=False)
    return TrainPlan(batch=batch, seq=seq, checkpoint_every=every, checkpoint_offload=offload)


def _label(plan: TrainPlan) -> str:
    if not plan.gradient_checkpointing:
        return "no checkpointing"
    return (f"checkpointing every {plan.checkpoint_every}" if plan.checkpoint_every > 1 else "full checkpointing") \
        + (", offloaded" if plan.checkpoint_offload else "")


def _run(model: str, batch: int, seq: int, every: int | None, offload: bool = False, trainer: str = "trl",
         validation: bool = False) -> CkptRun:
    plan = _plan(batch, seq, every, offload)
    why = f"partial ckpt: {trainer} b{batch}x{seq} {_label(plan)}"
    return CkptRun(StackRun(model, why, plan, trainer=trainer, steps=STEPS), validation)


def runs() -> list[CkptRun]:
    """Baselines (full, none) beside the modes on each architecture; the gemma-2-2b runs and the plain Trainer's
    are the validation subset."""
    return [
        _run("llama-3.2-1b", 4, 1024, 1), _run("llama-3.2-1b", 4, 1024, None),
        _run("llama-3.2-1b", 4, 1024, 2), _run("llama-3.2-1b", 4, 1024, 4),
        _run("llama-3.2-1b", 4, 1024, 2, offload=True), _run("llama-3.2-1b", 4, 1024, 1, offload=True),
        _run("qwen2.5-1.5b", 2, 2048, 1), _run("qwen2.5-1.5b", 2, 2048, 3),
        _run("qwen2.5-1.5b", 2, 2048, 3, offload=True),
        _run("gemma-2-2b", 4, 1024, 1, validation=True), _run("gemma-2-2b", 4, 1024, 2, validation=True),
        _run("gemma-2-2b", 4, 1024, 4, offload=True, validation=True),
        _run("llama-3.2-1b", 4, 1024, 3, trainer="hf", validation=True),
        _run("qwen2.5-1.5b", 2, 2048, 2, offload=True, trainer="hf", validation=True),
    ]


def open_gate() -> None:
    """These runs check the gated modes, so their predictions are made with profiles/checkpointing_modes.json's
    gate open (in this process only)."""
    checkpointing.measured_checkpointing_modes = lambda: frozenset(checkpointing.MODES)


def predict(items: list[CkptRun], profile: str, nvml_name: str) -> dict:
    """Predicted peaks and step time of each run, keyed by the run key it will have on the GPU NVML names
    nvml_name (the gate opened for them)."""
    from vramplan.memory.activations import checkpointed_layers
    from vramplan.planner import Planner
    from vramplan.profiles import find_gpu, find_model
    from vramplan.speed import predicted_step_seconds
    from vramplan.speed_fits import shipped_speed_params
    from vramplan.store.calibrations import Calibrations
    open_gate()
    gpu = find_gpu(profile)
    planner = Planner(gpu, Calibrations.package())  # the shipped fits alone: nothing of the developer's own
    out = {}
    for m in items:
        r, model = m.run, find_model(m.run.model)
        plan = stack_plan(r)
        b = planner.estimate(model, plan)
        out[r.key(nvml_name)] = {
            "model": r.model, "why": r.why, "validation": m.validation, "peak_bytes": b.peak_bytes,
            "train_peak_bytes": b.train_peak_bytes, "peak_phase": b.peak_phase,
            "peak_allocated_bytes": b.peak_allocated_bytes, "required_bytes": b.required_bytes,
            "checkpointed_layers": checkpointed_layers(model, plan), "layers": model.layers,
            "step_s": predicted_step_seconds(model, gpu, plan, b, shipped_speed_params(gpu))}
    return out


class Clock:
    """Seconds the next run will take: the mean of the runs so far, a first guess before any."""

    def __init__(self, first_guess_s: float = FIRST_GUESS_S):
        self.walls: list[float] = []
        self.first_guess_s = first_guess_s

    def estimate(self) -> float:
        return sum(self.walls) / len(self.walls) if self.walls else self.first_guess_s


def summary(record: dict, predicted: dict) -> str:
    """One progress line: status, measured against predicted peak and step time, checkpointed layers."""
    peak = record.get("nvml", {}).get("peak", 0)
    out = f"{record['status']}, NVML peak {peak / 2**30:.2f} GiB (predicted {predicted['peak_bytes'] / 2**30:.2f})"
    if record.get("step_time_s"):
        out += f", step {record['step_time_s']:.3f} s (predicted {predicted['step_s']:.3f})"
    if record.get("checkpointed_layers") is not None:
        out += f", {record['checkpointed_layers']} of {predicted['layers']} layers checkpointed (predicted " \
               f"{predicted['checkpointed_layers']})"
    return out + f", {record['wall_s']:.0f} s " + record.get("error", "")[:300]


def measure(items: list[CkptRun], out: Path, cache: Path, budget_s: float, timeout_s: int, t0: float,
            profile: str = "H200", predict=predict, drop_checkpoints: bool = False) -> int:
    """Measure the runs not yet in OUT/<gpu>.jsonl. drop_checkpoints: delete a model's random-weight checkpoint
    after its last run (runs ordered by model), so that sets of large models fit the disk."""
    gpu = gpu_name()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{slug(gpu)}.jsonl"
    done = {json.loads(line).get("run_key") for line in path.open()} if path.exists() else set()
    todo = [m for m in items if m.run.key(gpu) not in done]
    print(f"{gpu}: {len(items) - len(todo)} of {len(items)} recorded in {path}; {len(todo)} to go", flush=True)
    predicted = predict(todo, profile, gpu)
    t1 = time.time()
    fork = preload_stack()
    print(f"stack imported in {time.time() - t1:.0f} s; runs in " + ("forks of this process (fresh CUDA context "
          "each)" if fork else "fresh interpreters"), flush=True)
    clock = Clock()
    for i, m in enumerate(todo, 1):
        r, key = m.run, m.run.key(gpu)
        est, left = clock.estimate(), budget_s - (time.time() - t0)
        if est > left:
            print(f"stopping: run {i} needs about {est:.0f} s, {left:.0f} s of the budget left; "
                  f"{len(todo) - i + 1} runs left for the next call", flush=True)
            break
        print(f"[{i}/{len(todo)}] {r.model} {r.why}: about {est:.0f} s", flush=True)
        try:
            record = run_one(r, checkpoint(r.model, cache), key, min(timeout_s, int(left)), fork=fork)
        except Exception as exc:  # a checkpoint that cannot be built is a result too; the next run goes on
            record = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:600], "run_key": key,
                      **r.spec(), "wall_s": 0.0}
        record["validation"] = m.validation
        record["predicted"] = predicted[key]
        with path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        clock.walls.append(record["wall_s"])
        print("    " + summary(record, predicted[key]) + f" ({time.time() - t0:.0f} s in)", flush=True)
        if drop_checkpoints and all(n.run.model != r.model for n in todo[i:]):
            shutil.rmtree(cache / r.model, ignore_errors=True)
    return 0


def main() -> int:
    cache = Path(tempfile.gettempdir()) / "vramplan-checkpoints"
    return run_validated_set(__doc__, ROOT / "calibration" / "partial_ckpt", cache, 390.0, runs, predict,
                             lambda items, a, t0: measure(items, Path(a.out), Path(a.cache), a.budget_s, a.timeout,
                                                          t0, profile=a.gpu))


if __name__ == "__main__":
    sys.exit(main())
