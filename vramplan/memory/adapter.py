"""LoRA adapter tensors: peft keeps them (and so their gradients) in fp32."""
from __future__ import annotations

from ..plan import TrainPlan
from ..profiles.models import ModelArch
from ._round import r512
from .experts import expert_lora_shapes


def _layer_shapes(model: ModelArch, plan: TrainPlan) -> list[tuple[int, int]]:
    """One decoder layer's lora_A (r x in) and lora_B (out x r) shapes, the experts' ParamWrapper ones included."""
    targets = set(plan.target_names(model.linear_names))
    per_layer = []
    for lin in model.linears:
        if lin.name in targets:
            per_layer += [(plan.rank, lin.in_features), (lin.out_features, plan.rank)]
    return per_layer + expert_lora_shapes(model, plan)


def lora_tensor_shapes(model: ModelArch, plan: TrainPlan) -> list[tuple[int, int]]:
    """Shapes of every lora_A (r x in) and lora_B (out x r) tensor, the experts' ParamWrapper ones included."""
    return _layer_shapes(model, plan) * model.layers


def lora_tensor_numels(model: ModelArch, plan: TrainPlan) -> list[int]:
    return [r * c for r, c in lora_tensor_shapes(model, plan)]


def trainable_params(model: ModelArch, plan: TrainPlan) -> int:
    return model.layers * sum(r * c for r, c in _layer_shapes(model, plan))


def adapter_bytes(model: ModelArch, plan: TrainPlan, itemsize: int = 4) -> int:
    """The LoRA tensors at `itemsize` bytes each (4: peft's fp32; 2 where SFTTrainer casts them to bf16)."""
    return model.layers * sum(r512(itemsize * r * c) for r, c in _layer_shapes(model, plan))
