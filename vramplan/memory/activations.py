"""Saved activations of the decoder layers, per token, under autocast (Trainer bf16/fp16).

What autograd keeps, read from transformers 5 / peft / bitsandbytes sources:
- MatMul4Bit saves no input (the frozen weight needs no gradient), so a 4-bit linear keeps nothing itself.
- A LoRA branch keeps its input for lora_A's weight gradient: with dropout > 0 a dropout mask (1 B) and the
  dropped copy in 16 bits; without dropout, a 16-bit cast of an fp32 input, or the 16-bit input itself.
  lora_B keeps lora_A's output (r values).
- After prepare_model_for_kbit_training the embeddings and norms are fp32, so the residual stream is fp32;
  RoPE on fp32 cos/sin promotes q and k to fp32, and SDPA's autocast casts them back to 16 bits (saved).
- SDPA (flash / memory-efficient) keeps q, k, v, its output and the fp32 log-sum-exp; eager attention keeps the
  fp32 softmax and its 16-bit copy: b*H*s^2 each.
- bitsandbytes' Linear4bit.forward ends in `.to(inp_dtype)`: fed the fp32 norm output, the q/k/v/gate/up
  projections return fp32. So the MLP keeps gate, act(gate) and up in fp32 (16 bits without quantization), and
  the product that feeds down_proj is fp32 too (measured on H100: 15 bytes per intermediate unit per token with
  LoRA dropout on down_proj, not 9).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..plan import TrainPlan
from ..profiles.models import PER_HEAD_QK_NORM, SANDWICH_NORMS, ModelArch
from .experts import moe_layer
from .weights import unquantized_bytes_per_param

C = 2  # compute dtype bytes (bf16 or fp16)
_NORM_INPUT = {"q_proj", "k_proj", "v_proj", "qkv_proj", "gate_proj", "up_proj", "gate_up_proj"}


@dataclass(frozen=True)
class LayerActivations:
    """Bytes one decoder layer keeps for backward, and what it needs while computing."""

    saved_per_token: int
    saved_per_sequence: int
    """Terms quadratic in sequence length (eager attention), per sequence."""
    input_per_token: int
    """The layer input: what gradient checkpointing keeps of each layer."""
    backward_per_token: int
    """Working set of one layer's backward: incoming/outgoing grads of the residual, MLP and attention grads."""
    forward_per_token: int

    def saved(self, plan: TrainPlan) -> int:
        return self.saved_per_token * plan.tokens + self.saved_per_sequence * plan.batch


def eval_attention_bytes(model: ModelArch, plan: TrainPlan, batch: int) -> int:
    """Eager attention without gradients, at its softmax: the 16-bit scores, their fp32 softmax and its 16-bit
    cast (transformers' eager_attention_forward: softmax(..., dtype=float32).to(query.dtype)), b*H*s^2 each,
    plus q, k, v, the repeated k and v, and the output. SDPA never materializes the scores (0)."""
    if plan.attn != "eager":
        return 0
    q, kv = model.heads * model.head_dim, model.kv_heads * model.head_dim
    per_seq = (C + 4 + C) * model.heads * plan.seq * plan.seq
    return batch * (per_seq + C * (4 * q + 2 * kv) * plan.seq)


def residual_bytes(model: ModelArch, plan: TrainPlan) -> int:
    return 4 if unquantized_bytes_per_param(model, plan) == 4 else 2


def _lora_input_bytes(model: ModelArch, plan: TrainPlan) -> int:
    targets = set(plan.target_names(model.linear_names))
    res = residual_bytes(model, plan)
    total = 0
    shared_16bit_sources = set()
    for lin in model.linears:
        if lin.name not in targets:
            continue
        total += C * plan.rank  # lora_A output kept by lora_B
        if plan.dropout > 0:
            total += 3 * lin.in_features  # mask + dropped 16-bit copy
        elif lin.name in _NORM_INPUT and res == 4:
            total += C * lin.in_features  # each adapter casts the fp32 norm output on its own
        elif lin.name in ("o_proj",):
            pass  # the attention output, already kept by SDPA
        else:
            source = "norm" if lin.name in _NORM_INPUT else lin.name
            if source not in shared_16bit_sources:
                shared_16bit_sources.add(source)
                total += C * lin.in_features
    return total


def layer_activations(model: ModelArch, plan: TrainPlan) -> LayerActivations:
    """A decoder layer; an MoE layer's gated MLP is its shared expert (none: width 0) plus memory/experts.py's
    per-token terms (the W' stacks, independent of tokens, are estimate's own components)."""
    h, d = model.hidden, model.head_dim
    inter = model.experts.shared_width if model.experts else model.intermediate
    q, kv, heads = model.heads * d, model.kv_heads * d, model.heads
    res = residual_bytes(model, plan)
    saved = 2 * res * h  # layer input + the residual after attention (both read by RMSNorm backward)
    if res == 2:
        saved += 2 * 4 * h  # RMSNorm upcasts a 16-bit input to fp32 and keeps that copy
    if model.model_type in SANDWICH_NORMS:
        saved += 2 * 4 * h  # post-attention / post-feedforward norms upcast their 16-bit inputs
    if model.model_type in PER_HEAD_QK_NORM:
        saved += 4 * (q + kv)  # q_norm / k_norm keep fp32 copies of q and k
    saved += _lora_input_bytes(model, plan)
    per_seq = 0
    if plan.attn == "eager":
        saved += C * (3 * q + q)  # q, repeated k and v, output
        per_seq = (4 + C + (C if model.attn_logit_softcapping else 0)) * heads * plan.seq * plan.seq
    else:
        saved += C * (2 * q + 2 * kv) + 4 * heads  # q, k, v, out, logsumexp
    mlp = mlp_bytes(model, plan)
    saved += 3 * mlp * inter  # gate, act(gate), up (a fused gate_up is the same bytes: gate and up halves)
    # incoming + outgoing residual grads (fp32), about 1.5 MLP-sized grads at once, attention grads
    backward = 8 * h + 3 * mlp * inter // 2 + 4 * q + C * (q + 2 * kv)
    forward = 4 * mlp * inter
    moe = moe_layer(model, plan)
    return LayerActivations(saved + moe.saved_per_token, per_seq, res * h, backward + moe.backward_per_token,
                            forward + moe.forward_per_token)


def mlp_bytes(model: ModelArch, plan: TrainPlan) -> int:
    """Bytes per element of the MLP's intermediate tensors: quantized linears return their input's dtype."""
    return 4 if plan.quantized and residual_bytes(model, plan) == 4 else C


def int8_kept_bytes(model: ModelArch, plan: TrainPlan) -> int:
    """bnb's MatMul8bitLt keeps each linear's 16-bit input and its int8 copy as ctx attributes, not through
    save_for_backward, so checkpointing cannot drop them: every layer keeps them, with or without it."""
    if plan.quant != "int8":
        return 0
    return model.layers * plan.tokens * sum(3 * lin.in_features for lin in model.linears)


def checkpointed_layers(model: ModelArch, plan: TrainPlan) -> int:
    """Decoder layers run under checkpoint: layer i when i % every_n_layers == 0 (transformers modeling_utils
    _set_gradient_checkpointing), ceil(layers / N) of them; none without checkpointing."""
    if not plan.gradient_checkpointing:
        return 0
    return -(-model.layers // plan.checkpoint_every)


def rope_bytes(model: ModelArch, plan: TrainPlan) -> int:
    """RoPE's fp32 cos and sin, handed to every layer."""
    return 2 * 4 * model.head_dim * plan.tokens


def checkpointed_inputs_bytes(model: ModelArch, plan: TrainPlan) -> int:
    """use_reentrant=False checkpointing keeps each checkpointed layer's input, plus RoPE's cos/sin once (the
    layers left whole keep theirs among their activations). Offloaded, the inputs and each layer's cos/sin live
    in pinned host memory (checkpoint's _NoopSaveInputs saves them under save_on_cpu's hooks): the GPU keeps the
    cos/sin only while a layer left whole saves them."""
    la = layer_activations(model, plan)
    n = checkpointed_layers(model, plan)
    if plan.checkpoint_offload:
        return rope_bytes(model, plan) if n < model.layers else 0
    return n * la.input_per_token * plan.tokens + rope_bytes(model, plan)


def offloaded_input_bytes(model: ModelArch, plan: TrainPlan) -> int:
    """One checkpointed layer's input and cos/sin: what save_on_cpu keeps on the host per layer, and what its
    unpack copies back to the GPU for the layer's recompute (0 without offload)."""
    if not plan.checkpoint_offload:
        return 0
    return layer_activations(model, plan).input_per_token * plan.tokens + rope_bytes(model, plan)


def checkpointing_assumptions(model: ModelArch, plan: TrainPlan) -> list[str]:
    n = checkpointed_layers(model, plan)
    out = []
    if 0 < n < model.layers:
        out.append(f"checkpointing every {plan.checkpoint_every} layers: {n} of {model.layers} decoder layers "
                   "checkpointed (i % every_n_layers == 0), the others keep their saved activations")
    if plan.checkpoint_offload:
        out.append(f"checkpoints offloaded: {n * offloaded_input_bytes(model, plan) / 2**30:.2f} GiB of pinned host "
                   "memory per micro-batch, copied over PCIe on the compute stream")
    return out
