"""The calibration sweep: which architectures and plans to measure, and why each one.

Each plan changes one factor against a base plan so that a factor's effect is separable in the fit, across
architectures spanning 0.5B-8B parameters and 32k-256k vocabularies.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..plan import TrainPlan
from ..units import GiB

BASE = TrainPlan(seq=1024, trainer="hf")  # the sweep measures the plain Trainer (calibrate.measure)
SMALL = ("qwen2.5-0.5b", "llama-3.2-1b", "qwen2.5-1.5b", "gemma-2-2b", "llama-3.2-3b", "phi-3-mini")
LARGE = ("mistral-7b-v0.3", "llama-3.1-8b")

# Factors changed on every small architecture: sequence length, micro-batch, checkpointing.
EVERY = (
    ("base", {}),
    ("seq 4096", {"seq": 4096}),
    ("micro-batch 4", {"batch": 4}),
    ("no checkpointing", {"gradient_checkpointing": False}),
)
# Factors spread over the small architectures, two each.
ROTATED = (
    ("rank 64", {"rank": 64}),
    ("adamw_torch", {"optim": "adamw_torch"}),
    ("paged_adamw_32bit", {"optim": "paged_adamw_32bit"}),
    ("adamw_8bit", {"optim": "adamw_8bit"}),
    ("fp16", {"dtype": "fp16"}),
    ("eager attention", {"attn": "eager"}),
    ("no double quant", {"double_quant": False}),
    ("dropout 0", {"dropout": 0.0}),
    ("q_proj,v_proj only", {"targets": ("q_proj", "v_proj")}),
    ("grad accumulation 2", {"grad_accum": 2}),
    ("adafactor", {"optim": "adafactor"}),
    ("fp4", {"quant": "fp4"}),
)
LARGE_PLANS = (
    ("base 2048", {"seq": 2048}),
    ("seq 4096", {"seq": 4096}),
    ("no checkpointing 512", {"seq": 512, "gradient_checkpointing": False}),
)
EXTRA = (
    ("llama-3.1-8b", "r64 paged_adamw_32bit 2048 (seed-blog recipe, micro-batch 2)",
     {"seq": 2048, "rank": 64, "alpha": 64, "optim": "paged_adamw_32bit", "batch": 2}),
    ("qwen2.5-0.5b", "16-bit LoRA", {"quant": "none"}),
    ("llama-3.2-1b", "16-bit LoRA", {"quant": "none"}),
    ("qwen2.5-1.5b", "LLM.int8", {"quant": "int8"}),
)


@dataclass(frozen=True)
class SweepRun:
    model: str
    why: str
    plan: TrainPlan
    cap_bytes: int | None = None

    def describe(self) -> str:
        p = self.plan
        cap = f" cap {self.cap_bytes / GiB:.0f}GiB" if self.cap_bytes else ""
        return (f"{self.model:16s} {self.why:28s} r{p.rank} b{p.batch}x{p.grad_accum} s{p.seq} {p.optim} {p.dtype} "
                f"{'ckpt' if p.gradient_checkpointing else 'no-ckpt'} {p.attn} {p.quant}"
                f"{'+dq' if p.double_quant else ''}{cap}")


def sweep(kind: str = "full", models: tuple[str, ...] | None = None, allocator: str = "default") -> list[SweepRun]:
    """kind: 'quick' (the base factors on every small model) or 'full' (everything); allocator: PyTorch's caching
    allocator as the standard recipe runs it (default) or with expandable segments, as `vramplan train` runs it."""
    runs = []
    for i, name in enumerate(SMALL):
        for why, change in EVERY:
            runs.append(SweepRun(name, why, BASE.with_(**change)))
        if kind == "full":
            for why, change in ROTATED[2 * i % len(ROTATED):2 * i % len(ROTATED) + 2]:
                runs.append(SweepRun(name, why, BASE.with_(**change)))
    if kind == "full":
        for name in LARGE:
            for why, change in LARGE_PLANS:
                runs.append(SweepRun(name, why, BASE.with_(**change)))
        for name, why, change in EXTRA:
            runs.append(SweepRun(name, why, BASE.with_(**change)))
    if models:
        runs = [r for r in runs if r.model in models]
    if allocator != "default":
        runs = [SweepRun(r.model, f"{r.why}, {allocator} segments", r.plan.with_(allocator=allocator), r.cap_bytes)
                for r in runs]
    return runs


def estimated_seconds(run: SweepRun) -> float:
    """Rough wall time of one measured run (process start, load, steps); for --dry-run."""
    from ..profiles import find_model
    params = find_model(run.model).total_params
    return 20 + params / 1e9 * 4 + run.plan.tokens * run.plan.grad_accum * params / 2e13


BOUNDARY_CAPS_GIB = (12, 16, 24)
BOUNDARY_RATIOS = (0.90, 0.96, 1.04, 1.10)
BOUNDARY_MODELS = {12: "llama-3.2-3b", 16: "llama-3.1-8b", 24: "gemma-2-2b"}


def boundary(gpu_name: str = "H100-80GB") -> list[SweepRun]:
    """Plans whose predicted allocator need lands at 90/96/104/110% of an allocator cap of 12, 16, 24 GiB.

    Emulates smaller cards with torch.cuda.set_per_process_memory_fraction: the verdict under test is
    `fits` with capacity = cap + the context and managed memory that live outside the allocator.
    """
    from ..memory import estimate
    from ..profiles import find_gpu, find_model
    from ..store.calibrations import Calibrations
    gpu = find_gpu(gpu_name)
    calibration = Calibrations.package().params(gpu)  # the sweep's design is the package's, whoever runs it
    runs = []
    for cap_gib in BOUNDARY_CAPS_GIB:
        model = find_model(BOUNDARY_MODELS[cap_gib])
        cap = cap_gib * GiB
        for ratio in BOUNDARY_RATIOS:
            best = None
            for seq in range(256, 32768 + 1, 256):
                b = estimate(model, gpu, BASE.with_(seq=seq), calibration)
                need = (b.required_bytes - calibration.context_bytes - b.managed_bytes) / cap
                if best is None or abs(need - ratio) < abs(best[1] - ratio):
                    best = (seq, need)
            runs.append(SweepRun(model.name, f"boundary {cap_gib}GiB at {best[1]:.0%}", BASE.with_(seq=best[0]),
                                 cap_bytes=cap))
    return runs
