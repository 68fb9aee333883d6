"""What the subcommands share: plan flags, name resolution, JSON output."""
from __future__ import annotations

import argparse
import json
import sys

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


def plan_from_args(args, gpu) -> TrainPlan:
    """The plan the flags give (dtype: the GPU's default unless typed)."""
    fields = flags.given_fields(args)
    fields["gpus"] = gpus_from_args(args) or 1
    return flags.plan_from_fields(flags.gpu_defaults(gpu, fields))


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
