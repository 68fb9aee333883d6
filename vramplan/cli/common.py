"""What the subcommands share: plan flags, name resolution, JSON output."""
from __future__ import annotations

import argparse
import json
import sys

from ..errors import VramplanError
from ..plan import ALLOCATORS, ATTENTIONS, DTYPES, OPTIMIZERS, PARALLELS, QUANTS, TrainPlan
from ..profiles import gpu_count
from ..units import parse_size


def positive_int(flag: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag}: {text!r} is not a whole number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{flag}: must be positive, got {value}")
        return value
    return parse


def add_plan_args(p: argparse.ArgumentParser, only_given: bool = False, skip: tuple[str, ...] = ()) -> None:
    """Plan flags. only_given: leave flags the user did not type out of the namespace (so a --config can
    supply them)."""
    d = TrainPlan()
    g = p.add_argument_group("plan (defaults: the standard QLoRA recipe)")
    g.add_argument("--rank", type=positive_int("--rank"), default=d.rank, help=f"LoRA rank r (default {d.rank})")
    g.add_argument("--alpha", type=float, default=d.alpha, help=f"LoRA alpha (default {d.alpha:g})")
    g.add_argument("--dropout", type=float, default=d.dropout, help=f"LoRA dropout (default {d.dropout:g})")
    g.add_argument("--targets", default=d.targets, help="all-linear or a comma list such as q_proj,v_proj")
    g.add_argument("--batch", type=positive_int("--batch"), default=d.batch, help="micro-batch (default 1)")
    g.add_argument("--grad-accum", type=positive_int("--grad-accum"), default=d.grad_accum,
                   help="gradient accumulation steps (default 1)")
    if "seq" not in skip:
        g.add_argument("--seq", type=positive_int("--seq"), default=d.seq, help="sequence length (default 2048)")
    g.add_argument("--optim", default=d.optim, help="transformers optim name: " + ", ".join(OPTIMIZERS))
    g.add_argument("--dtype", choices=DTYPES, default=None, help="compute dtype (default: bf16 where supported)")
    g.add_argument("--no-gradient-checkpointing", dest="gradient_checkpointing", action="store_false")
    g.add_argument("--no-double-quant", dest="double_quant", action="store_false")
    g.add_argument("--quant", choices=QUANTS, default=d.quant, help="base weights (default nf4)")
    g.add_argument("--attn", choices=ATTENTIONS, default=d.attn, help="attention implementation (default sdpa)")
    add_multi_gpu_args(g, d)
    g.add_argument("--allocator", choices=ALLOCATORS, default=d.allocator,
                   help="PyTorch's caching allocator as is (default) or with expandable_segments:True (expandable; "
                        "what `vramplan train` uses)")
    if only_given:
        for action in g._group_actions:
            action.default = argparse.SUPPRESS


def add_multi_gpu_args(g, d: TrainPlan = TrainPlan(), search: bool = False) -> None:
    g.add_argument("--gpus", type=positive_int("--gpus"), default=None,
                   help="GPUs of one host (or name them --gpu 2xRTX-4090); figures are per GPU")
    g.add_argument("--parallel", choices=PARALLELS, default=None if search else d.parallel,
                   help="with --gpus: fsdp shards the 4-bit base (default), ddp keeps a whole copy per GPU"
                        + ("; fit searches both unless given" if search else ""))
    if not search:
        g.add_argument("--offload", action="store_true", help="with FSDP: shards, gradients and optimizer states "
                                                              "in CPU memory (needs --optim adamw_torch)")


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
    dtype = args.dtype or gpu.default_dtype
    return TrainPlan(rank=args.rank, alpha=args.alpha, dropout=args.dropout, targets=args.targets, batch=args.batch,
                     grad_accum=args.grad_accum, seq=args.seq, optim=args.optim, dtype=dtype,
                     gradient_checkpointing=args.gradient_checkpointing, double_quant=args.double_quant,
                     quant=args.quant, attn=args.attn, allocator=args.allocator, gpus=gpus_from_args(args) or 1,
                     parallel=args.parallel, offload=args.offload)


def vram_from_args(args) -> int | None:
    return parse_size(args.vram) if getattr(args, "vram", None) else None


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


PLAN_FIELDS = ("rank", "alpha", "dropout", "targets", "batch", "grad_accum", "seq", "optim", "dtype",
               "gradient_checkpointing", "double_quant", "quant", "attn", "allocator", "gpus", "parallel", "offload")


def given_plan_fields(args, skip: tuple[str, ...] = ()) -> dict:
    """The plan flags the user typed (add_plan_args(only_given=True) leaves the others out of args)."""
    fields = {k: getattr(args, k) for k in PLAN_FIELDS if k not in skip and hasattr(args, k)}
    gpus = gpus_from_args(args)
    if gpus:
        fields["gpus"] = gpus
    return fields
