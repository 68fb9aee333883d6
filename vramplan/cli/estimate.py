"""`vramplan estimate MODEL --gpu GPU [plan flags] [--json]`: the memory breakdown of one plan."""
from __future__ import annotations

import argparse

from ..errors import VramplanError
from ..memory import Breakdown
from ..planner import Planner
from ..present import model_json, model_lines, say
from ..present.display import estimate_lines
from ..profiles import find_gpu, find_model
from ..store.calibrations import Calibrations
from .common import check_context, add_plan_args, add_vram_arg, plan_from_args, print_json, vram_from_args
from ..present.time_cost import Job, lines as time_cost_lines, parse_epochs, parse_price, parse_tokens, plan_figures


def _argument_type(parse):
    """A vramplan.present.time_cost parser as an argparse type: its reason becomes argparse's message."""
    def convert(text: str):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = parse.__name__
    return convert


token_count, epochs_value, price_value = (_argument_type(f) for f in (parse_tokens, parse_epochs, parse_price))


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
    tc = plan_figures(model, gpu, plan, b, job)
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
