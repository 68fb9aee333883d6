"""How a training config's keys combine into one plan field (the `read` of a Flag declaration in plan.py): the
transformers, peft, TRL and axolotl spellings of the same setting."""
from __future__ import annotations

from .errors import VramplanError

ALL_LINEAR = "all-linear"


def parse_targets(value):
    """Target modules as typed or read: all-linear, a comma list, or a list of names."""
    if isinstance(value, (list, tuple)):
        if not all(isinstance(t, str) for t in value):
            bad = next(t for t in value if not isinstance(t, str))
            raise VramplanError(f"--targets: target modules must be names, got a {type(bad).__name__}",
                                hint='write them like ["q_proj", "v_proj"], or all-linear')
        return tuple(t.strip() for t in value if t.strip())
    text = str(value)
    return text if text == ALL_LINEAR else tuple(t.strip() for t in text.split(",") if t.strip())


def read_targets(found: dict):
    if found.get("lora_target_linear"):
        return ALL_LINEAR
    for key in ("target_modules", "lora_target_modules"):
        if key in found:
            return parse_targets(found[key])
    return None


def read_dtype(found: dict):
    if found.get("bf16") == "auto":
        return None  # axolotl: bf16 where the GPU has it, which is vramplan's default too
    if found.get("bf16"):
        return "bf16"
    if found.get("fp16"):
        return "fp16"
    compute = str(found.get("bnb_4bit_compute_dtype", ""))
    if compute.endswith(("bfloat16", "bf16")):
        return "bf16"
    if compute.endswith(("float16", "fp16")):
        return "fp16"
    return None


def read_quant(found: dict):
    if found.get("load_in_4bit") or found.get("adapter") == "qlora":
        return str(found.get("bnb_4bit_quant_type", "nf4"))
    if found.get("load_in_8bit"):
        return "int8"
    if found.get("adapter") == "lora" or found.get("load_in_4bit") is False:
        return "none"
    return None


def read_attn(found: dict):
    if "attn_implementation" in found:
        return str(found["attn_implementation"])
    if found.get("flash_attention"):
        return "flash_attention_2"
    if found.get("sdp_attention"):
        return "sdpa"
    return None


EVAL_BATCH_DEFAULT = 8
"""transformers' per_device_eval_batch_size when a config evaluates without naming it."""


def read_eval_batch(found: dict):
    strategy = str(getattr(found.get("eval_strategy", found.get("evaluation_strategy")), "value",
                           found.get("eval_strategy", found.get("evaluation_strategy", ""))))
    on = (strategy.lower() not in ("", "no", "none", "false") or bool(found.get("do_eval"))
          or bool(found.get("val_set_size")))
    if not on:
        return 0 if ("eval_strategy" in found or "evaluation_strategy" in found) else None
    value = found.get("per_device_eval_batch_size", found.get("eval_batch_size", EVAL_BATCH_DEFAULT))
    if isinstance(value, bool) or not isinstance(value, int):
        raise VramplanError(f"--config: per_device_eval_batch_size must be a whole number, got {value!r}")
    return value
