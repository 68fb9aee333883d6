"""Typed reads of config.json fields: each value the memory model uses is checked for type and range.

JSON has no int/bool/float discipline of its own, and transformers coerces little: `"tie_word_embeddings":
"false"` is a non-empty string and reads as true, `4096.0` heads breaks a reshape only on the GPU. So every
value is checked here, and a wrong one stops with the field's name and what it should be.
"""
from __future__ import annotations

from ..errors import VramplanError

_EXAMPLE = {"a positive whole number": "32", "true or false": "false", "a positive number or null": "30.0",
            "a string": '"llama"'}


def _bad(origin: str, key: str, value, what: str) -> VramplanError:
    example = _EXAMPLE.get(what, '"bfloat16"')
    return VramplanError(f"{origin}: {key} must be {what}, got {_show(value)}",
                         hint=f'fix it in the config.json, written as transformers writes it, e.g. "{key}": {example}')


def _show(value) -> str:
    if isinstance(value, (dict, list)):
        return "a JSON " + ("object" if isinstance(value, dict) else "list")
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


LIMITS = {"num_hidden_layers": 1024, "num_attention_heads": 4096, "num_key_value_heads": 4096, "head_dim": 4096,
          "hidden_size": 1 << 17, "intermediate_size": 1 << 20, "vocab_size": 1 << 23,
          "max_position_embeddings": 1 << 27}
"""Far above any released model: beyond them a field is a typo, and the memory model would only burn memory."""


def positive_int(config: dict, key: str, origin: str, *, default=None, optional: bool = False):
    """A whole number >= 1. `optional`: absent or null gives `default`."""
    value = config.get(key)
    if value is None:
        if optional:
            return default
        raise _bad(origin, key, value, "a positive whole number")
    # bool is an int subclass in Python; a JSON true is no layer count
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(origin, key, value, "a positive whole number")
    if value <= 0:
        raise _bad(origin, key, value, "a positive whole number")
    if key in LIMITS and value > LIMITS[key]:
        raise VramplanError(f"{origin}: {key} {_show(value)} is beyond any model vramplan can plan (at most "
                            f"{LIMITS[key]:,})", hint="fix that field of the config.json")
    return value


def _of_type(config: dict, key: str, origin: str, default, kind: type, what: str):
    """A value of one JSON type; absent or null gives `default`."""
    value = config.get(key)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise _bad(origin, key, value, what)
    return value


def boolean(config: dict, key: str, origin: str, default: bool) -> bool:
    """true / false (JSON booleans); absent or null gives `default`."""
    return _of_type(config, key, origin, default, bool, "true or false")


def positive_number(config: dict, key: str, origin: str) -> float | None:
    """A number > 0, or absent/null (None)."""
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value != value:
        raise _bad(origin, key, value, "a positive number or null")
    return float(value)


def string(config: dict, key: str, origin: str, default: str | None = None) -> str | None:
    return _of_type(config, key, origin, default, str, "a string")


DTYPES = {"bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16", "fp16": "float16", "half": "float16",
          "float32": "float32", "fp32": "float32", "float": "float32"}


def checkpoint_dtype(config: dict, origin: str) -> str:
    """`torch_dtype` (transformers 4) or `dtype` (transformers 5): what the unquantized parts load in."""
    for key in ("torch_dtype", "dtype"):
        value = config.get(key)
        if value is None or value == "auto":
            continue
        if not isinstance(value, str):
            raise _bad(origin, key, value, "a dtype name")
        name = value.replace("torch.", "").lower()
        if name not in DTYPES:
            raise VramplanError(f"{origin}: {key} {value!r} is not a checkpoint dtype vramplan models",
                                hint="use bfloat16, float16 or float32; a quantized checkpoint needs its "
                                     "16-bit base model's config.json")
        return DTYPES[name]
    return "bfloat16"
