"""The frozen base model: quantized decoder linears, their constants, and the parts kept unquantized."""
from __future__ import annotations

from ..layout import as_layout
from ..plan import TrainPlan
from ..profiles.models import ModelArch
from ._round import ceil_div, r512

NF4_BLOCK = 64  # bnb_4bit blocksize in transformers' BitsAndBytesConfig
DQ_BLOCK = 256  # double quant re-quantizes the absmax in blocks of 256


def quantized_linear_bytes(numel: int, out_features: int, plan: TrainPlan) -> tuple[int, int]:
    """(weight bytes, quantization-constant bytes) of one decoder linear, as allocated on the GPU."""
    if plan.quant in ("nf4", "fp4"):
        weight = r512(ceil_div(numel, 2))  # two 4-bit values per byte, whatever bnb_4bit_quant_storage is
        blocks = ceil_div(numel, NF4_BLOCK)
        if plan.double_quant:
            # uint8 absmax + fp32 absmax of its 256-blocks + the offset scalar + the 16-entry code
            consts = r512(blocks) + r512(4 * ceil_div(blocks, DQ_BLOCK)) + r512(4) + r512(64)
        else:
            consts = r512(4 * blocks) + r512(64)
        return weight, consts
    if plan.quant == "int8":
        return r512(numel), r512(4 * out_features)  # int8 weight + fp32 row scales (SCB)
    return r512(2 * numel), 0


def unquantized_bytes_per_param(model: ModelArch, plan: TrainPlan) -> int:
    """prepare_model_for_kbit_training casts every 16-bit non-4-bit parameter to fp32."""
    if plan.quantized and as_layout(plan, model).kbit_prepare:
        return 4
    return 4 if model.dtype == "float32" else 2


def base_components(model: ModelArch, plan: TrainPlan) -> dict[str, int]:
    w = q = 0
    for lin in model.linears:
        wb, qb = quantized_linear_bytes(lin.numel, lin.out_features, plan)
        w += wb
        q += qb
    per = unquantized_bytes_per_param(model, plan)
    embed = r512(per * model.embedding_params) + r512(per * model.lm_head_params)
    norms = sum(r512(per * n) for n in _norm_and_bias_sizes(model))
    weight_key = {"nf4": "weights_4bit", "fp4": "weights_4bit", "int8": "weights_int8"}.get(plan.quant, "weights_16bit")
    out = {weight_key: model.layers * w}
    if q:
        out["quant_constants"] = model.layers * q
    out["embeddings_lm_head"] = embed
    out["norms_biases"] = norms
    return out


def _norm_and_bias_sizes(model: ModelArch) -> list[int]:
    per_layer = [model.hidden] * (model.norm_params_per_layer // model.hidden)
    if model.norm_params_per_layer % model.hidden:
        per_layer += [model.head_dim, model.head_dim]
    per_layer += [lin.out_features for lin in model.linears if lin.bias]
    return per_layer * model.layers + [model.hidden]


def dequant_buffer_bytes(model: ModelArch, plan: TrainPlan) -> int:
    """Each 4-bit/8-bit linear call materializes its weight in the compute dtype for the matmul."""
    if not plan.quantized:
        return 0
    return r512(2 * model.largest_linear.numel)


def lm_head_cast_bytes(model: ModelArch, plan: TrainPlan) -> int:
    """Under autocast the fp32 lm_head (or tied embedding) is cast to 16 bits; matmul keeps it for backward."""
    if unquantized_bytes_per_param(model, plan) == 2:
        return 0
    return r512(2 * model.vocab * model.hidden)
