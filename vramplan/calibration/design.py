"""The calibration sweep: which architectures and plans to measure, and why each one.

Each plan changes one factor against a base plan so that a factor's effect is separable in the fit, across
architectures spanning 0.5B-8B parameters and 32k-256k vocabularies.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..plan import TrainPlan

BASE = TrainPlan(seq=1024)
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
        cap = f" cap {self.cap_bytes / 2**30:.0f}GiB" if self.cap_bytes else ""
        return (f"{self.model:16s} {self.why:28s} r{p.rank} b{p.batch}x{p.grad_accum} s{p.seq} {p.optim} {p.dtype} "
                f"{'ckpt' if p.gradient_checkpointing else 'no-ckpt'} {p.attn} {p.quant}"
                f"{'+dq' if p.double_quant else ''}{cap}")


def sweep(kind: str = "full", models: tuple[str, ...] | None = None) -> list[SweepRun]:
    """kind: 'quick' (the base factors on every small model) or 'full' (everything)."""
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
    return runs


def estimated_seconds(run: SweepRun) -> float:
    """Rough wall time of one measured run (process start, load, steps); for --dry-run."""
    from ..profiles import find_model
    params = find_model(run.model).total_params
    return 20 + params / 1e9 * 4 + run.plan.tokens * run.plan.grad_accum * params / 2e13
