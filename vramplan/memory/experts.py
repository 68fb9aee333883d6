"""Mixture-of-Experts components: the routed experts and router as the libraries store them, LoRA on them, and
what their forward and backward keep. Pure; no torch.

Read from transformers 5.17 / bitsandbytes 0.50 / peft 0.21 sources:
- replace_with_bnb_linear swaps only modules whose type is nn.Linear (transformers integrations/bitsandbytes.py);
  the fused experts `gate_up_proj [E, 2I, h]`, `down_proj [E, h, I]` and the router `weight [E, h]` are plain
  Parameters, so they load in the checkpoint dtype, and prepare_model_for_kbit_training casts every 16-bit
  non-Params4bit parameter to fp32 (peft utils/other.py), one parameter at a time.
- peft's _convert_peft_config_moe (utils/transformers_weight_conversion.py) turns all-linear, or the v4 names
  gate/up/down (and `gate`, the router), into target_parameters with rank 2r on gate_up_proj. Each becomes a
  lora.ParamWrapper: lora_A [r*E, in], lora_B [out, r*E] (one rank-r LoRA per expert), and on each forward the
  parametrization materializes W' = W + scaling * B A for the whole stack (torch.baddbmm in W's dtype); grouped_mm
  saves W' and its inputs for backward (tuners/lora/layer.py ParamWrapper, _LoraFactorsProxy).
- The grouped_mm experts path (integrations/moe.py) casts its input to the weight dtype and is not autocast: with
  fp32 experts it computes and saves in fp32. Per routed slot (S = tokens * top_k) it keeps the down output [S, h],
  the gate_up output [S, 2I], act(gate) [S, I], three int64 permutations, an fp32 routing weight and a bool mask;
  per token the router keeps its fp32 softmax [T, E], the top-k indices (int64) and values (fp32).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config_readers import ALL_LINEAR
from .. import decisions as D
from ..plan import TrainPlan
from ..profiles.experts import ROUTER_NAME, allocator_cache, measured_families
from ..profiles.models import ModelArch
from ._round import r512
from .weights import unquantized_bytes_per_param

_PER_SLOT_INDEX_BYTES = 3 * 8 + 4 + 1  # three int64 permutations, the fp32 routing weight, the bool mask


def expert_dtype_bytes(model: ModelArch, plan: TrainPlan) -> int:
    """Bytes per expert weight on the GPU: the checkpoint dtype, fp32 after prepare_model_for_kbit_training."""
    return unquantized_bytes_per_param(model, plan)


@dataclass(frozen=True)
class ExpertTargets:
    """The ParamWrapper LoRA ranks peft gives the experts and the router (0: not a target)."""

    gate_up: int = 0
    down: int = 0
    router: int = 0

    @property
    def any(self) -> bool:
        return bool(self.gate_up or self.down or self.router)


def expert_targets(model: ModelArch, plan: TrainPlan) -> ExpertTargets:
    """What peft wraps for this plan's targets; a plan peft refuses is refused here, naming peft's rule."""
    ex = model.experts
    if ex is None or ex.peft_names is None:
        return ExpertTargets()
    gate, up, down = ex.peft_names
    r = plan.rank
    if plan.targets == ALL_LINEAR:
        t = ExpertTargets(gate_up=2 * r, down=r, router=r)
    else:
        names = set(plan.targets)
        if (gate in names) != (up in names):
            have, missing = (gate, up) if gate in names else (up, gate)
            raise _refusal(D.EXPERTS_HALF_TARGETED, model_type=model.model_type, have=have, missing=missing)
        t = ExpertTargets(gate_up=2 * r if gate in names else 0, down=r if down in names else 0,
                          router=r if ROUTER_NAME in names else 0)
    if t.any and plan.dropout:
        wrapped = [name for name, rank in (("router", t.router), ("gate_up_proj", t.gate_up), ("down_proj", t.down))
                   if rank]
        raise _refusal(D.PARAMWRAPPER_DROPOUT, model_type=model.model_type, dropout=plan.dropout, wrapped=wrapped)
    return t


def _refusal(code: str, **numbers):
    from ..present.refusals import refusal  # present imports memory: worded at the raise, not at import
    return refusal(code, **numbers)


def check_moe_plan(model: ModelArch, plan: TrainPlan) -> None:
    """An MoE plan outside what was measured (one GPU, 4-bit base with prepare_model_for_kbit_training, full or
    no checkpointing) is refused; so is one peft refuses."""
    if model.experts is None:
        return
    if plan.gpus > 1:
        raise _refusal(D.MOE_SEVERAL_GPUS, gpus=plan.gpus)
    if plan.quant not in ("nf4", "fp4"):
        raise _refusal(D.MOE_QUANT, quant=plan.quant)
    if plan.quantized and not plan.kbit_prepare:
        raise _refusal(D.MOE_NO_KBIT_PREPARE)
    if plan.gradient_checkpointing and (plan.checkpoint_every > 1 or plan.checkpoint_offload):
        raise _refusal(D.MOE_CHECKPOINT_MODE)
    expert_targets(model, plan)


def _wrapped(model: ModelArch, t: ExpertTargets) -> list[tuple[int, int, int, int]]:
    """(rank, experts in the wrapper, in_features, out_features) of each wrapped parameter of one layer."""
    ex, h = model.experts, model.hidden
    out = []
    if t.router:
        out.append((t.router, 1, h, ex.count))  # a 2-D [E, h] parameter: one LoRA
    if t.gate_up:
        out.append((t.gate_up, ex.count, h, 2 * ex.width))
    if t.down:
        out.append((t.down, ex.count, ex.width, h))
    return out


def expert_lora_wrapped(model: ModelArch, plan: TrainPlan) -> list[tuple[int, int, int, int]]:
    """(rank, experts, in_features, out_features) of each parameter peft wraps in one layer; [] for none."""
    return _wrapped(model, expert_targets(model, plan)) if model.experts is not None else []


def expert_lora_shapes(model: ModelArch, plan: TrainPlan) -> list[tuple[int, int]]:
    """One layer's ParamWrapper tensors: lora_A [r*E, in] and lora_B [out, r*E] per wrapped parameter."""
    if model.experts is None:
        return []
    shapes = []
    for rank, e, fan_in, fan_out in _wrapped(model, expert_targets(model, plan)):
        shapes += [(rank * e, fan_in), (fan_out, rank * e)]
    return shapes


def expert_base_components(model: ModelArch, plan: TrainPlan) -> dict[str, int]:
    """The experts and routers of every layer, unquantized."""
    ex = model.experts
    if ex is None:
        return {}
    c, h = expert_dtype_bytes(model, plan), model.hidden
    per_layer = r512(c * ex.count * 2 * ex.width * h) + r512(c * ex.count * h * ex.width)
    return {"moe_experts": model.layers * per_layer, "moe_router": model.layers * r512(c * ex.count * h)}


def _merged_weight_bytes(model: ModelArch, plan: TrainPlan) -> tuple[int, int]:
    """(all W' one layer's forward makes, what W''s gradient adds over them at its worst): each wrapped parameter's
    W + BA, in its dtype. The backward runs the wrappers in reverse order and frees each W' once its grouped_mm
    node has run, so W'_i's gradient [E, out, in] lives beside W'_1..W'_i only."""
    c = expert_dtype_bytes(model, plan)
    sizes = [r512(c * e * fan_in * fan_out) for _, e, fan_in, fan_out in _wrapped(model, expert_targets(model, plan))]
    grad_over = max((s - sum(sizes[i + 1:]) for i, s in enumerate(sizes)), default=0)
    return sum(sizes), max(grad_over, 0)


@dataclass(frozen=True)
class MoeLayer:
    """What one MoE layer adds to the attention-and-shared-MLP layer of memory/activations.py."""

    saved_per_token: int
    forward_per_token: int
    backward_per_token: int
    merged_weights: int
    """W' stacks the ParamWrapper forward makes and grouped_mm saves for backward (independent of tokens)."""
    merged_grad: int
    """What the backward's gradient of a W' (one at a time, before baddbmm reduces it to A and B) adds over the W'
    stacks still saved."""


def moe_layer(model: ModelArch, plan: TrainPlan) -> MoeLayer:
    ex = model.experts
    if ex is None:
        return MoeLayer(0, 0, 0, 0, 0)
    c, h, i, k = expert_dtype_bytes(model, plan), model.hidden, ex.width, ex.top_k
    t = expert_targets(model, plan)
    saved = k * (c * (h + 3 * i) + _PER_SLOT_INDEX_BYTES) + 4 * ex.count + 12 * k + 4
    # grouped_mm keeps its inputs once its weight (W') needs a gradient: the gathered hidden [S, h], act*up [S, I]
    saved += k * c * ((h if t.gate_up else 0) + (i if t.down else 0))
    if t.router:
        saved += 2 * h  # F.linear under autocast keeps the 16-bit router input for W''s gradient
    if ex.shared_width:
        saved += 2 * 4  # shared_expert_gate's output and its sigmoid, fp32 (the 4-bit linear returns fp32)
    merged, largest = _merged_weight_bytes(model, plan)
    work = k * c * (2 * h + 3 * i)  # gathered input, gate_up and act outputs, the unpermuted output
    return MoeLayer(saved, work, work, merged, largest)


def router_logits_kept(model: ModelArch, plan: TrainPlan) -> bool:
    """Whether the run returns router logits for the auxiliary loss. The plain Trainer: the config's
    output_router_logits. TRL's SFTTrainer (trainer/sft_trainer.py of each release) sets it itself: up to 1.6 it
    reads the config; 1.7-1.13 turn it on for every MoE config (SFTConfig.router_aux_loss_coef defaults to
    0.001); from 1.14 the coefficient defaults to the config's router_aux_loss_coef, on unless that is 0."""
    ex = model.experts
    if ex is None:
        return False
    if plan.trainer != "trl":
        return ex.router_logits
    release = tuple(int(p) for p in plan.trl_version.split(".")[:2])
    if release < (1, 7):
        return ex.router_logits
    return release < (1, 14) or ex.aux_loss_coef != 0


def router_logits_bytes(model: ModelArch, plan: TrainPlan) -> int:
    """Every layer's [T, E] 16-bit router logits are kept to the loss, and the auxiliary load-balancing loss keeps
    their softmax for backward (load_balancing_loss_func, modeling_<family>.py)."""
    if not router_logits_kept(model, plan):
        return 0
    return model.layers * 2 * 2 * plan.tokens * model.experts.count


def load_transient_bytes(model: ModelArch, plan: TrainPlan) -> int:
    """The load's extra copy at its peak. prepare_model_for_kbit_training casts parameter by parameter
    (`param.data = param.data.to(fp32)`): casting p holds its 16-bit copy beside the fp32 one while the later
    parameters are still 16-bit, so the peak over the cast is fp32-everything plus max(2 p - 2 sum(after p)).
    Without the cast, the load's fusion of per-expert checkpoint tensors holds one layer's gate_up twice."""
    ex, h = model.experts, model.hidden
    c = expert_dtype_bytes(model, plan)
    if c == 4 and model.dtype != "float32":
        order = [model.embedding_params] + [ex.count * h, ex.count * 2 * ex.width * h, ex.count * h * ex.width] \
            * model.layers + ([model.lm_head_params] if model.lm_head_params else [])
        peak, after = 0, 0
        for n in reversed(order):
            peak = max(peak, 2 * n - 2 * after)
            after += n
        return peak
    return r512(c * ex.count * 2 * ex.width * h)


def allocator_cache_sizes(model: ModelArch, plan: TrainPlan) -> tuple[int, int, int]:
    """The three sizes a family's allocator cache is a multiple of: one layer's gate_up_proj in 16 bits, every
    layer's down_proj in 16 bits, and one W' of gate_up_proj at the experts' dtype when they carry LoRA."""
    ex, h = model.experts, model.hidden
    gate_up, down = ex.count * 2 * ex.width * h, ex.count * ex.width * h
    copy = expert_dtype_bytes(model, plan) * gate_up if expert_targets(model, plan).gate_up else 0
    return 2 * gate_up, 2 * down * model.layers, copy


def allocator_cache_bytes(model: ModelArch, plan: TrainPlan) -> int:
    """The caching allocator's reserve beyond the allocated peak that the family's GPU runs measured (0 for a
    dense model or a family not measured, which is refused before it gets here)."""
    ex = model.experts
    k = allocator_cache(model.model_type) if ex is not None and model.model_type in measured_families() else None
    if k is None:
        return 0
    gate_up, down, copy = allocator_cache_sizes(model, plan)
    return int(k.gate_up_16bit * gate_up + k.down_16bit_per_layer * down + k.lora_gate_up_copy * copy)


def moe_assumptions(model: ModelArch, plan: TrainPlan) -> list[str]:
    """What the output says about how the experts were counted."""
    ex = model.experts
    if ex is None:
        return []
    dtype = {4: "fp32", 2: "16-bit"}[expert_dtype_bytes(model, plan)]
    t = expert_targets(model, plan)
    lora = ("LoRA on the experts through peft's ParamWrapper (gate_up_proj rank {}, down_proj rank {}, router "
            "rank {}; each forward materializes W + BA of the whole stack)".format(t.gate_up, t.down, t.router)
            if t.any else "no LoRA on the routed experts (they stay frozen)")
    return [f"Mixture-of-Experts: {ex.count} experts, {ex.top_k} per token, the grouped_mm path; experts and "
            f"routers are plain Parameters bitsandbytes does not quantize, held in {dtype}; {lora}"]
