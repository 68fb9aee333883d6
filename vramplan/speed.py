"""Seconds per optimizer step and tokens/s of a plan, from a model fitted to measured step times.

One micro-batch costs

    (H^p + D^p)^(1/p),  H = kernel launches x c_kernel + c_micro,  D = matmul FLOPs / rate + streamed bytes / bandwidth

and an optimizer step `grad_accum` micro-batches plus c_step and the offloaded copies. The host launches kernels
ahead of the GPU, so whichever of its time H and the GPU's D is longer hides most of the other; p (fitted with
the rest; 1 would add them) says how much. FLOPs and bytes count what the kernels do: every
4-bit linear is dequantized (read n/2, write 2n bytes) and multiplied (2 flops per weight per token) once in
forward, once in backward (the input gradient only: the base is frozen) and once more in the recompute when
checkpointing; attention's causal matmuls; the LM head and the loss path of the stack (the full-logits paths
stream tokens x vocab fp32 buffers, the chunked and fused heads recompute the head's matmul instead). The launch
term is there because QLoRA steps at the sizes people run are dominated by launches, not by the roofline: on an
H200 a 1B model's step at 1,024 tokens takes 0.23 s and 4x the tokens take 0.29 s. Launches are counted per
kernel class from the code each module runs (KERNELS_PER_CALL below): a 4-bit linear's dequantize and matmul,
LLM.int8's quantize, int8 matmul and outlier path, an adapter's clone, casts, dropout, A, B, scale and add, a norm's
fp32 elementwise chain, attention's rotary embedding and SDPA; forward, the recompute of the checkpointed layers
(all of them, or every n-th with every_n_layers), and backward (autograd's gradient kernels of the same ops).
Offloaded checkpoints add their copies to and from pinned host memory (GB per micro-batch) at a rate fitted on the
runs that offloaded (calibration/partial_ckpt: about a tenth of the H200's PCIe link, the pack's copy_ blocking
the host); a GPU whose runs did not offload takes its PCIe datasheet x that efficiency.

The coefficients are fitted by vramplan.calibrate.speed_solve on the recorded runs (the GPUs of one architecture
together: shared rate efficiencies, each GPU its own launch costs); vramplan.speed_fits says which a GPU takes:
its fit, else its datasheet at the Hopper shares with their launch costs, with the host factor of a user's
`vramplan calibrate` on top, and its source says so.
Several GPUs add FSDP's per-unit cost or DDP's per-step cost, fitted on the 2 x H200 runs (and borrowed, said,
by every other GPU). estimate, fit, table and the TUI print these figures, and fit's search ranks plans by them.
"""
from __future__ import annotations

from .layout import Layout, resolve
from .memory.activations import checkpointed_layers, offloaded_input_bytes
from .memory.breakdown import Breakdown
from .plan import TrainPlan
from .profiles.gpus import GpuSpec
from .profiles.models import FULL_WIDTH_QK_NORM, PER_HEAD_QK_NORM, SANDWICH_NORMS, ModelArch
from .speed_experts import expert_seconds
from .speed_fits import LINK_EFFICIENCY, SpeedParams, speed_params

# Bytes per weight that one dequantize + matmul pass streams: NF4/FP4 read n/2 and write 2n, the matmul reads
# the 2n again; LLM.int8 reads n and writes 2n; a 16-bit base is read once.
WEIGHT_PASS_BYTES = {"nf4": 4.5, "fp4": 4.5, "int8": 5.0, "none": 2.0}

# Per logit (token x vocab element) of one micro-batch, what each loss path streams beyond the head's matmul,
# forward and backward together: the full-logits paths write the 16-bit logits, their fp32 upcast and the fp32
# log-softmax and read them back in backward (24 bytes); TRL's metrics over the logits read them twice more
# (entropy, token accuracy), its shifted copies write 6 more; the chunked heads hold one fp32 chunk at a time
# (8), the fused head tiles in registers and shared memory (2).
LOSS_BYTES_PER_LOGIT = {"hf_full": 24, "trl_full": 32, "trl_full_copies": 38, "trl_chunked": 8,
                        "trl_chunked_lowp": 8, "trl_fused": 2}
# The chunked and fused heads recompute the head's forward matmul in backward instead of saving the logits.
RECOMPUTED_HEAD = ("trl_chunked", "trl_chunked_lowp", "trl_fused")

# Kernel launches per call, (forward, backward), counted from the code each call runs.
KERNELS_PER_CALL = {
    # bitsandbytes MatMul4Bit: dequantize the double-quantized absmax, dequantize the weight, matmul; backward
    # the same for the input gradient (the base is frozen). A 16-bit base: one matmul each way.
    "nf4": (3, 3), "fp4": (3, 3), "none": (1, 1),
    # MatMul8bitLt (threshold 6.0): cast to fp16, vectorwise int8 quantize with outlier columns, int8 scaled mm
    # with the outlier matmul, its dequantize and the cast back; backward dequantizes CB x SCB for the matmul.
    "int8": (8, 5),
    # peft's lora.bnb.Linear4bit.forward: the defensive clone of the base output, autocast's casts of the fp32
    # A and B, dropout, A, B, the scale and the add; backward: the two matmuls of each of A and B, the scale,
    # dropout and the casts of the weight gradients back to fp32.
    "adapter": (8, 8),
    # RMSNorm in fp32 (transformers' LlamaRMSNorm and kin): cast, pow, mean, add eps, rsqrt, mul, weight mul.
    "norm": (7, 10),
    # the rest of a decoder layer: rotary embedding of q and k, SDPA, the MLP's activation and product, the two
    # residual adds.
    "layer_rest": (15, 20),
}

FEATURES = ("matmul_tflop", "stream_gb", "kernel_launches", "micro_batches", "steps", "offload_gb")
"""The solver's columns, in the order of SpeedParams.coefficients: TFLOPs, GB and counts per optimizer step."""


def features(model: ModelArch, plan: TrainPlan, b: Breakdown, lay: Layout | None = None) -> tuple[float, ...]:
    """One optimizer step of one GPU's compute, in FEATURES units (FSDP and DDP traffic is added separately)."""
    lay = lay or resolve(plan, model)
    t = plan.tokens
    recomputed = checkpointed_layers(model, plan)
    layer_passes = 2 * model.layers + recomputed  # forward, backward, the recompute of the checkpointed layers
    linear_numel = model.quantizable_params_per_layer
    targets = lay.target_names(model.linear_names)
    flops = layer_passes * 2 * linear_numel * t
    # causal attention: forward QK^T and PV over half the s x s scores per head, backward twice that
    flops += (layer_passes + model.layers) * 2 * 2 * plan.batch * plan.seq * plan.seq * model.heads * model.head_dim / 2
    head = 2 * model.vocab * model.hidden * t
    flops += head * (3 if lay.loss_path in RECOMPUTED_HEAD else 2)  # forward, input gradient (+ recompute)
    flops += (6 + 2 * recomputed / model.layers) * b.trainable_params * t  # LoRA's own matmuls
    weight_bytes = WEIGHT_PASS_BYTES.get(plan.quant, 2.0) * linear_numel
    streamed = layer_passes * (weight_bytes + 2 * b.layer_saved_bytes)
    streamed += LOSS_BYTES_PER_LOGIT.get(lay.loss_path, 24) * model.vocab * t
    if plan.attn == "eager":  # eager materializes the scores: bf16 written and read, fp32 softmax, in each pass
        streamed += (layer_passes + model.layers) * 12 * plan.batch * model.heads * plan.seq * plan.seq
    ga = plan.grad_accum
    return (ga * flops / 1e12, ga * streamed / 1e9, ga * kernel_launches(model, plan, len(targets)), float(ga), 1.0,
            ga * offloaded_gb(model, plan))


def layer_norms(model: ModelArch) -> int:
    """Norms of one decoder layer: two; four with sandwich norms; two more with q/k norms."""
    norms = 4 if model.model_type in SANDWICH_NORMS else 2
    if model.model_type in PER_HEAD_QK_NORM or model.model_type in FULL_WIDTH_QK_NORM:
        norms += 2
    return norms


def kernel_launches(model: ModelArch, plan: TrainPlan, adapted: int) -> int:
    """Kernel launches of the decoder layers in one micro-batch: forward, the recompute when checkpointing, and
    backward (adapted: linears of a layer that carry an adapter)."""
    k = KERNELS_PER_CALL
    base = k.get(plan.quant, k["none"])
    forward, backward = (len(model.linear_names) * base[d] + adapted * k["adapter"][d]
                         + layer_norms(model) * k["norm"][d] + k["layer_rest"][d] for d in (0, 1))
    return model.layers * (forward + backward) + checkpointed_layers(model, plan) * forward


HOST_COLUMNS = (2, 3)
"""FEATURES the host spends in each micro-batch: the kernel launches, the Trainer's loop."""
DEVICE_COLUMNS = (0, 1)
"""FEATURES the GPU spends in each micro-batch: the matmuls, the streaming kernels."""
SERIAL_COLUMNS = (4, 5)
"""FEATURES that hide nothing and are hidden by nothing: the optimizer step, the blocking offload copies."""


def seconds_from_terms(terms, overlap: float) -> float:
    """Seconds of one optimizer step from each FEATURES column's seconds (feature x coefficient): the host's and
    the device's time combined as (H^p + D^p)^(1/p) (SpeedParams.overlap), plus the serial terms."""
    host = sum(terms[i] for i in HOST_COLUMNS)
    device = sum(terms[i] for i in DEVICE_COLUMNS)
    both = host + device if overlap == 1 else (host ** overlap + device ** overlap) ** (1.0 / overlap)
    return both + sum(terms[i] for i in SERIAL_COLUMNS)


def seconds_from_features(x, params: SpeedParams) -> float:
    return seconds_from_terms([f * c for f, c in zip(x, params.coefficients)], params.overlap)


def compute_seconds_per_step(model: ModelArch, plan: TrainPlan, b: Breakdown, params: SpeedParams,
                             lay: Layout | None = None) -> float:
    return seconds_from_features(features(model, plan, b, lay), params)


def predicted_step_seconds(model: ModelArch, gpu: GpuSpec, plan: TrainPlan, b: Breakdown,
                           params: SpeedParams | None = None) -> float:
    """Seconds per optimizer step (all micro-batches; on several GPUs, every rank's at once)."""
    params = params or speed_params(gpu)
    lay = resolve(plan, model, gpu)
    total = compute_seconds_per_step(model, plan, b, params, lay)
    total += plan.grad_accum * expert_seconds(model, gpu, plan)
    if lay.fsdp:
        total += plan.grad_accum * fsdp_seconds(model, gpu, lay, b, params)
    elif lay.ddp:
        total += sync_seconds(gpu, lay, b) + params.ddp_step_s
    return total


def offloaded_gb(model: ModelArch, plan: TrainPlan) -> float:
    """Per micro-batch, GB of offloaded checkpoints: save_on_cpu's pack copies each checkpointed layer's input to
    pinned host memory with a blocking copy_ (the host waits for the GPU to reach it), and its unpack copies it back
    before the recompute (torch autograd/graph.py), both on the compute stream."""
    return 2 * checkpointed_layers(model, plan) * offloaded_input_bytes(model, plan) / 1e9


def fsdp_units(model: ModelArch, lay: Layout) -> int:
    """Unit unshards per micro-batch: every wrapped unit (a decoder layer and, as peft wraps it, each adapter's
    A and B) in forward, backward and the recompute."""
    return (2 * model.layers + checkpointed_layers(model, lay)) * (1 + 2 * len(lay.target_names(model.linear_names)))


def fsdp_link_seconds(model: ModelArch, gpu: GpuSpec, lay: Layout, b: Breakdown) -> float:
    """Per micro-batch, the bytes: FULL_SHARD gathers every layer's shard twice (forward, backward) and the root
    once; with CPU offload the rank's own shard also crosses PCIe each time it is gathered."""
    load = b.phases["load"]  # every rank holds the whole base before the wrap shards it
    layers = load.get("weights_4bit", 0) + load.get("weights_16bit", 0) + load.get("quant_constants", 0)
    root = load.get("embeddings_lm_head", 0)
    n = lay.gpus
    seconds = (2 * layers + root) * (n - 1) / n / (gpu.interconnect_gbs * 1e9 * LINK_EFFICIENCY)
    if lay.offload:
        seconds += (2 * layers + root) / n / (gpu.pcie_gbs * 1e9 * LINK_EFFICIENCY)
    return seconds


def fsdp_seconds(model: ModelArch, gpu: GpuSpec, lay: Layout, b: Breakdown, params: SpeedParams) -> float:
    """What FSDP adds to a micro-batch of one-GPU compute."""
    return fsdp_link_seconds(model, gpu, lay, b) + fsdp_units(model, lay) * params.fsdp_unit_s


def sync_seconds(gpu: GpuSpec, lay: Layout, b: Breakdown) -> float:
    """Per optimizer step: DDP all-reduces the adapter's fp32 gradients (ring: twice the bytes)."""
    if not lay.ddp:
        return 0.0  # FSDP's reduce-scatter of the adapter gradients is small and overlapped
    n = lay.gpus
    adapter = b.phases["optimizer"]["lora_adapter"]
    return 2 * adapter * (n - 1) / n / (gpu.interconnect_gbs * 1e9 * LINK_EFFICIENCY)


def predicted_tokens_per_second(model: ModelArch, gpu: GpuSpec, plan: TrainPlan, b: Breakdown,
                                params: SpeedParams | None = None) -> float:
    """All GPUs together, from the fitted model and the plan's Breakdown."""
    return plan.tokens * plan.grad_accum * plan.gpus / predicted_step_seconds(model, gpu, plan, b, params)

