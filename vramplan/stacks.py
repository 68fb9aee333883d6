"""Training stacks and their releases: which loss path a stack runs, read from profiles/stacks/ (no torch).

`hf` is the plain transformers Trainer (full logits, the fp32 loss of ForCausalLMLoss); `trl` is TRL's
SFTTrainer, whose loss path changed between releases (profiles/stacks/trl.json cites the sources).
"""
from __future__ import annotations

import json
from functools import lru_cache

from .errors import VramplanError
from .resources import data_dir

TRAINERS = ("trl", "hf")
HF_PATH = "hf_full"


@lru_cache(maxsize=None)
def trl_profile() -> dict:
    return json.loads((data_dir("profiles") / "stacks" / "trl.json").read_text())


def trl_releases() -> tuple[str, ...]:
    return tuple(trl_profile()["releases"])


def default_trl_release() -> str:
    return trl_profile()["default"]


def normalize_release(text) -> str:
    """'1.16.0', '1.16' or 1.16 -> '1.16'; a release that is not modelled is an error naming those that are."""
    parts = str(text).strip().lstrip("v").split(".")
    short = ".".join(parts[:2]) if len(parts) >= 2 and all(p.isdigit() for p in parts[:2]) else str(text)
    if short not in trl_profile()["releases"]:
        raise VramplanError(f"--trl-version: TRL {text} is not modelled",
                            hint="modelled releases: " + ", ".join(trl_releases()))
    return short


def loss_path(trainer: str, release: str) -> str:
    if trainer == "hf":
        return HF_PATH
    return trl_profile()["releases"][normalize_release(release)]


def trainable_itemsize(trainer: str, quantized: bool, fp32_adapters: bool) -> int:
    """Bytes per trainable parameter: peft keeps LoRA in fp32; SFTTrainer casts it to bf16 on a quantized model
    unless the adapters are cast back after the trainer is built."""
    if trainer == "trl" and quantized and not fp32_adapters:
        return 2
    return 4


def refused_trl_keys() -> dict[str, str]:
    return dict(trl_profile()["refused_keys"])
