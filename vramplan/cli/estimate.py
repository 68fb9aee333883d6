"""`vramplan estimate MODEL --gpu GPU [plan flags] [--json]`: the memory breakdown of one plan."""
from __future__ import annotations

import argparse
import math

from ..errors import VramplanError
from ..memory import Breakdown
from ..planner import Planner
from ..present import model_json, model_lines, say
from ..present.display import estimate_lines
from ..profiles import find_gpu, find_model
from ..store.calibrations import Calibrations
from .common import check_context, add_plan_args, add_vram_arg, plan_from_args, print_json, vram_from_args
from ..present.time_cost import Job, figures, lines as time_cost_lines
from ..speed import not_measured, predicted_tokens_per_second, speed_params, speed_source

SUFFIXES = {"k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9}


def token_count(text: str) -> int:
    """--tokens: a whole number of tokens, 1 or more; 20M, 1.5B and 300k read as they say."""
    t = text.strip().lower().replace(",", "").replace("_", "")
    scale = SUFFIXES.get(t[-1:], 1)
    try:
        value = float(t[:-1] if scale > 1 else t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of tokens (e.g. 20000000 or 20M)")
    if not math.isfinite(value) or value * scale < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 token, got {text}")
    return int(round(value * scale))


def _finite(text: str) -> float:
    """argparse names the flag; float() alone takes nan and inf, which no epoch count or price is."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def epochs_value(text: str) -> float:
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def price_value(text: str) -> float:
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"USD per GPU hour cannot be negative, got {text}")
    return value


def add_time_args(p) -> None:
    """--tokens, --epochs, --price: the job and its price, for the time to train and its cost."""
    p.add_argument("--tokens", type=token_count, default=None,
                   help="tokens in the data set, one epoch (e.g. 20M): gives the time to train")
    p.add_argument("--epochs", type=epochs_value, default=None, help="passes over the data (default 1; needs --tokens)")
    p.add_argument("--price", type=price_value, default=None,
                   help="USD per GPU hour (yours: none is assumed): gives the cost")


def job_from_args(args) -> Job:
    if args.epochs is not None and args.tokens is None:
        raise VramplanError("--epochs: needs --tokens (the data set's tokens)", hint="e.g. --tokens 20M --epochs 3")
    return Job(tokens=args.tokens, epochs=args.epochs or 1.0, price=args.price)


def plan_time_cost(model, gpu, plan, b: Breakdown, job: Job) -> dict:
    """The fitted model's speed for a plan and the time and cost of the job (vramplan.present.time_cost)."""
    return figures(plan, predicted_tokens_per_second(model, gpu, plan, b), speed_params(gpu),
                   speed_source(gpu, plan), job, not_measured(gpu, plan))


def register(sub) -> None:
    p = sub.add_parser("estimate", help="memory breakdown of one training plan",
                       description="Predict the peak GPU memory of one QLoRA training plan, component by component.")
    p.add_argument("model", metavar="MODEL", help="catalog name, hub id, config.json or model folder")
    p.add_argument("--gpu", required=True, help="catalog GPU name (vramplan gpus)")
    add_plan_args(p)
    add_vram_arg(p)
    add_time_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    model, gpu = find_model(args.model), find_gpu(args.gpu)
    plan = plan_from_args(args, gpu)
    check_context(model, plan.seq)
    job = job_from_args(args)
    planner = Planner(gpu, Calibrations.shipped(), vram_from_args(args))
    b = planner.estimate(model, plan)
    saving = planner.biggest_saving(model, plan, b)
    saving = {"change": say(saving), "saves_bytes": saving["saves_bytes"]} if saving else None
    tc = plan_time_cost(model, gpu, plan, b, job)
    if args.json:
        d = b.to_dict()
        d["gpu"] = gpu.summary()
        d["model_summary"] = model.summary()
        d["biggest_saving"] = saving
        print_json({**d, **model_json(model), **time_cost_json(tc)})
        return 0
    print("\n".join(model_lines(model, args.model)
                     + estimate_lines(b, model, gpu, saving, [""] + time_cost_lines(tc))))
    return 0


def time_cost_json(tc: dict) -> dict:
    """The headline figures at the top level of --json, every figure under time_cost."""
    return {**{k: tc[k] for k in ("tokens_per_s", "step_s", "train_s", "cost_usd", "speed_source")},
            "time_cost": tc}
