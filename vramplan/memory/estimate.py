"""estimate(): profile + plan -> Breakdown. Pure; no torch."""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..layout import Layout, resolve
from ..plan import TrainPlan
from ..profiles.gpus import GpuSpec
from ..profiles.models import ModelArch
from ..profiles.checkpointing import check_checkpointing
from .activations import (checkpointed_inputs_bytes, checkpointed_layers, checkpointing_assumptions,
                          eval_attention_bytes, int8_kept_bytes, layer_activations, offloaded_input_bytes)
from .adapter import adapter_bytes, lora_tensor_shapes, trainable_params
from .breakdown import Breakdown
from .experts import (allocator_cache_bytes, check_moe_plan, expert_base_components, load_transient_bytes,
                      moe_assumptions, moe_layer, router_logits_bytes)
from .calibration import Calibration
from .fsdp_reserve import all_gather_reserve, compute_stream_after_wrap, gathered_bytes
from .logits import fp32_block
from .loss_paths import LossBuffers, eval_loss_bytes, loss_buffers, metrics_copy_strands_segment
from .optimizer import OptimizerMemory, optimizer_memory
from .weights import base_components, dequant_buffer_bytes, lm_head_cast_bytes, unquantized_bytes_per_param

LIBRARY_VERSIONS = "transformers 5.x, peft >= 0.17, bitsandbytes >= 0.48, torch >= 2.6"


def estimate(model: ModelArch, gpu: GpuSpec, plan: TrainPlan, calibration: Calibration,
             vram_bytes: int | None = None) -> Breakdown:
    """The Breakdown of one plan with these calibration parameters (DEFAULT_CALIBRATION: the built-in ones, asked
    for by name; vramplan.planner.Planner hands each GPU its own)."""
    lay = resolve(plan, model, gpu)
    parts = _parts(model, lay, calibration)
    phases = _phases(model, lay, calibration, parts)
    managed = shard_per_rank(model, lay, phases, parts.opt.managed) if lay.fsdp else parts.opt.managed
    for comps in phases.values():
        comps["cuda_workspaces"] = calibration.workspace_bytes
    b = _at_peak(model, gpu, plan, lay, calibration, phases, managed, vram_bytes, parts.loss)
    if lay.eval_batch:
        b = _with_evaluation(b, model, lay, calibration, parts)
    return replace(b, layer_saved_bytes=parts.layer_saved)


@dataclass(frozen=True)
class _Parts:
    """The component groups the phases are made of (bytes by component name)."""

    base: dict
    """The base model's weights, constants, embeddings and norms."""
    resident: dict
    """Alive for the whole step: base weights, adapter, optimizer states (DDP: its gradient buckets)."""
    between: dict
    """Alive between micro-batches: the adapter's gradients when accumulating."""
    kept: dict
    """Saved for backward through the step: checkpointed inputs or every activation."""
    recompute: dict
    lm_cast: dict
    work: dict
    """A layer's transients: forward and backward working sets, the dequantized weight."""
    layer_saved: int
    lora: int
    opt: OptimizerMemory
    loss: LossBuffers
    """The stack's loss path at this plan's tokens."""
    eval_forward: int
    """One layer's forward working set at the evaluation's tokens."""


def _parts(model: ModelArch, lay: Layout, calibration: Calibration) -> _Parts:
    check_moe_plan(model, lay)
    check_checkpointing(lay)
    lora = adapter_bytes(model, lay, lay.trainable_itemsize)
    opt = optimizer_memory(lora_tensor_shapes(model, lay), lay.optim, calibration.managed_min_bytes,
                           lay.trainable_itemsize)
    base = {**base_components(model, lay), **expert_base_components(model, lay)}
    resident = {**base, "lora_adapter": lora}
    if opt.device:
        resident["optimizer_states"] = opt.device
    if lay.ddp:  # the reducer's flat buckets: a second copy of every gradient
        resident["ddp_gradient_buckets"] = lora
    la, t, act = layer_activations(model, lay), lay.tokens, calibration.activation_scale
    kept, recompute, whole = _saved_for_backward(model, lay, calibration)
    if int8_kept_bytes(model, lay):
        kept["int8_kept_inputs"] = int8_kept_bytes(model, lay)
    moe = moe_layer(model, lay)
    if moe.merged_weights:  # the experts' W + BA: every layer's without checkpointing, the recomputed one's with
        if lay.gradient_checkpointing:
            recompute["moe_lora_merged_weights"] = moe.merged_weights
        if whole:
            kept["moe_lora_merged_weights"] = moe.merged_weights * whole
    if router_logits_bytes(model, lay):
        kept["moe_router_logits"] = router_logits_bytes(model, lay)
    loss = loss_buffers(lay.loss_path, model, t, lay)
    cast = lm_head_cast_bytes(model, lay) if loss.lm_head_cast else 0
    work = {"forward": int(act * la.forward_per_token * t) + (moe.merged_weights if lay.gradient_checkpointing else 0),
            "backward": int(act * la.backward_per_token * t) + moe.merged_grad,
            "dequant_buffer": dequant_buffer_bytes(model, lay)}
    return _Parts(base, resident, {"lora_gradients": lora} if lay.grad_accum > 1 else {}, kept, recompute,
                  {"lm_head_cast": cast} if cast else {}, work, la.saved_per_token * t, lora, opt, loss,
                  int(act * max(la.forward_per_token * lay.eval_batch * lay.seq,
                                eval_attention_bytes(model, lay, lay.eval_batch))))


def _saved_for_backward(model: ModelArch, lay: Layout, calibration: Calibration) -> tuple[dict, dict, int]:
    """(kept, recompute, layers left whole): checkpointed layers keep their input (offloaded: in host memory, one
    layer's copied back for its recompute), the others every saved activation."""
    la, t, act = layer_activations(model, lay), lay.tokens, calibration.activation_scale
    n = checkpointed_layers(model, lay)
    kept, recompute = {}, {}
    if n:
        kept["checkpointed_inputs"] = checkpointed_inputs_bytes(model, lay)
        recompute["layer_recompute"] = int(act * (la.saved(lay) - la.input_per_token * t))
        if lay.checkpoint_offload:
            recompute["offloaded_input_copy"] = offloaded_input_bytes(model, lay)
    if n < model.layers:
        kept["activations"] = int(act * (model.layers - n) * la.saved(lay))
    return kept, recompute, model.layers - n


def _phases(model: ModelArch, lay: Layout, calibration: Calibration, p: _Parts) -> dict[str, dict[str, int]]:
    """Allocator-level components of each phase of a step: a new component joins the phases where it is alive."""
    load = dict(p.base)
    if model.experts:
        load["load_transient"] = load_transient_bytes(model, lay)
    elif unquantized_bytes_per_param(model, lay) == 4:  # the last 16-bit embedding/lm_head and its fp32 copy
        load["load_transient"] = 2 * model.vocab * model.hidden
    logit, dequant = calibration.logits_scale, p.work["dequant_buffer"]
    phases = {
        "load": load,
        "forward": {**p.resident, **p.between, **p.kept, "layer_workspace": p.work["forward"],
                    "dequant_buffer": dequant},
        "loss": {**p.resident, **p.between, **p.kept, **p.lm_cast,
                 "logits_loss": int(logit * p.loss.forward)},
        "backward": max(({**p.resident, **p.between, **p.kept, **p.lm_cast,
                          "logits_loss": int(logit * p.loss.backward)},
                         {**p.resident, "lora_gradients": p.lora, **p.kept, **p.recompute,
                          "layer_workspace": p.work["backward"], "dequant_buffer": dequant}),
                        key=lambda c: sum(c.values())),
        "optimizer": {**p.resident, "lora_gradients": p.lora},
    }
    if p.opt.step_temp:
        phases["optimizer"]["optimizer_step_temp"] = p.opt.step_temp
    return phases


def _at_peak(model, gpu, plan, lay, calibration, phases, managed, vram_bytes, loss: LossBuffers) -> Breakdown:
    """The peak phase, what the run-time adds on top of it, and what the run needs not to run out of memory."""
    peak_phase = max(phases, key=lambda p: sum(phases[p].values()))
    allocated = sum(phases[peak_phase].values())
    if lay.fsdp:
        slack = max(0, fsdp_reserved(model, lay, phases, peak_phase, calibration) - allocated)
    else:
        slack = calibration.stack_slack_bytes.get(lay.loss_path) or calibration.slack(
            lay.tokens, model.intermediate, lay.allocator, loss.largest_block)
        if lay.allocator == "expandable" and lay.loss_path in calibration.stack_slack_bytes:
            slack = max(slack, calibration.stack_expandable_slack_bytes)
    comm = calibration.nccl_bytes if lay.gpus > 1 else 0
    # FSDP with PyTorch's default allocator: step 2 can take one more fp32 loss segment (trace
    # llama-3.1-8b-2048x2-default: a 64 MiB forward block lands at the start of a root-sized hole and the last
    # fp32 loss block no longer fits). It happened in 3 of 12 such runs on 2 x H200 (llama-3.1-8b at r=64 twice,
    # mistral-nemo-12b at 4,096 tokens) and not in the 9 others (llama-3.2-3b at r=64, qwen3-8b at r=32 among
    # them): the plan does not predict it, so it is the fragmentation event, in peak_upper_bytes, not peak_bytes
    resplit = 0 if lay.fsdp else logits_resplit_bytes(model, lay)
    managed_at_peak = managed if peak_phase != "load" else 0
    cache = allocator_cache_bytes(model, lay)
    components = {"cuda_context": calibration.context_bytes, **phases[peak_phase], "nccl_communication": comm,
                  "optimizer_states_paged": managed_at_peak, "allocator_slack": slack, "logits_resplit": resplit,
                  "moe_allocator_cache": cache}
    under_pressure = int(allocated * (1 + calibration.pressure_fragmentation))  # the allocated peak, fragmented
    required = calibration.context_bytes + comm + managed_at_peak + under_pressure
    required = _capped(required, sum(components.values()), lay)
    return Breakdown(
        model=model.name, gpu=gpu.name, plan=plan.to_dict(), layout=lay.to_dict(), peak_phase=peak_phase,
        components={k: v for k, v in components.items() if v}, phases=phases, peak_allocated_bytes=allocated,
        peak_reserved_bytes=allocated + slack + resplit + cache, managed_bytes=managed,
        capacity_bytes=vram_bytes or calibration.usable_bytes(gpu), required_bytes=required,
        fragmentation_event_bytes=(0 if resplit or lay.allocator != "default" or lay.loss_path != "hf_full"
                                   else fp32_block(lay.tokens, model.vocab)),
        trainable_params=trainable_params(model, lay), train_peak_bytes=sum(components.values()),
        assumptions=assumptions(model, gpu, lay, calibration), calibration=calibration.to_dict())


def _capped(required: int, peak: int, lay: Layout) -> int:
    """A TRL plan never needs more than it holds on a card with room (its slack is below the fragmentation term);
    the plain Trainer's required bytes are what its capped runs validated, left as they are."""
    return required if lay.loss_path == "hf_full" else min(required, peak)


def _with_evaluation(b: Breakdown, model: ModelArch, lay: Layout, calibration: Calibration, p: _Parts) -> Breakdown:
    """The evaluation loop after training: one batch without gradients (the resident model, a layer's forward
    working set, the loss path's buffers at eval_batch x seq tokens; no logits kept across batches without
    compute_metrics), on a reserve that training already grew. The peak is the larger of the two phases."""
    tokens = lay.eval_batch * lay.seq
    ev = {**p.resident, "eval_layer_workspace": p.eval_forward, "dequant_buffer": p.work["dequant_buffer"],
          "cuda_workspaces": calibration.workspace_bytes,
          "eval_logits_loss": eval_loss_bytes(lay.loss_path, model, tokens, calibration.eval_logits_bytes_per_element)}
    alloc = sum(ev.values())
    if lay.allocator == "expandable":  # freed pages serve any later size: the reserve grows only past its peak
        reserved = max(b.peak_reserved_bytes, alloc)  # (measured: llama-3.1-8b, TRL 1.16, H200, calibration/train)
    else:
        reserved = b.peak_reserved_bytes + int(calibration.eval_reserve_growth * max(0, alloc - sum(p.resident.values())))
    outside = b.components.get("cuda_context", 0) + b.components.get("nccl_communication", 0) + b.managed_bytes
    phases = {**b.phases, "evaluation": ev}
    required = max(b.required_bytes, outside + int(alloc * (1 + calibration.pressure_fragmentation)))
    if outside + reserved <= b.peak_bytes:
        return replace(b, phases=phases, required_bytes=_capped(required, b.peak_bytes, lay))
    components = {"cuda_context": calibration.context_bytes, **ev,
                  "nccl_communication": b.components.get("nccl_communication", 0),
                  "optimizer_states_paged": b.managed_bytes, "allocator_slack": reserved - alloc}
    required = _capped(required, outside + reserved, lay)
    return replace(b, phases=phases, required_bytes=required, peak_phase="evaluation",
                   components={k: v for k, v in components.items() if v}, peak_allocated_bytes=max(
                       alloc, b.peak_allocated_bytes), peak_reserved_bytes=reserved, fragmentation_event_bytes=0)


SHARDED = ("weights_4bit", "weights_16bit", "quant_constants", "norms_biases", "lora_adapter", "lora_gradients",
           "optimizer_states", "optimizer_step_temp")


def shard_per_rank(model: ModelArch, plan: Layout, phases: dict[str, dict[str, int]], managed: int) -> int:
    """FSDP full shard, per rank (in place on phases); returns the per-rank managed bytes.

    Decoder weights, constants, norms, the adapter, its gradients and optimizer states are split N ways (with CPU
    offload the shards live in CPU memory and the optimizer steps there). The root unit (embeddings, lm_head,
    final norm) is gathered for the whole step and keeps its 1/N shard beside the gathered copy; while a layer
    computes, its unit and the prefetched next one are gathered. Measured on 2 x H200 (calibration/multi_gpu)."""
    n = plan.gpus
    layer_unit = (phases["load"].get("weights_4bit", 0) + phases["load"].get("weights_16bit", 0)
                  + phases["load"].get("quant_constants", 0)) // model.layers
    for name, comps in phases.items():
        if name == "load":  # every rank loads the whole quantized model before FSDP wraps and shards it
            continue
        for key in SHARDED:
            if key in comps:
                comps[key] = 0 if plan.offload else -(-comps[key] // n)
        if comps.get("embeddings_lm_head") and not plan.offload:
            comps["fsdp_root_shard"] = comps["embeddings_lm_head"] // n
        if name in ("forward", "backward") and ("layer_workspace" in comps or "layer_recompute" in comps):
            comps["fsdp_gathered_units"] = 2 * layer_unit
    return 0 if plan.offload else -(-managed // n)


def fsdp_reserved(model: ModelArch, plan: Layout, phases: dict[str, dict[str, int]], peak_phase: str,
                  calibration: Calibration) -> int:
    """Per-rank torch reserve with FSDP: the all-gather stream's pool plus the compute stream's, which the wrap
    and the loss blocks set, or training where it outgrows the holes the wrap left (memory/fsdp_reserve.py)."""
    peak = phases[peak_phase]
    compute = max(compute_stream_after_wrap(model, plan, phases) + calibration.fsdp_wrap_extra_bytes,
                  sum(peak.values()) - gathered_bytes(peak)
                  + calibration.fsdp_train_slack(plan.tokens, model.intermediate, plan.allocator))
    return all_gather_reserve(phases) + compute


def logits_resplit_bytes(model: ModelArch, plan: Layout) -> int:
    """One more fp32 tokens x vocab segment, where the default caching allocator is measured to need it.

    Allocation traces (bench/segment_split.py) show the mechanism: blocks that live long in step 2 (saved
    activations without checkpointing; the backward thread's 32 MiB cuBLAS workspace) are best-fit into the
    freed step-1 logits segments and split them, so the next concurrent logits buffer takes a fresh segment.
    Where it lands depends on every freed block, so it is charged to the plan shapes where it was seen (no
    checkpointing, 16-bit LoRA); expandable segments remap pages instead of splitting and do not need it."""
    if plan.loss_path in ("trl_full", "trl_full_copies"):
        # SFTTrainer's metrics over the full logits; under expandable segments not measured, so charged
        taken = plan.allocator != "default" or metrics_copy_strands_segment(model, plan.batch, plan.seq)
        return fp32_block(plan.tokens, model.vocab) if taken else 0
    if plan.loss_path != "hf_full" or plan.allocator != "default" or (
            plan.gradient_checkpointing and plan.quantized):
        return 0
    return fp32_block(plan.tokens, model.vocab)


def assumptions(model: ModelArch, gpu: GpuSpec, plan: Layout, calibration: Calibration) -> list[str]:
    out = [f"library versions: {LIBRARY_VERSIONS} (standard recipe: from_pretrained with BitsAndBytesConfig, "
           "prepare_model_for_kbit_training, peft LoRA, "
           + (f"TRL {plan.trl_version} SFTTrainer, loss path {plan.loss_path}; every position a label, so the "
              "scored tokens are all tokens)" if plan.trainer == "trl" else "the plain transformers Trainer)"),
           "peak = CUDA context + torch reserved + managed (paged) memory, as nvidia-smi shows it on a card with room",
           "fits = context + managed + allocated peak + fragmentation <= capacity (under pressure PyTorch frees "
           "its cache and retries before it raises OOM)",
           f"calibration constants: {calibration.source}",
           "sequences padded/packed to --seq; no padding attention mask (SDPA runs its causal kernel)"]
    if plan.eval_batch:
        out.append(f"evaluation at batch {plan.eval_batch} without compute_metrics (no logits kept across batches), "
                   "after training grew the allocator's reserve")
    if plan.quantized and plan.kbit_prepare:
        out.append("prepare_model_for_kbit_training casts embeddings, lm_head and norms to fp32")
    elif plan.quantized:
        out.append("no prepare_model_for_kbit_training: embeddings, lm_head and norms stay 16-bit")
    if not model.known_family:
        out.append(f"model_type {model.model_type!r} is not a known family: read as Llama-like "
                   "(q/k/v/o and gate/up/down projections)")
    if plan.dtype == "bf16" and not gpu.bf16:
        out.append(f"{gpu.name} has no bf16 support: use --dtype fp16 (same memory)")
    if plan.attn == "flash_attention_2":
        out.append("flash_attention_2 modelled like SDPA's flash kernel (same saved tensors)")
    if model.attn_logit_softcapping and plan.attn != "eager":
        out.append("this model's attention logit soft-capping is ignored by SDPA/flash kernels")
    if model.note:
        out.append(model.note)
    return out + checkpointing_assumptions(model, plan) + moe_assumptions(model, plan)
