"""`vramplan table`'s text: the rows, each plan's speed, time and cost where the job and a price say them, and
which GPU (or model) is the fastest and the cheapest for the job."""
from __future__ import annotations

from ..units import GiB
from .display import checkpointing_cell
from .time_cost import duration


def fastest_and_cheapest(rows: list[dict], key: str) -> dict:
    """The fastest row that fits (most tokens/s: for one job, the shortest time to train), the fastest and the
    cheapest (least USD per token) of the priced ones, by key (gpu or model); None where there is none."""
    fitting = [r for r in rows if r["time_cost"]]
    priced = [r for r in fitting if r["time_cost"]["price_usd_per_gpu_hour"] is not None]
    fastest = max(fitting, key=lambda r: r["time_cost"]["tokens_per_s"], default=None)
    fastest_priced = max(priced, key=lambda r: r["time_cost"]["tokens_per_s"], default=None)
    cheapest = min(priced, key=lambda r: r["time_cost"]["cost_per_million_tokens_usd"], default=None)
    return {"fastest": _named(fastest, key), "fastest_priced": _named(fastest_priced, key),
            "cheapest": _named(cheapest, key)}


def _named(r: dict | None, key: str) -> dict | None:
    if r is None:
        return None
    tc = r["time_cost"]
    return {key: r[key], **{k: tc[k] for k in ("tokens_per_s", "train_s", "cost_usd", "cost_per_million_tokens_usd",
                                               "speed_source")}}


def _plan_text(r: dict) -> str:
    p = r["plan"]
    if r.get("beyond_context"):
        return f"seq beyond its context ({r['context']:,})"
    if not p:
        return "-"
    cell = checkpointing_cell(p)
    ckpt = "no-ckpt" if cell == "off" else "ckpt" + cell[2:] if cell.startswith("on") else "ckpt " + cell
    return f"r{p['rank']} {p['batch']}x{p['grad_accum']} {ckpt} {p['optim']} {p['dtype']}"


def _time_cost_cells(tc: dict | None, timed: bool) -> str:
    if tc is None:
        return f"{'-':>8s}" + (f"  {'-':>11s}" if timed else "") + f"  {'-':>10s}"
    speed = f"{tc['tokens_per_s']:8,.0f}"
    when = f"  {duration(tc['train_s']):>11s}" if timed else ""
    if tc["cost_usd"] is not None:
        cost = f"{tc['cost_usd']:,.2f} USD"
    elif tc["cost_per_million_tokens_usd"] is not None:
        cost = f"{tc['cost_per_million_tokens_usd']:.3f}/M"
    else:
        cost = "-"
    return f"{speed}{when}  {cost:>10s}"


def table_lines(title: str, rows: list[dict], key: str, best: dict) -> list[str]:
    timed = any(r["time_cost"] and r["time_cost"]["train_s"] is not None for r in rows)
    out = [title, f"{key:30s} {'fits':>4s}  {'GiB':>6s}  {'best plan':44s} {'longest seq':>11s}  {'tokens/s':>8s}"
                  + (f"  {'time':>11s}" if timed else "") + f"  {'cost':>10s}"]
    for r in rows:
        gib = f"{r['required_bytes'] / GiB:6.2f}" if r["required_bytes"] else "     -"
        out.append(f"{r[key]:30s} {'yes' if r['fits'] else 'no':>4s}  {gib}  {_plan_text(r):44s} "
                   f"{r['longest_seq'] or '-':>11}  {_time_cost_cells(r['time_cost'], timed)}")
    out += _best_lines(rows, key, best, timed)
    out.append("longest seq: of the leanest plan (micro-batch 1, checkpointing, the checkpoints in CPU memory where "
               "that mode is measured), not the best plan's; fit --seq N plans for a length")
    return out + _experts_lines(rows)


def _experts_lines(rows: list[dict]) -> list[str]:
    """What the LoRA of each Mixture-of-Experts model in the table does with its experts, once per model."""
    from ..decisions import Reason
    from .reasons import say  # reasons imports the memory model; the table's other words do not need it
    said: dict[str, str] = {}
    for r in rows:
        if r.get("experts_lora") and r["model"] not in said:
            numbers = {k: v for k, v in r["experts_lora"].items() if k != "code"}
            said[r["model"]] = say(Reason(r["experts_lora"]["code"], numbers))
    if len(set(said.values())) == 1 and len({r["model"] for r in rows}) == 1:  # one model: say it once
        return list(set(said.values()))
    return [f"{model}: {text}" for model, text in said.items()]


def _best_lines(rows: list[dict], key: str, best: dict, timed: bool) -> list[str]:
    if key == "model":  # one GPU, every model: each row is another job; only where the figures come from
        source = next((r["time_cost"]["speed_source"] for r in rows if r["time_cost"]), None)
        return [f"speed: {source}"] if source else []
    out = [f"fastest: {_speed_words(best['fastest'], key)}"] if best["fastest"] else []
    if best["fastest_priced"] and best["fastest_priced"] != best["fastest"]:
        out.append(f"fastest of the priced: {_speed_words(best['fastest_priced'], key)}")
    if best["cheapest"]:
        c = best["cheapest"]
        cost = (f"{c['cost_usd']:,.2f} USD for the job" if c["cost_usd"] is not None
                else f"{c['cost_per_million_tokens_usd']:.4f} USD per million trained tokens")
        out.append(f"cheapest of the priced: {c[key]} ({cost})")
    elif best["fastest"]:
        out.append("cost: give --price NAME=USD,... (USD per GPU hour) for the GPUs you can rent; none is assumed")
    if not timed and best["fastest"]:
        out.append("time: give --data FILE or --tokens N (the data set's tokens), and --epochs E, for the time to train")
    measured = sorted({r["gpu"] for r in rows if r["time_cost"] and r["time_cost"]["speed_measured_gpu"]})
    if best["fastest"]:
        out.append(f"speed: fitted to step times measured on {', '.join(measured) or 'no GPU here'}; every other "
                   "GPU's figure is its datasheet at the shares of it reached there, its error not measured (the tokens "
                   "packed into full --seq sequences; loading, warm-up, evaluation and saving not counted)")
    return out


def _speed_words(f: dict, key: str) -> str:
    when = f": {duration(f['train_s'])} of training steps" if f["train_s"] is not None else ""
    return f"{f[key]} (~{f['tokens_per_s']:,.0f} tokens/s{when})"
