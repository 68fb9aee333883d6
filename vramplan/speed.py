"""Relative training speed from a simple roofline over the GPU profile. An estimate, for ranking plans.

Per micro-batch: every 4-bit linear is dequantized (read n/2, write 2n bytes) and multiplied (2 flops per weight
per token) once in forward, once in backward (input gradient only: the base is frozen) and once more in the
recompute when checkpointing. Each kernel costs max(flops / rate, bytes / bandwidth); kernels add up.
"""
from __future__ import annotations

from .layout import Layout, resolve
from .memory.breakdown import Breakdown
from .plan import TrainPlan
from .profiles.gpus import GpuSpec
from .profiles.models import ModelArch

MATMUL_EFFICIENCY = 0.55  # share of the datasheet tensor rate that training matmuls reach
MEMORY_EFFICIENCY = 0.75  # share of datasheet bandwidth that streaming kernels reach
LINK_EFFICIENCY = 0.7  # share of the link's datasheet rate that NCCL collectives reach
# FSDP1 as peft wraps it makes every LoRA linear its own unit: ~15 units per decoder layer, each gathered in
# forward and backward and reduce-scattered, a collective launch and stream wait each. Measured on 2 x H200
# (calibration/multi_gpu, step_time_s): FSDP steps take 1.5-2.0 s per micro-batch whatever the tokens
# (2048-8192), DDP steps 0.7-0.84 s: latency, not bandwidth. 1.3 ms per collective reproduces that.
FSDP_COLLECTIVE_S = 1.3e-3


def step_seconds(model: ModelArch, gpu: GpuSpec, plan: TrainPlan, b: Breakdown) -> float:
    """Seconds per optimizer step (all micro-batches; on several GPUs, every rank's at once)."""
    lay = resolve(plan, model, gpu)
    micro = compute_seconds(model, gpu, plan, b)
    if lay.fsdp:  # prefetching overlaps the all-gathers with compute: the slower of the two sets the pace
        micro = max(micro, fsdp_transfer_seconds(model, gpu, lay, b))
    return micro * plan.grad_accum + sync_seconds(gpu, lay, b)


def fsdp_transfer_seconds(model: ModelArch, gpu: GpuSpec, lay: Layout, b: Breakdown) -> float:
    """Per micro-batch: FULL_SHARD gathers every layer's shard twice (forward, backward) and the root once;
    with CPU offload the rank's own shard also crosses PCIe each time it is gathered. Plus the collectives'
    launch latency, which dominates at these sizes."""
    load = b.phases["load"]  # every rank holds the whole base before the wrap shards it
    layers = load.get("weights_4bit", 0) + load.get("weights_16bit", 0) + load.get("quant_constants", 0)
    root = load.get("embeddings_lm_head", 0)
    n = lay.gpus
    gathered = (2 * layers + root) * (n - 1) / n
    seconds = gathered / (gpu.interconnect_gbs * 1e9 * LINK_EFFICIENCY)
    units = model.layers * (1 + 2 * len(lay.target_names(model.linear_names)))
    seconds += 3 * units * FSDP_COLLECTIVE_S
    if lay.offload:
        seconds += (2 * layers + root) / n / (gpu.pcie_gbs * 1e9 * LINK_EFFICIENCY)
    return seconds


def sync_seconds(gpu: GpuSpec, lay: Layout, b: Breakdown) -> float:
    """Per optimizer step: DDP all-reduces the adapter's fp32 gradients (ring: twice the bytes)."""
    if not lay.ddp:
        return 0.0  # FSDP's reduce-scatter of the adapter gradients is small and overlapped
    n = lay.gpus
    adapter = b.phases["optimizer"]["lora_adapter"]
    return 2 * adapter * (n - 1) / n / (gpu.interconnect_gbs * 1e9 * LINK_EFFICIENCY)


def compute_seconds(model: ModelArch, gpu: GpuSpec, plan: TrainPlan, b: Breakdown) -> float:
    """Seconds of one micro-batch's compute on one GPU."""
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
    total += model.layers * passes * 2 * b.layer_saved_bytes / bw
    # lm_head + loss: 3 matmuls (forward, input grad) over the vocabulary and the fp32 loss buffers
    total += 2 * (2 * model.vocab * model.hidden * t) / flops_rate + 24 * model.vocab * t / bw
    # LoRA matmuls are small: 6 flops per adapter parameter per token
    total += 6 * b.trainable_params * t / flops_rate
    return total


def tokens_per_second(model: ModelArch, gpu: GpuSpec, plan: TrainPlan, b: Breakdown) -> float:
    """All GPUs together, from the plan's Breakdown (its base, adapter and saved activations)."""
    return plan.tokens * plan.grad_accum * plan.gpus / step_seconds(model, gpu, plan, b)
