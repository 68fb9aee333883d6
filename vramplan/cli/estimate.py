"""`vramplan estimate MODEL --gpu GPU [plan flags] [--json]`: the memory breakdown of one plan."""
from __future__ import annotations

import argparse

from ..errors import VramplanError
from ..planner import Planner
from ..present import model_json, model_lines, say
from ..present.display import estimate_lines
from ..present.reasons import reasons_json
from ..search_moe import experts_lora
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


def add_job_args(p) -> None:
    """--tokens or --data, and --epochs: the job, for the time to train."""
    p.add_argument("--tokens", type=token_count, default=None,
                   help="tokens in the data set, one epoch (e.g. 20M): gives the time to train")
    p.add_argument("--data", metavar="FILE", default=None,
                   help="the training file (JSON Lines or JSON: alpaca, chat messages or text, as `train` takes): "
                        "its tokens, counted with the model's tokenizer and cut at --seq, give the time to train")
    p.add_argument("--epochs", type=epochs_value, default=None,
                   help="passes over the data (default 1; needs --tokens or --data)")


def add_time_args(p) -> None:
    """--tokens or --data, --epochs, --price: the job and its price, for the time to train and its cost."""
    add_job_args(p)
    p.add_argument("--price", type=price_value, default=None,
                   help="USD per GPU hour (yours: none is assumed): gives the cost")


def job_from_args(args, model, seq: int, price: float | None) -> Job:
    """The job the flags give, at this price; --data counts its tokens at seq with the model's tokenizer
    (vramplan.data_tokens, imported only then: it needs the [data] extra)."""
    if args.data is not None and args.tokens is not None:
        raise VramplanError("--data and --tokens: give one of them (--data counts the tokens itself)",
                            hint="--data FILE, or --tokens N")
    if args.epochs is not None and args.tokens is None and args.data is None:
        raise VramplanError("--epochs: needs --tokens (the data set's tokens) or --data FILE",
                            hint="e.g. --tokens 20M --epochs 3")
    if args.data is None:
        return Job(tokens=args.tokens, epochs=args.epochs or 1.0, price=price)
    from ..data_tokens import count_data
    data = count_data(args.data, args.model, model, seq)
    return Job(tokens=data.tokens, epochs=args.epochs or 1.0, price=price, data=data)


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
    plan = plan_from_args(args, gpu, model)
    check_context(model, plan.seq)
    job = job_from_args(args, model, plan.seq, args.price)
    planner = Planner(gpu, Calibrations.shipped(), vram_from_args(args))
    b = planner.estimate(model, plan)
    saving = planner.biggest_saving(model, plan, b)
    saving = {"change": say(saving), "saves_bytes": saving["saves_bytes"]} if saving else None
    tc = plan_figures(model, gpu, plan, b, job)
    experts = experts_lora(model, plan)  # an MoE model's LoRA on its experts and the dropout that follows
    if args.json:
        d = b.to_dict()
        d["gpu"] = gpu.summary()
        d["model_summary"] = model.summary()
        d["biggest_saving"] = saving
        d["experts_lora"] = reasons_json([experts])[0] if experts else None
        print_json({**d, **model_json(model), **time_cost_json(tc)})
        return 0
    extra = [""] + ([say(experts)] if experts else []) + time_cost_lines(tc)
    print("\n".join(model_lines(model, args.model) + estimate_lines(b, model, gpu, saving, extra)))
    return 0


def time_cost_json(tc: dict) -> dict:
    """The headline figures at the top level of --json (the job's tokens, and --data's count), every figure under
    time_cost."""
    keys = ("tokens_per_s", "step_s", "train_s", "cost_usd", "speed_source", "tokens", "data_file", "examples",
            "truncated")
    return {**{k: tc[k] for k in keys},
            "time_cost": tc}
