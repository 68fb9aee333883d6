"""The plan vramplan chooses for a Mixture-of-Experts model, and what it says about the experts.

peft 0.21 wraps fused expert parameters in lora.ParamWrapper, which raises "lora.ParamWrapper does not work with
lora_dropout != 0" (tuners/lora/layer.py): where the experts are targets and the user left the dropout open, the
plan takes dropout 0 instead of the recipe's. A dropout the user typed stays, and memory/experts.py refuses it.
"""
from __future__ import annotations

from . import decisions as D
from . import flags
from .decisions import Reason, reason
from .errors import VramplanError
from .memory.experts import expert_targets
from .plan import TrainPlan
from .profiles import ModelArch

RECIPE_DROPOUT = TrainPlan.__dataclass_fields__["dropout"].default


def wrapped_experts(model: ModelArch, plan: TrainPlan) -> list[str]:
    """The expert parameters peft wraps in a ParamWrapper under the plan's targets (dropout aside)."""
    if model.experts is None:
        return []
    t = expert_targets(model, plan.with_(dropout=0.0))
    return [name for name, rank in (("router", t.router), ("gate_up_proj", t.gate_up), ("down_proj", t.down))
            if rank]


def for_model(model: ModelArch, fields: dict) -> dict:
    """Plan fields with what the model decides where they were left open: dropout 0 where the experts would be
    ParamWrapper targets (fields: as flags.plan_from_fields takes them; a dropout given is kept)."""
    if model.experts is None or fields.get("dropout") is not None:
        return fields
    try:
        wrapped = wrapped_experts(model, flags.plan_from_fields({**fields, "dropout": 0.0}))
    except VramplanError:  # a plan refused for another reason is refused where it is estimated
        return fields
    return {**fields, "dropout": 0.0} if wrapped else fields


def plan_for_model(model: ModelArch, plan: TrainPlan) -> TrainPlan:
    """A plan of the recipe's dropout moved to the model: dropout 0 where its experts are ParamWrapper targets
    (for a plan vramplan made, or another model's plan it compares)."""
    if plan.dropout == RECIPE_DROPOUT and model.experts is not None and wrapped_experts(model, plan):
        return plan.with_(dropout=0.0)
    return plan


def experts_lora(model: ModelArch, plan: TrainPlan) -> Reason | None:
    """EXPERTS_LORA: what LoRA the routed experts get under the plan, and the dropout that follows."""
    if model.experts is None:
        return None
    return reason(D.EXPERTS_LORA, model_type=model.model_type, wrapped=wrapped_experts(model, plan),
                  converted=model.experts.peft_names is not None, dropout=plan.dropout,
                  recipe_dropout=RECIPE_DROPOUT)


def kbit_prepare_off(model: ModelArch, plan: TrainPlan, expert_bytes: int) -> Reason | None:
    """EXPERTS_KBIT_PREPARE: a plan whose experts are fp32 only because prepare_model_for_kbit_training casts them:
    what they take, and what they would take left in the checkpoint's 16 bits (a path not measured, so refused)."""
    if model.experts is None or not (plan.quantized and plan.kbit_prepare) or model.dtype == "float32":
        return None
    return reason(D.EXPERTS_KBIT_PREPARE, model_type=model.model_type, expert_bytes=expert_bytes,
                  sixteen_bit_bytes=expert_bytes // 2)
