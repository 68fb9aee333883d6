"""What the subcommands share: plan flags, name resolution, JSON output."""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from pathlib import Path

from .. import flags
from ..errors import VramplanError
from ..plan import TrainPlan
from ..profiles import gpu_count
from ..units import parse_size


def add_plan_args(p: argparse.ArgumentParser, only_given: bool = False, skip: tuple[str, ...] = ()) -> None:
    """Plan flags. only_given: leave flags the user did not type out of the namespace (so a --config can
    supply them)."""
    g = p.add_argument_group("plan (defaults: the standard QLoRA recipe)")
    flags.add_arguments(g, skip=skip, only_given=only_given)


def add_multi_gpu_args(g, search: bool = False) -> None:
    """--gpus and --parallel (fit: --parallel unset searches both)."""
    flags.add_arguments(g, names=("gpus", "parallel"), defaults={"parallel": None} if search else None)


def gpus_from_args(args) -> int | None:
    """--gpus, or the N of --gpu NxNAME; both given must agree."""
    named = gpu_count(getattr(args, "gpu", "") or "")
    flag = getattr(args, "gpus", None)
    if named and flag and named != flag:
        raise VramplanError(f"--gpu {args.gpu} names {named} GPUs but --gpus says {flag}", hint="give one of them")
    return named or flag


def add_vram_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vram", type=str, default=None, help="judge against this much memory instead (e.g. 22GiB)")


def plan_from_args(args, gpu, model) -> TrainPlan:
    """The plan the flags give (dtype: the GPU's default unless typed; what the model decides where left open,
    as fit plans it: an MoE model's dropout)."""
    from ..search_moe import for_model
    fields = flags.given_fields(args)
    fields["gpus"] = gpus_from_args(args) or 1
    return flags.plan_from_fields(for_model(model, flags.gpu_defaults(gpu, fields)))


def vram_from_args(args) -> int | None:
    return parse_size(args.vram) if getattr(args, "vram", None) else None


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def given_plan_fields(args, skip: tuple[str, ...] = ()) -> dict:
    """The plan flags the user typed (add_plan_args(only_given=True) leaves the others out of args)."""
    fields = {k: v for k, v in flags.given_fields(args).items() if k not in skip}
    gpus = gpus_from_args(args)
    if gpus:
        fields["gpus"] = gpus
    return fields


def positive_float(flag: str):
    """A finite number above zero (argparse's float takes nan, inf and negatives, which no count of epochs is)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag}: {text!r} is not a number") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"{flag}: must be a positive number, got {text}")
        return value
    return parse


# -- the model's context window ---------------------------------------------------------------------------------
ROPE_EXTENDING = {"linear", "dynamic", "yarn", "longrope", "su", "llama3", "ntk"}
"""rope types that stretch the positions a checkpoint was trained on ("default" and the absent key do not)."""


def _rope_scaling(arch) -> dict | None:
    """The rope scaling of the config.json the architecture was read from. Catalog profiles carry none (their
    max_position_embeddings already is the released context), so only a config on disk is looked at; transformers 5
    spells it rope_parameters, 4 rope_scaling, and a multimodal wrapper keeps it in text_config."""
    if arch.source_kind not in ("file", "hub-cache", "hub-download") or not arch.source:
        return None
    path = Path(arch.source.split(", revision ")[0])  # a cached config's source names its revision after it
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    for cfg in (config, config.get("text_config") if isinstance(config, dict) else None):
        if isinstance(cfg, dict):
            for key in ("rope_scaling", "rope_parameters"):
                if isinstance(cfg.get(key), dict):
                    return cfg[key]
    return None


def context_window(arch) -> tuple[int | None, str]:
    """(the longest sequence the model takes, where that figure comes from); None when the config does not say."""
    base = arch.max_position_embeddings
    if not base:
        return None, "the config gives no max_position_embeddings"
    rope = _rope_scaling(arch) or {}
    kind = str(rope.get("rope_type") or rope.get("type") or "default").lower()
    factor = rope.get("factor")
    if kind in ROPE_EXTENDING and isinstance(factor, (int, float)) and not isinstance(factor, bool) and factor > 1:
        original = rope.get("original_max_position_embeddings")
        original = original if isinstance(original, int) and not isinstance(original, bool) and original > 0 else base
        stretched = int(original * factor)
        if stretched > base:
            return stretched, f"its {kind} rope scaling x{factor:g} stretches max_position_embeddings {base}"
    return base, f"max_position_embeddings {base}"


def check_context(arch, seq: int, flag: str = "--seq") -> str | None:
    """Refuse a sequence beyond what the model was trained (or rope-scaled) to take: positions past it are
    untrained, so the plan's memory would be right for a run whose loss is not. Returns a note when rope scaling
    is what allows the length, for the output to say."""
    limit, why = context_window(arch)
    if limit is None or seq <= arch.max_position_embeddings:
        return None
    if seq > limit:
        raise VramplanError(f"{flag} {seq} is beyond {arch.name}'s context of {limit:,} tokens ({why})",
                            hint=f"use {flag} {limit} or less; to train longer, add a rope scaling to the "
                                 'config.json, e.g. "rope_scaling": {"rope_type": "linear", "factor": 2.0}')
    return (f"{flag} {seq} is beyond max_position_embeddings {arch.max_position_embeddings:,}: {why} to "
            f"{limit:,} tokens")


# -- --json ------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def progress_to_stderr(fd_level: bool = False):
    """With --json, stdout holds the one result object: everything else said on the way goes to stderr. fd_level
    also points file descriptor 1 at stderr, for the worker processes that inherit it."""
    saved = None
    if fd_level:
        try:
            sys.stdout.flush()
            saved = os.dup(1)
            os.dup2(2, 1)
        except OSError:  # no real descriptors (an embedding host): Python-level redirection still holds
            saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)
