"""lm_head output and the loss: often the peak at long sequences with large vocabularies.

transformers' ForCausalLMLoss upcasts the 16-bit logits to fp32 and cross_entropy keeps the fp32 log_softmax;
in backward the nll gradient and the log_softmax gradient are both dense fp32 (tokens x vocab).
"""
from __future__ import annotations

from ..plan import TrainPlan
from ..profiles.models import ModelArch

C = 2
FP32 = 4


def fp32_block(tokens: int, width: int) -> int:
    """One fp32 tokens x width buffer: width = vocab is a logits/loss block, width = intermediate an MLP block
    (the units the allocator's slack is measured in)."""
    return FP32 * tokens * width


def loss_forward_bytes(model: ModelArch, plan: TrainPlan) -> int:
    """16-bit logits + fp32 upcast + fp32 log_softmax, alive together inside the loss."""
    per_token = (C + 2 * FP32) * model.vocab
    if model.final_logit_softcapping:
        per_token += 2 * C * model.vocab  # logits / cap, tanh (kept), * cap
    return per_token * plan.tokens + C * model.hidden * plan.tokens  # + lm_head's saved 16-bit input


def loss_backward_bytes(model: ModelArch, plan: TrainPlan) -> int:
    """log_softmax output + nll gradient + log_softmax gradient (fp32), at the start of backward."""
    per_token = 3 * FP32 * model.vocab
    if model.final_logit_softcapping:
        per_token += C * model.vocab
    return per_token * plan.tokens + C * model.hidden * plan.tokens
