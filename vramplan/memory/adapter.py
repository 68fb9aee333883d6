"""LoRA adapter tensors: peft keeps them (and so their gradients) in fp32."""
from __future__ import annotations

from ..plan import TrainPlan
from ..profiles.models import ModelArch
from ._round import r512


def lora_tensor_shapes(model: ModelArch, plan: TrainPlan) -> list[tuple[int, int]]:
    """Shapes of every lora_A (r x in) and lora_B (out x r) tensor."""
    targets = set(plan.target_names(model.linear_names))
    per_layer = []
    for lin in model.linears:
        if lin.name in targets:
            per_layer += [(plan.rank, lin.in_features), (lin.out_features, plan.rank)]
    return per_layer * model.layers


def lora_tensor_numels(model: ModelArch, plan: TrainPlan) -> list[int]:
    return [r * c for r, c in lora_tensor_shapes(model, plan)]


def trainable_params(model: ModelArch, plan: TrainPlan) -> int:
    return sum(lora_tensor_numels(model, plan))


def adapter_bytes(model: ModelArch, plan: TrainPlan) -> int:
    return sum(r512(4 * n) for n in lora_tensor_numels(model, plan))
