"""A FitResult in words: `vramplan fit`'s text and its --json."""
from __future__ import annotations

from ..margin import SAFETY_MARGIN
from ..speed_fits import not_measured, speed_source
from ..units import GiB
from .display import bar, card_words, checkpointing_cell, plan_line
from .reasons import fit_reasons, reasons_json, room_words


def _speed(result, c, price: float | None) -> dict:
    """Where a candidate's speed comes from, what of it no run measured, and its cost per million tokens."""
    out = {"speed_source": speed_source(result.gpu, c.plan, result.model),
           "speed_not_measured": not_measured(result.gpu, c.plan, model=result.model)}
    if price is not None:
        out["cost_per_million_tokens_usd"] = round(price * c.gpu_seconds_per_token / 3600 * 1e6, 4)
    return out


def fit_json(result, price: float | None = None) -> dict:
    """`fit --json`: one object (price: USD per GPU hour, for each plan's cost per million tokens)."""
    rec = result.recommended
    fastest = rec.tokens_per_s if rec else 0
    return {
        "model": result.model.summary(), "gpu": result.gpu.summary(), "gpus": result.gpus,
        **({"one_gpu": {**result.one_gpu.to_dict(result.one_gpu.tokens_per_s), **_speed(result, result.one_gpu, price)}
            if result.one_gpu else None, "one_gpu_needs_bytes": result.one_gpu_needs} if result.gpus > 1 else {}),
        "capacity_bytes": result.capacity_bytes, "limit_bytes": result.limit_bytes,
        "safety_margin": SAFETY_MARGIN, "objective": result.objective,
        "recommended": ({**rec.to_dict(fastest), **_speed(result, rec, price),
                         "required_bytes": rec.breakdown.required_bytes,
                         "components": rec.breakdown.components} if rec else None),
        "alternatives": [{**c.to_dict(fastest), **_speed(result, c, price)} for c in result.alternatives],
        "reasons": reasons_json(([result.versus_one_gpu] if result.versus_one_gpu else []) + result.reasons),
        "suggestions": result.suggestions,
        "speed_note": "tokens_per_s, step_s and relative_speed: the speed model fitted to measured step times "
                      "(speed_source), which the search ranks plans by (objective: time, or cost per token)",
        "calibration": rec.breakdown.calibration["source"] if rec else None,
    }


def fit_lines(result, time_cost: list[str] = ()) -> list[str]:
    """`fit`'s text: the limit, the recommendation, its speed, time and cost (time_cost: vramplan.present.time_cost
    lines) and why, the alternatives, or why nothing fits."""
    m, g = result.model, result.gpu
    on = f"{result.gpus} x {g.name}" if result.gpus > 1 else g.name
    lines = [f"{m.name} ({m.total_params / 1e9:.2f}B) on {on} ({card_words(g.memory_mib, result.capacity_bytes, result.gpus)})"]
    rec = result.recommended
    if rec is None:
        lines.append("\nNOTHING FITS.")
        lines += [f"  - {r}" for r in fit_reasons(result)]
        return lines
    b = rec.breakdown
    lines += ["", "recommended: " + plan_line(rec.plan.to_dict()),
              f"  needs {b.required_bytes / GiB:.2f} GiB ({room_words(b.peak_bytes)}) "
              f"{bar(b.required_bytes, result.capacity_bytes, result.limit_bytes)}"]
    if b.peak_bytes > result.limit_bytes:
        lines.append("  (the peak on a card with room is above the limit: it holds allocator cache that PyTorch frees "
                     "and retries with before it runs out of memory; 'needs' is what must fit)")
    lines += [f"  {line}" for line in time_cost]
    lines += ["", "why:"]
    lines += [f"  - {r}" for r in fit_reasons(result)]
    if result.alternatives:
        lines += ["", "alternatives:"] + _alternative_lines(result)
    lines.append(f"\ncalibration: {b.calibration['source']}")
    return lines


def _alternative_lines(result) -> list[str]:
    """The alternatives' table: each plan's shape, memory, and its speed (by cost: its cost too) relative to the
    recommended plan's."""
    rec, multi, by_cost = result.recommended, result.gpus > 1, result.objective == "cost"
    out = [f"  {'micro-batch x accum':>20s}  {'ckpt':>11s}  {'optimizer':18s} {'rank':>4s}  "
           + (f"{'layout':>12s}  " if multi else "") + f"{'GiB':>6s}  {'speed':>5s}" + ("   cost" if by_cost else "")]
    for c in result.alternatives:
        p = c.plan
        layout = f"{p.gpus} x {p.parallel}{'+offload' if p.offload else ''}" if p.gpus > 1 else "1 GPU"
        cost = f"  {c.gpu_seconds_per_token / rec.gpu_seconds_per_token:5.2f}x" if by_cost else ""
        out.append(f"  {str(p.batch) + ' x ' + str(p.grad_accum):>20s}  {checkpointing_cell(p.to_dict()):>11s}"
                   f"  {p.optim:18s} {p.rank:>4d}  " + (f"{layout:>12s}  " if multi else "")
                   + f"{c.breakdown.required_bytes / GiB:6.2f}  {c.tokens_per_s / rec.tokens_per_s:5.2f}x" + cost)
    ranked = "cost per token" if by_cost else "tokens/s"
    last = result.alternatives[-1].plan if result.alternatives else None
    other = last is not None and last.optim != rec.plan.optim and (last.batch, last.gradient_checkpointing) == (
        rec.plan.batch, rec.plan.gradient_checkpointing)
    out.append(f"  (relative to the recommended plan, by the speed model fitted to measured step times; ranked by "
               f"{ranked}" + ("; last, the recommended shape with another optimizer" if other else "") + ")")
    plans = [c.plan for c in result.alternatives]
    if any(p.checkpoint_offload or p.checkpoint_every > 1 for p in plans if p.gradient_checkpointing):
        out.append("  (ckpt: on = every decoder layer checkpointed, every K = every K-th layer, +cpu = checkpoints "
                   "kept in pinned host memory)")
    return out
