"""Measured Mixture-of-Experts QLoRA runs, each in a fresh process, all within one device call:

    python bench/moe_runs.py [--out calibration/moe] [--budget-s 520] [--only 0,3] [--list] [--predict FILE]

Shapes are the catalog's MoE profiles cut to a few layers (a random-weight 30B checkpoint does not fit the
device's disk); each truncated shape is run at two layer counts so the per-layer slope is measured. Checkpoints
are built on the GPU in one process (vramplan.calibrate.build_model --pairs); a shape that changes only the
routing (top-k, router logits) shares its parent's weights and gets its own config.json. Each run goes through
bench/stack_runs.py's run_one (vramplan.calibrate.measure_stack: TRL 1.16 SFTTrainer, or the plain Trainer).
Records are appended to OUT/<gpu>.jsonl as they land; runs already there are skipped (resumable), and a run
that would not finish inside --budget-s is left for the next call.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from stack_runs import (  # noqa: E402
    StackRun, gpu_name, preload_stack, run_one, run_validated_set, slug, stack_plan)
from vramplan.plan import TrainPlan  # noqa: E402
from vramplan.units import GiB  # noqa: E402
from vramplan.workers import worker_command  # noqa: E402

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
GATE_UP_DOWN = ATTENTION + ("gate_proj", "up_proj", "down_proj")
CAP_BYTES = 24 * GiB  # an RTX 4090's memory, as set_per_process_memory_fraction caps the allocator


@dataclass(frozen=True)
class Shape:
    profile: str
    """The catalog profile (profiles/models/NAME.json) the shape is cut from."""
    overrides: dict
    """config.json fields changed from the profile (num_hidden_layers, num_experts_per_tok, ...)."""
    weights_of: str | None = None
    """Another shape with the same weights (same layers): only config.json differs."""


SHAPES = {
    "qwen3-30b-a3b@3L": Shape("qwen3-30b-a3b", {"num_hidden_layers": 3}),
    "qwen3-30b-a3b@6L": Shape("qwen3-30b-a3b", {"num_hidden_layers": 6}),
    "qwen3-30b-a3b@6L-top4": Shape("qwen3-30b-a3b", {"num_hidden_layers": 6, "num_experts_per_tok": 4},
                                   "qwen3-30b-a3b@6L"),
    "mixtral-8x7b@1L": Shape("mixtral-8x7b", {"num_hidden_layers": 1}),
    "mixtral-8x7b@2L": Shape("mixtral-8x7b", {"num_hidden_layers": 2}),
    "mixtral-8x7b@2L-top1": Shape("mixtral-8x7b", {"num_hidden_layers": 2, "num_experts_per_tok": 1},
                                  "mixtral-8x7b@2L"),
    # bf16 (the published checkpoint is fp32): half the disk; after prepare the experts are fp32 either way
    "olmoe-1b-7b@4L": Shape("olmoe-1b-7b", {"num_hidden_layers": 4, "torch_dtype": "bfloat16"}),
    "olmoe-1b-7b@4L-aux": Shape("olmoe-1b-7b", {"num_hidden_layers": 4, "torch_dtype": "bfloat16",
                                                "output_router_logits": True}, "olmoe-1b-7b@4L"),
    "qwen1.5-moe-a2.7b@3L": Shape("qwen1.5-moe-a2.7b", {"num_hidden_layers": 3}),
}


@dataclass(frozen=True)
class MoeRun:
    run: StackRun
    validation: bool = False
    """Predicted before measuring (--predict writes these first)."""


def _p(batch=2, seq=1024, targets="all-linear", dropout=0.0, **kw) -> TrainPlan:
    return TrainPlan(batch=batch, seq=seq, targets=targets, dropout=dropout, **kw)


def _r(shape, why, plan, validation=False, **kw) -> MoeRun:
    return MoeRun(StackRun(shape, why, plan, **kw), validation)


def runs() -> list[MoeRun]:
    """Most telling first: the slope pairs, the 24 GiB cap, each family, the validation set; then tokens, rank and
    stacks again (the first 18 already hold all of it, if the budget stops the call there)."""
    q3, q6, m1, m2, ol, qw = ("qwen3-30b-a3b@3L", "qwen3-30b-a3b@6L", "mixtral-8x7b@1L", "mixtral-8x7b@2L",
                              "olmoe-1b-7b@4L", "qwen1.5-moe-a2.7b@3L")
    nock = dict(gradient_checkpointing=False)
    return [
        _r(q3, "all-linear r16 b2x1024", _p()),
        _r(q6, "all-linear r16 b2x1024", _p()),
        _r(m1, "all-linear r16 b2x1024", _p()),
        _r(m2, "all-linear r16 b2x1024", _p()),
        _r(q6, "24 GiB cap: attention-only b1x1024", _p(1, targets=ATTENTION, dropout=0.05), cap_bytes=CAP_BYTES),
        _r(q6, "24 GiB cap: all-linear b1x1024 no checkpointing", _p(1, **nock), cap_bytes=CAP_BYTES),
        _r(q6, "24 GiB cap: all-linear r16 b2x1024", _p(), cap_bytes=CAP_BYTES),
        _r(ol, "all-linear r16 b2x2048", _p(seq=2048)),
        _r(qw, "validation: all-linear dropout 0.05 b2x1024 (no expert LoRA)", _p(dropout=0.05), True),
        _r(q3, "attention-only dropout 0.05 b2x1024", _p(targets=ATTENTION, dropout=0.05)),
        _r(q6, "attention-only dropout 0.05 b2x1024", _p(targets=ATTENTION, dropout=0.05)),
        _r(q6, "validation: gate/up/down names r32 b2x1024", _p(targets=GATE_UP_DOWN, rank=32), True),
        _r("qwen3-30b-a3b@6L-top4", "validation: top-4 all-linear b2x1024", _p(), True),
        _r("mixtral-8x7b@2L-top1", "validation: top-1 all-linear b2x1024", _p(), True),
        _r("olmoe-1b-7b@4L-aux", "validation: hf output_router_logits (aux loss) all-linear b2x1024", _p(), True,
           trainer="hf"),
        _r(qw, "validation: hf all-linear b4x2048 no checkpointing", _p(4, 2048, dropout=0.05, **nock), True,
           trainer="hf"),
        _r(ol, "all-linear r16 b2x1024 no checkpointing", _p(**nock)),
        _r(ol, "attention-only r64 b4x1024", _p(4, targets=ATTENTION, rank=64, dropout=0.05)),
        _r(m2, "attention-only b4x1024", _p(4, targets=ATTENTION, dropout=0.05)),
        _r(m2, "hf all-linear b2x1024", _p(), trainer="hf"),
        _r(ol, "hf all-linear b2x1024 no checkpointing", _p(**nock), trainer="hf"),
        _r(q6, "all-linear r16 b1x4096", _p(1, 4096)),
    ]


def shape_config(shape: str) -> dict:
    """The config.json of a shape: its profile's, with the overrides."""
    s = SHAPES[shape]
    profile = json.loads((ROOT / "profiles" / "models" / f"{s.profile}.json").read_text())
    return {**profile["config"], **s.overrides}


def shape_arch(shape: str):
    """The ModelArch vramplan predicts a shape with. The measured-families gate is opened here, in this process
    only: these runs are what decides whether a family goes into profiles/moe_families.json."""
    from vramplan.profiles import arch_from_config, experts
    experts.measured_families = lambda: frozenset(experts.FAMILIES)
    return arch_from_config(shape_config(shape), name=shape, origin=f"shape {shape}")


def predict(items: list[MoeRun], gpu_profile: str, nvml_name: str) -> dict:
    """Predictions keyed by the run keys the runs will have on the GPU NVML names nvml_name."""
    from vramplan.planner import Planner
    from vramplan.profiles import find_gpu
    from vramplan.store.calibrations import Calibrations
    out = {}
    for m in items:
        r = m.run
        b = Planner(find_gpu(gpu_profile), Calibrations.package(), vram_bytes=r.cap_bytes).estimate(
            shape_arch(r.model), stack_plan(r))
        out[r.key(nvml_name)] = {"model": r.model, "why": r.why, "peak_bytes": b.peak_bytes,
                                 "train_peak_bytes": b.train_peak_bytes, "peak_phase": b.peak_phase,
                                 "required_bytes": b.required_bytes, "fits": b.within_capacity}
    return out


def _checkpoint_dir(shape: str, cache: Path) -> Path:
    return cache / shape


def build_checkpoints(shapes: list[str], cache: Path) -> None:
    """Weights for every shape that owns them, in one build process; then the config-only shapes."""
    cache.mkdir(parents=True, exist_ok=True)
    pairs = []
    for shape in shapes:
        s = SHAPES[shape]
        if s.weights_of is None and not (_checkpoint_dir(shape, cache) / "config.json").exists():
            profile = json.loads((ROOT / "profiles" / "models" / f"{s.profile}.json").read_text())
            path = cache / f"{shape}.profile.json"
            path.write_text(json.dumps({**profile, "config": shape_config(shape)}))
            pairs += [str(path), str(_checkpoint_dir(shape, cache))]
    if pairs:
        t0 = time.time()
        print(f"building {len(pairs) // 2} random-weight checkpoints on the GPU", flush=True)
        code = subprocess.run(worker_command("build_model", "--pairs", *pairs)).returncode
        print(f"built in {time.time() - t0:.0f} s" + (f" (exit {code}: the runs of a missing one are skipped)"
                                                     if code else ""), flush=True)
    from tests.synthetic import save_tokenizer
    for shape in shapes:
        s, out = SHAPES[shape], _checkpoint_dir(shape, cache)
        parent = _checkpoint_dir(s.weights_of, cache) if s.weights_of else None
        if parent and (parent / "config.json").exists() and not (out / "config.json").exists():
            _config_only(parent, out, s.overrides)
        if (out / "config.json").exists() and not (out / "tokenizer.json").exists():
            save_tokenizer(out)


def _config_only(parent: Path, out: Path, overrides: dict) -> None:
    """A checkpoint folder whose weight files link to the parent's and whose config.json has the overrides."""
    tmp = out.with_name(out.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    for f in parent.iterdir():
        if f.suffix == ".safetensors" or f.name.endswith(".index.json"):
            link = tmp / f.name
            if not link.exists():
                os.symlink(f.resolve(), link)
    config = json.loads((parent / "config.json").read_text())
    (tmp / "config.json").write_text(json.dumps({**config, **overrides}, indent=1))
    tmp.rename(out)


def checkpoint_gb(shape: str, cache: Path) -> float:
    folder = _checkpoint_dir(SHAPES[shape].weights_of or shape, cache)
    return sum(f.stat().st_size for f in folder.glob("*.safetensors")) / 1e9


class Clock:
    """Wall-time estimates per run from the runs measured so far: seconds of overhead plus seconds per GB of
    checkpoint (a least-squares line once two sizes are measured, else their mean)."""

    def __init__(self, first_guess_s: float = 25.0):
        self.points: list[tuple[float, float]] = []
        self.first_guess_s = first_guess_s

    def add(self, gb: float, wall_s: float) -> None:
        self.points.append((gb, wall_s))

    def estimate(self, gb: float) -> float:
        if not self.points:
            return self.first_guess_s
        xs, ys = zip(*self.points)
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        var = sum((x - mx) ** 2 for x in xs)
        if var < 1e-6:
            return my
        slope = max(0.0, sum((x - mx) * (y - my) for x, y in self.points) / var)
        return my + slope * (gb - mx)


def measure(items: list[MoeRun], out: Path, cache: Path, budget_s: float, timeout_s: int, t0: float) -> int:
    gpu = gpu_name()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{slug(gpu)}.jsonl"
    done = {json.loads(line).get("run_key") for line in path.open()} if path.exists() else set()
    todo = [m for m in items if m.run.key(gpu) not in done]
    print(f"{gpu}: {len(items) - len(todo)} of {len(items)} recorded in {path}; {len(todo)} to go", flush=True)
    needed = {m.run.model for m in todo}
    build_checkpoints(sorted(needed | {SHAPES[s].weights_of for s in needed if SHAPES[s].weights_of}), cache)
    t1 = time.time()
    fork = preload_stack()
    print(f"stack imported in {time.time() - t1:.0f} s; runs in " + ("forks of this process (fresh CUDA context "
          "each)" if fork else "fresh interpreters (CUDA initialized or threads running here)"), flush=True)
    clock = Clock()
    for i, m in enumerate(todo, 1):
        r = m.run
        if not (_checkpoint_dir(r.model, cache) / "tokenizer.json").exists():
            print(f"[{i}/{len(todo)}] {r.model} {r.why}: skipped, its checkpoint was not built", flush=True)
            continue
        gb = checkpoint_gb(r.model, cache)
        est, left = clock.estimate(gb), budget_s - (time.time() - t0)
        if est > left:
            print(f"stopping: run {i} needs about {est:.0f} s, {left:.0f} s of the budget left; "
                  f"{len(todo) - i + 1} runs left for the next call", flush=True)
            break
        print(f"[{i}/{len(todo)}] {r.model} {r.trainer} {r.why}: about {est:.0f} s ({gb:.1f} GB checkpoint)",
              flush=True)
        record = run_one(r, _checkpoint_dir(r.model, cache), r.key(gpu), min(timeout_s, int(left)), fork=fork)
        record["shape"] = {"name": r.model, **SHAPES[r.model].__dict__}
        record["validation"] = m.validation
        with path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        clock.add(gb, record["wall_s"])
        peaks = record.get("nvml", {}).get("phase_peaks", {})
        shown = " ".join(f"{k} {v / GiB:.2f}" for k, v in peaks.items())
        print(f"    {record['status']} {shown} GiB, {record['wall_s']:.0f} s, {time.time() - t0:.0f} s in "
              f"{record.get('error', '')[:300]}", flush=True)
    return 0


def main() -> int:
    cache = Path(tempfile.gettempdir()) / "vramplan-moe-checkpoints"
    return run_validated_set(__doc__, ROOT / "calibration" / "moe", cache, 520.0, runs, predict,
                             lambda items, a, t0: measure(items, Path(a.out), Path(a.cache), a.budget_s, a.timeout, t0))


if __name__ == "__main__":
    sys.exit(main())
