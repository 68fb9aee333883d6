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
    if isinstance(text, float):  # 1.10 as a float is 1.1: a release must be written as text
        raise VramplanError(f"--trl-version: {text!r} is a number, not a release", hint='write it as text, e.g. "1.10"')
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


def chunk_tile_bytes(release: str) -> int:
    """Bytes per element of a chunked_nll tile at its peak, per release (profiles/stacks/trl.json, measured)."""
    return trl_profile()["chunk_tile_bytes"][normalize_release(release)]


def trainable_itemsize(trainer: str, quantized: bool, fp32_adapters: bool) -> int:
    """Bytes per trainable parameter: peft keeps LoRA in fp32; SFTTrainer casts it to bf16 on a quantized model
    unless the adapters are cast back after the trainer is built."""
    if trainer == "trl" and quantized and not fp32_adapters:
        return 2
    return 4


DEFAULT_LOSS_TYPE = {"trl_full": "nll", "trl_full_copies": "nll", "trl_chunked": "chunked_nll",
                     "trl_chunked_lowp": "chunked_nll", "trl_fused": "nll"}
"""What SFTConfig.loss_type is when left unset, by the release's loss path (sft_config.py of each release)."""


def check_loss_type(loss_type: str, release: str) -> None:
    """A loss_type that takes another path than the release's default is not measured; one the release does not
    have is a contradiction. Both exit 2, naming the release."""
    path = loss_path("trl", release)
    if loss_type == DEFAULT_LOSS_TYPE[path] or (path == "trl_fused" and loss_type == "chunked_nll"):
        return  # 1.15+ rewrites chunked_nll to nll, the fused head (sft_config.py)
    if loss_type == "chunked_nll" and release in ("1.0", "1.1", "1.2", "1.3"):
        raise VramplanError(f"--config: loss_type chunked_nll does not exist in TRL {release} (it came in 1.4)",
                            hint="drop loss_type, or give the release you run with --trl-version")
    raise VramplanError(f"--config: loss_type {loss_type!r} with TRL {release} is not measured (the release's "
                        f"default is {DEFAULT_LOSS_TYPE[path]!r})", hint="drop loss_type to plan the default path")


def refused_trl_keys() -> dict[str, str]:
    return dict(trl_profile()["refused_keys"])
