"""The routed experts' share of a step's time, which the dense speed model (vramplan.speed) does not see: the
experts are plain fp32 Parameters after prepare_model_for_kbit_training and the grouped_mm path casts its input to
their dtype outside autocast (transformers integrations/moe.py), so their GEMMs run at the card's CUDA-core fp32
rate, not its 16-bit tensor rate. Three terms, fitted to the measured MoE runs (bench/moe_speed_fit.py, the fit in
calibration/moe/speed_fit.json): the experts' fp32 FLOPs over the card's fp32 rate, the W' stacks peft's
ParamWrapper writes and reads over its bandwidth, and a cost per expert per pass (each expert's GEMMs and gathers).
Pure; no torch.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

from .memory.activations import checkpointed_layers
from .memory.experts import expert_dtype_bytes, expert_lora_wrapped, expert_targets
from .plan import TrainPlan
from .profiles.gpus import GpuSpec
from .profiles.models import ModelArch
from .resources import data_dir

FEATURES = ("fp32_flops_over_rate", "wrapped_bytes_over_bandwidth", "expert_passes_us")


@dataclass(frozen=True)
class ExpertSpeedFit:
    coefficients: tuple[float, float, float]
    gpu: str
    """The GPU the runs were measured on; on any other card the rates come from its datasheet."""
    runs: int
    mae_pct: float
    lofo_mae_pct: float
    """Leave one family out: each family predicted by the coefficients fitted on the others."""


@lru_cache(maxsize=None)
def expert_speed_fit() -> ExpertSpeedFit:
    d = json.loads((data_dir("calibration") / "moe" / "speed_fit.json").read_text())
    return ExpertSpeedFit(tuple(d["coefficients"][n] for n in FEATURES), d["gpu"], d["runs"], d["mae_pct"],
                          d["lofo_mae_pct"])


def expert_features(model: ModelArch, gpu: GpuSpec, plan: TrainPlan) -> tuple[float, float, float]:
    """One micro-batch's experts, in FEATURES units (seconds at the datasheet rates, microseconds per expert pass)."""
    ex = model.experts
    t = expert_targets(model, plan)
    recomputed = checkpointed_layers(model, plan)
    # forward, input gradient, recompute; with LoRA on the experts W' needs its gradient: one more GEMM pass
    passes = model.layers * (3 if t.gate_up or t.down else 2) + recomputed
    flops = 2 * plan.tokens * ex.top_k * 3 * ex.width * model.hidden * passes
    wrapped = expert_lora_wrapped(model, plan)  # (rank, experts, in, out)
    stack_passes = 3 * model.layers + recomputed  # W' made in forward and recompute, its gradient in backward
    flops += sum(2 * e * fan_in * fan_out * r for r, e, fan_in, fan_out in wrapped) * stack_passes
    wbytes = sum(expert_dtype_bytes(model, plan) * e * fan_in * fan_out for _, e, fan_in, fan_out in wrapped)
    return (flops / (gpu.fp32_tflops * 1e12), wbytes * stack_passes / (gpu.bandwidth_gbs * 1e9),
            float(ex.count * passes))


def expert_seconds(model: ModelArch, gpu: GpuSpec, plan: TrainPlan, fit: ExpertSpeedFit | None = None) -> float:
    """Seconds the routed experts add to one micro-batch (0 for a dense model)."""
    if model.experts is None:
        return 0.0
    fit = fit or expert_speed_fit()
    a, b, c = fit.coefficients
    f = expert_features(model, gpu, plan)
    return a * f[0] + b * f[1] + c * f[2] * 1e-6
