"""`vramplan estimate MODEL --gpu GPU [plan flags] [--json]`: the memory breakdown of one plan."""
from __future__ import annotations

import argparse
import math

from ..store.calibrations import Calibrations
from ..memory import LABELS, Breakdown
from ..planner import Planner
from ..profiles import find_gpu, find_model
from ..errors import VramplanError
from ..units import GiB
from .common import add_plan_args, add_vram_arg, plan_from_args, print_json, vram_from_args
from ..present import bar, breakdown_table, model_json, model_lines, plan_line
from ..present.time_cost import Job, figures, lines as time_cost_lines
from ..speed import predicted_tokens_per_second, speed_params, speed_source

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
                   speed_source(gpu, plan), job)


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
    job = job_from_args(args)
    planner = Planner(gpu, Calibrations.shipped(), vram_from_args(args))
    b = planner.estimate(model, plan)
    saving = biggest_saving(planner, model, plan, b)
    tc = plan_time_cost(model, gpu, plan, b, job)
    if args.json:
        d = b.to_dict()
        d["gpu"] = gpu.summary()
        d["model_summary"] = model.summary()
        d["biggest_saving"] = saving
        print_json({**d, **model_json(model), **time_cost_json(tc)})
        return 0
    print("\n".join(model_lines(model, args.model) + render(b, model, gpu, saving, tc)))
    return 0


def time_cost_json(tc: dict) -> dict:
    """The headline figures at the top level of --json, every figure under time_cost."""
    return {**{k: tc[k] for k in ("tokens_per_s", "step_s", "train_s", "cost_usd", "speed_source")},
            "time_cost": tc}


def biggest_saving(planner: Planner, model, plan, b: Breakdown) -> dict | None:
    """The one plan change that lowers the peak the most."""
    options = []
    if plan.batch > 1:
        options.append((f"--batch {plan.batch // 2} with --grad-accum {plan.grad_accum * 2}",
                        plan.with_(batch=plan.batch // 2, grad_accum=plan.grad_accum * 2)))
    if not plan.gradient_checkpointing:
        options.append(("gradient checkpointing on", plan.with_(gradient_checkpointing=True)))
    if plan.seq > 256:
        options.append((f"--seq {plan.seq // 2}", plan.with_(seq=plan.seq // 2)))
    if plan.optim not in ("paged_adamw_8bit", "adamw_8bit", "sgd"):
        options.append(("--optim adamw_8bit", plan.with_(optim="adamw_8bit")))
    if plan.rank > 8:
        options.append((f"--rank {plan.rank // 2}", plan.with_(rank=plan.rank // 2)))
    if plan.quant in ("int8", "none"):
        options.append(("--quant nf4", plan.with_(quant="nf4")))
    if plan.attn == "eager":
        options.append(("--attn sdpa", plan.with_(attn="sdpa")))
    best = None
    for label, alt in options:
        saved = b.peak_bytes - planner.estimate(model, alt).peak_bytes
        if saved > 0 and (best is None or saved > best["saves_bytes"]):
            best = {"change": label, "saves_bytes": saved}
    return best


def render(b: Breakdown, model, gpu, saving: dict | None, tc: dict | None = None) -> list[str]:
    limit_note = f"{b.capacity_bytes / GiB:.2f} GiB usable"
    n = b.plan.get("gpus", 1)
    lines = [f"{model.name} on {f'{n} x ' if n > 1 else ''}{gpu.name} ({gpu.memory_mib / 1024:.1f} GiB"
             f"{' each' if n > 1 else ''}, {limit_note})",
             f"plan: {plan_line(b.plan)}", ""]
    lines += breakdown_table(b)
    lines += ["", f"  {bar(b.required_bytes, b.capacity_bytes)}  needs {b.required_bytes / GiB:.2f} of "
                  f"{b.capacity_bytes / GiB:.2f} GiB"]
    verdict = "FITS" if b.fits else "DOES NOT FIT"
    lines.append(f"\n{verdict}: needs {b.required_bytes / GiB:.2f} GiB to run (peak as nvidia-smi shows it on a "
                 f"card with room: {b.peak_bytes / GiB:.2f} GiB); "
                 + (f"{b.headroom_bytes / GiB:.2f} GiB to spare" if b.fits
                    else f"{-b.headroom_bytes / GiB:.2f} GiB short"))
    dom, dom_bytes = b.dominant()
    lines.append(f"dominant: {LABELS.get(dom, dom)} ({dom_bytes / GiB:.2f} GiB), peak in the {b.peak_phase} phase")
    if saving:
        lines.append(f"biggest saving: {saving['change']} (-{saving['saves_bytes'] / GiB:.2f} GiB)")
    if b.fragmentation_event_bytes:
        lines.append(f"upper bound: {(b.peak_bytes + b.fragmentation_event_bytes) / GiB:.2f} GiB if PyTorch's "
                     f"default allocator re-splits a logits segment (+{b.fragmentation_event_bytes / GiB:.2f} GiB; "
                     "measured in some runs, not predictable from the plan); --allocator expandable avoids it")
    if tc is not None:
        lines += [""] + time_cost_lines(tc)
    lines.append(f"calibration: {b.calibration['source']}")
    return lines
