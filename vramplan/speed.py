"""Relative training speed from a simple roofline over the GPU profile. An estimate, for ranking plans.

Per micro-batch: every 4-bit linear is dequantized (read n/2, write 2n bytes) and multiplied (2 flops per weight
per token) once in forward, once in backward (input gradient only: the base is frozen) and once more in the
recompute when checkpointing. Each kernel costs max(flops / rate, bytes / bandwidth); kernels add up.
"""
from __future__ import annotations

from .plan import TrainPlan
from .profiles.gpus import GpuSpec
from .profiles.models import ModelArch

MATMUL_EFFICIENCY = 0.55  # share of the datasheet tensor rate that training matmuls reach
MEMORY_EFFICIENCY = 0.75  # share of datasheet bandwidth that streaming kernels reach


def step_seconds(model: ModelArch, gpu: GpuSpec, plan: TrainPlan) -> float:
    """Seconds per optimizer step (all micro-batches)."""
    flops_rate = gpu.tensor_tflops_16bit * 1e12 * MATMUL_EFFICIENCY
    bw = gpu.bandwidth_gbs * 1e9 * MEMORY_EFFICIENCY
    t = plan.tokens
    passes = 3 if plan.gradient_checkpointing else 2  # forward, backward (+ recompute)
    per_weight_bytes = {"nf4": 4.5, "fp4": 4.5, "int8": 5.0}.get(plan.quant, 2.0)
    total = 0.0
    for lin in model.linears:
        mm = max(2 * lin.numel * t / flops_rate, (2 * lin.numel + 2 * t * (lin.in_features + lin.out_features)) / bw)
        dequant = per_weight_bytes * lin.numel / bw if plan.quantized else 0.0
        total += model.layers * passes * (mm + dequant)
    # attention: causal, forward 2 matmuls of s^2 * head_dim per head, backward twice that
    attn_flops = 2 * 2 * plan.batch * plan.seq * plan.seq * model.heads * model.head_dim / 2
    total += model.layers * (passes + 1) * attn_flops / flops_rate
    # elementwise traffic: saved activations written once and read once, more when recomputed
    from .memory.activations import layer_activations
    la = layer_activations(model, plan)
    total += model.layers * passes * 2 * la.saved_per_token * t / bw
    # lm_head + loss: 3 matmuls (forward, input grad) over the vocabulary and the fp32 loss buffers
    total += 2 * (2 * model.vocab * model.hidden * t) / flops_rate + 24 * model.vocab * t / bw
    # LoRA matmuls are small: 6 flops per adapter parameter per token
    from .memory.adapter import trainable_params
    total += 6 * trainable_params(model, plan) * t / flops_rate
    return total * plan.grad_accum


def tokens_per_second(model: ModelArch, gpu: GpuSpec, plan: TrainPlan) -> float:
    return plan.tokens * plan.grad_accum / step_seconds(model, gpu, plan)
