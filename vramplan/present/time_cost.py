"""Tokens/s, seconds per optimizer step, the time to train and what it costs, as figures and as lines.

The speed is the fitted model's (vramplan.speed.predicted_tokens_per_second); the job is what the user said
(--tokens, or --data counted by vramplan.data_tokens, and --epochs); the price is only ever the user's (--price):
none is assumed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..speed import predicted_tokens_per_second
from ..speed_fits import SpeedParams, not_measured, speed_params, speed_source


@dataclass(frozen=True)
class Job:
    tokens: int | None = None
    """Tokens in the data set (one epoch); None: no time to train is asked for."""
    epochs: float = 1.0
    price: float | None = None
    """USD per GPU hour; None: no cost."""
    data: object = None
    """vramplan.data_tokens.DataTokens when the tokens were counted from --data (tokens is then its count)."""


SUFFIXES = {"k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9}


def parse_tokens(text: str) -> int:
    """Tokens of a data set as people write them: a whole number, 1 or more; 20M, 1.5B and 300k read as they
    say. ValueError with the reason otherwise."""
    t = text.strip().lower().replace(",", "").replace("_", "")
    scale = SUFFIXES.get(t[-1:], 1)
    try:
        value = float(t[:-1] if scale > 1 else t)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of tokens (e.g. 20000000 or 20M)") from None
    if not math.isfinite(value) or value * scale < 1:
        raise ValueError(f"must be at least 1 token, got {text}")
    return int(round(value * scale))


def _finite(text: str) -> float:
    """float() alone takes nan and inf, which no epoch count or price is."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {text}")
    return value


def parse_epochs(text: str) -> float:
    value = _finite(text)
    if value <= 0:
        raise ValueError(f"must be above 0, got {text}")
    return value


def parse_price(text: str) -> float:
    value = _finite(text)
    if value < 0:
        raise ValueError(f"USD per GPU hour cannot be negative, got {text}")
    return value


def plan_figures(model, gpu, plan, b, job: Job, tokens_per_s: float | None = None) -> dict:
    """figures() of a plan from the speed model fitted to measured step times (what estimate, fit, table and
    the TUI show); tokens_per_s: the figure when the caller has it already (a table row), else from b."""
    speed = predicted_tokens_per_second(model, gpu, plan, b) if tokens_per_s is None else tokens_per_s
    return figures(plan, speed, speed_params(gpu), speed_source(gpu, plan, model), job,
                   not_measured(gpu, plan, model=model))


def figures(plan, tokens_per_s: float, params: SpeedParams, source: str, job: Job,
            unmeasured: list[dict] = ()) -> dict:
    """Every figure behind the lines, for --json. None where the user gave nothing to compute it from.
    unmeasured: vramplan.speed_fits.not_measured of the plan."""
    per_step = plan.tokens * plan.grad_accum * plan.gpus
    step_s = per_step / tokens_per_s
    steps = math.ceil(job.tokens * job.epochs / per_step) if job.tokens else None
    train_s = steps * step_s if steps else None
    gpu_hours = train_s * plan.gpus / 3600 if train_s is not None else None
    priced = job.price is not None
    return {"tokens_per_s": round(tokens_per_s, 1), "step_s": round(step_s, 4), "tokens_per_step": per_step,
            "seq": plan.seq,
            "speed_source": source, "speed_measured_gpu": params.measured,
            "speed_error": params.error or None, "speed_not_measured": list(unmeasured), "tokens": job.tokens, "epochs": job.epochs if job.tokens else None,
            "optimizer_steps": steps, "train_s": round(train_s, 1) if train_s is not None else None,
            "gpus": plan.gpus, "gpu_hours": round(gpu_hours, 3) if gpu_hours is not None else None,
            "price_usd_per_gpu_hour": job.price,
            "cost_usd": round(gpu_hours * job.price, 2) if priced and gpu_hours is not None else None,
            "cost_per_million_tokens_usd": round(job.price * plan.gpus / (tokens_per_s * 3600) * 1e6, 4)
            if priced else None,
            **data_fields(job.data), "assumptions": assumptions(plan, params, job)}


def data_fields(data) -> dict:
    """--data's count for --json: None throughout when the tokens were typed (or not given)."""
    keys = ("data_file", "examples", "truncated", "longest", "tokenizer", "chat_template")
    out = {k: getattr(data, k) if data else None for k in keys}
    return {**out, "longest_example_tokens": out.pop("longest"), "tokens_packed": bool(data)}


def assumptions(plan, params: SpeedParams, job: Job) -> list[str]:
    out = [f"the tokens packed into full --seq {plan.seq} sequences: a step is {plan.tokens * plan.grad_accum * plan.gpus:,} "
           "token positions (`vramplan train` pads each batch to its longest example instead: short examples take "
           "more, shorter steps)",
           "steady-state optimizer steps only: loading the model, the first step (CUDA and cuBLAS warm-up, 1-5 s "
           "measured), evaluation, logging and checkpoint saves are not counted",
           "step times measured over a few steps of random-weight models (the Trainer's own loop; the data "
           "pipeline not included)"]
    if job.data is not None:
        out.append(data_assumption(job.data, plan.tokens * plan.grad_accum * plan.gpus))
    if params.error.get("loao_mae_pct") is not None:
        e = params.error
        out.append(f"the fit predicts step times of architectures it did not see with a mean error of "
                   f"{e['loao_mae_pct']:.1f}% (worst {e.get('loao_worst_pct', float('nan')):+.0f}%)")
    if not params.measured:
        out.append("this GPU has no measured runs: its figures are derived, not fitted")
    if job.price is not None:
        out.append(f"cost at the given {job.price:g} USD per GPU hour x {plan.gpus} GPU{'s' if plan.gpus > 1 else ''}")
    return out


def data_assumption(data, per_step: int) -> str:
    return (f"--data {data.data_file}: {data.examples:,} examples, {data.tokens:,} tokens counted with "
            f"{data.tokenizer}/tokenizer.json{' and its chat template' if data.chat_template else ''}, each example "
            f"cut at --seq {data.seq} ({data.truncated:,} truncated); the time takes those tokens packed into full "
            f"steps of {per_step:,} token positions, as the speed model does: batches padded to their longest "
            "example train more positions than the tokens counted")


NOT_MEASURED = {
    "multi_gpu_built_in": "{gpus} GPUs: no multi-GPU runs fitted FSDP's and DDP's costs; they are built in",
    "multi_gpu_gpu": "not measured on several {gpu}: FSDP's and DDP's costs are {fitted_on}'s",
    "gpu_count": "not measured on {gpus} GPUs (the multi-GPU runs used {counts}): the per-unit and per-step costs "
                 "are taken as they were there",
    "layout": "{layout} not measured on several GPUs: its figure is the model's, unchecked",
    "moe_speed_gpu": "the experts' step time was measured on {fitted_on}; on {gpu} it is carried by the datasheet's "
                     "fp32 rate and bandwidth",
}
"""What no run measured of a plan's speed, in words (vramplan.speed_fits.not_measured's codes). "gpu", a GPU without
runs, is said by the speed source line itself."""


def not_measured_words(items: list[dict]) -> list[str]:
    out = []
    for item in items:
        if item["code"] in NOT_MEASURED:
            layout = f"{item.get('parallel')}{' + CPU offload' if item.get('offload') else ''}"
            counts = " and ".join(map(str, item.get("measured_counts", ())))
            out.append("note: " + NOT_MEASURED[item["code"]].format(**item, layout=layout, counts=counts))
    return out


def duration(seconds: float) -> str:
    """45 s, 12 min, 2 h 35 min, 3 d 4 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f} min"
    hours, mins = divmod(round(minutes), 60)
    if hours < 48:
        return f"{hours} h {mins} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def lines(d: dict) -> list[str]:
    """The speed line, then the time and the cost when the user gave what they need."""
    out = [f"speed: ~{d['tokens_per_s']:,.0f} tokens/s, {d['step_s']:.2f} s per optimizer step "
           f"({d['tokens_per_step']:,} tokens); {d['speed_source']}"]
    out += not_measured_words(d.get("speed_not_measured", ()))
    if d["train_s"] is not None and d.get("data_file"):
        epochs = d["epochs"]
        out.append(data_line(d))
        out.append(f"time: {epochs:g} epoch{'s' if epochs != 1 else ''} of {d['tokens']:,} tokens = "
                   f"{d['optimizer_steps']:,} optimizer steps: {duration(d['train_s'])} of training steps "
                   f"(the tokens packed into full {d['seq']:,}-token sequences, as the speed model assumes: padded "
                   "batches train more positions; loading, warm-up, evaluation and saving not counted)")
    elif d["train_s"] is not None:
        epochs = d["epochs"]
        out.append(f"time: {epochs:g} epoch{'s' if epochs != 1 else ''} of {d['tokens']:,} tokens = "
                   f"{d['optimizer_steps']:,} optimizer steps: {duration(d['train_s'])} of training steps "
                   f"(the tokens packed into full {d['seq']:,}-token sequences; padded batches take more steps; "
                   "loading, warm-up, evaluation and saving not counted)")
    else:
        out.append("time: give --data FILE or --tokens N (the data set's tokens), and --epochs E, for the time to "
                   "train")
    if d["price_usd_per_gpu_hour"] is not None:
        per_m = f"{d['cost_per_million_tokens_usd']:.4f} USD per million trained tokens"
        if d["cost_usd"] is not None:
            out.append(f"cost: {d['cost_usd']:,.2f} USD at {d['price_usd_per_gpu_hour']:g} USD per GPU hour x "
                       f"{d['gpus']} GPU{'s' if d['gpus'] > 1 else ''} ({d['gpu_hours']:,.2f} GPU hours; {per_m})")
        else:
            out.append(f"cost: {per_m} at {d['price_usd_per_gpu_hour']:g} USD per GPU hour (--data FILE or "
                       "--tokens N for the whole run)")
    return out


def data_line(d: dict) -> str:
    """--data's count, from figures(): the file, its examples and tokens, the tokenizer, the truncated."""
    return (f"data: {d['data_file']}: {d['examples']:,} examples, {d['tokens']:,} tokens by "
            f"{d['tokenizer']}/tokenizer.json{' and its chat template' if d['chat_template'] else ''}; "
            f"{d['truncated']:,} longer than --seq {d['seq']:,} (cut there; the longest has "
            f"{d['longest_example_tokens']:,})")


def brief_lines(d: dict) -> list[str]:
    """The TUI's few lines: speed, then time and cost where the job and the price give them."""
    where = "fitted on this GPU" if d["speed_measured_gpu"] else "datasheet x Hopper fit"
    out = [f"~{d['tokens_per_s']:,.0f} tokens/s, {d['step_s']:.2f} s/step ({where})"]
    if d["train_s"] is not None:
        out.append(f"time: {d['optimizer_steps']:,} steps, {duration(d['train_s'])} of training")
    else:
        out.append("time: type the data set's tokens (e.g. 20M)")
    if d["cost_usd"] is not None:
        out.append(f"cost: {d['cost_usd']:,.2f} USD ({d['gpu_hours']:,.1f} GPU h)")
    elif d["price_usd_per_gpu_hour"] is not None:
        out.append(f"cost: {d['cost_per_million_tokens_usd']:.4f} USD per million trained tokens")
    else:
        out.append("cost: type your USD per GPU hour")
    return out
