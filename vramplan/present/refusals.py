"""The English of the plans refused before any number (decisions.Refusal): what the stack would do, and the way out."""
from __future__ import annotations

from .. import decisions as D
from ..decisions import Refusal, reason

ATTENTION_ONLY = "--targets q_proj,k_proj,v_proj,o_proj"
TEXT = {
    D.PARAMWRAPPER_DROPOUT: (
        "--dropout {dropout:g}: with these targets peft puts LoRA on {model_type}'s fused experts ({wrapped_list}) "
        "through lora.ParamWrapper, which raises \"lora.ParamWrapper does not work with lora_dropout != 0\" "
        "(peft 0.21 tuners/lora/layer.py)",
        "use --dropout 0, or keep dropout and put LoRA on attention only: " + ATTENTION_ONLY
        + " (the experts then stay frozen)"),
    D.EXPERTS_HALF_TARGETED: (
        "--targets: {have} without {missing}: peft fuses them into {model_type}'s gate_up_proj and refuses to target "
        "one alone (\"Cannot convert PEFT target(s) ... without also targeting ...\")",
        "target both {have} and {missing}, or neither"),
    D.MOE_SEVERAL_GPUS: (
        "--gpus {gpus}: Mixture-of-Experts models are modelled on one GPU only (their experts under DDP or FSDP "
        "were not measured)", "plan it with --gpus 1"),
    D.MOE_QUANT: (
        "--quant {quant}: Mixture-of-Experts models are modelled with a 4-bit base only (the MoE runs were nf4; "
        "8-bit and 16-bit bases were not measured)", "use --quant nf4"),
    D.MOE_NO_KBIT_PREPARE: (
        "--no-kbit-prepare: Mixture-of-Experts models are modelled with prepare_model_for_kbit_training, which "
        "casts the experts to fp32; their 16-bit experts without that cast were not measured (memory or speed)",
        "leave --no-kbit-prepare off"),
    D.MOE_CHECKPOINT_MODE: (
        "--checkpoint-every / --checkpoint-offload: partial and offloaded checkpointing were measured on dense "
        "models only; the Mixture-of-Experts runs checkpointed every layer or none",
        "drop --checkpoint-every and --checkpoint-offload (full checkpointing), or --no-gradient-checkpointing"),
}


def refusal(code: str, **numbers) -> Refusal:
    """The Refusal of a decision code with its numbers, worded."""
    from .reasons import say  # reasons imports this module's TEXT
    why = reason(code, **numbers)
    hint = TEXT[code][1].format(**numbers)
    return Refusal(why, say(why), hint=hint)
