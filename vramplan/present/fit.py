"""A FitResult in words: `vramplan fit`'s text and its --json."""
from __future__ import annotations

from ..search import SAFETY_MARGIN
from ..speed import predicted_tokens_per_second
from ..units import GiB
from .display import bar, plan_line
from .reasons import fit_reasons, reasons_json


def _fitted(result, c) -> dict:
    """The fitted model's tokens/s and seconds per step of a candidate (tokens_per_s_estimate: the ranking's)."""
    tps = predicted_tokens_per_second(result.model, result.gpu, c.plan, c.breakdown)
    return {"tokens_per_s": round(tps, 1),
            "step_s": round(c.plan.tokens * c.plan.grad_accum * c.plan.gpus / tps, 4)}


def fit_json(result) -> dict:
    """`fit --json`: one object."""
    rec = result.recommended
    fastest = rec.tokens_per_s if rec else 0
    return {
        "model": result.model.summary(), "gpu": result.gpu.summary(), "gpus": result.gpus,
        **({"one_gpu": result.one_gpu.to_dict(result.one_gpu.tokens_per_s) if result.one_gpu else None,
            "one_gpu_needs_bytes": result.one_gpu_needs} if result.gpus > 1 else {}),
        "capacity_bytes": result.capacity_bytes, "limit_bytes": result.limit_bytes,
        "safety_margin": SAFETY_MARGIN,
        "recommended": ({**rec.to_dict(fastest), **_fitted(result, rec), "required_bytes": rec.breakdown.required_bytes,
                         "components": rec.breakdown.components} if rec else None),
        "alternatives": [{**c.to_dict(fastest), **_fitted(result, c)} for c in result.alternatives],
        "reasons": reasons_json(([result.versus_one_gpu] if result.versus_one_gpu else []) + result.reasons),
        "suggestions": result.suggestions,
        "speed_note": "tokens_per_s and step_s: the speed model fitted to measured step times (speed_source); "
                      "tokens_per_s_estimate and relative_speed: the roofline the search ranks plans by",
        "calibration": rec.breakdown.calibration["source"] if rec else None,
    }


def fit_lines(result, time_cost: list[str] = ()) -> list[str]:
    """`fit`'s text: the limit, the recommendation, its speed, time and cost (time_cost: vramplan.present.time_cost
    lines) and why, the alternatives, or why nothing fits."""
    m, g = result.model, result.gpu
    on = f"{result.gpus} x {g.name}" if result.gpus > 1 else g.name
    each = " each" if result.gpus > 1 else ""
    lines = [f"{m.name} ({m.total_params / 1e9:.2f}B) on {on} ({g.memory_mib / 1024:.1f} GiB{each}): "
             f"limit {result.limit_bytes / GiB:.2f} GiB{each} ({SAFETY_MARGIN:.0%} safety margin)"]
    rec = result.recommended
    if rec is None:
        lines.append("\nNOTHING FITS.")
        lines += [f"  - {r}" for r in fit_reasons(result)]
        return lines
    b = rec.breakdown
    lines += ["", "recommended: " + plan_line(rec.plan.to_dict()),
              f"  needs {b.required_bytes / GiB:.2f} GiB (nvidia-smi peak {b.peak_bytes / GiB:.2f} GiB) "
              f"{bar(b.required_bytes, result.capacity_bytes, result.limit_bytes)}"]
    lines += [f"  {line}" for line in time_cost]
    lines += ["", "why:"]
    lines += [f"  - {r}" for r in fit_reasons(result)]
    if result.alternatives:
        multi = result.gpus > 1
        lines += ["", "alternatives:", f"  {'micro-batch x accum':>20s}  {'ckpt':>4s}  {'optimizer':18s} {'rank':>4s}  "
                                      + (f"{'layout':>12s}  " if multi else "") + f"{'GiB':>6s}  {'speed':>5s}"]
        for c in result.alternatives:
            p = c.plan
            layout = f"{p.parallel}{'+offload' if p.offload else ''}"
            lines.append(f"  {str(p.batch) + ' x ' + str(p.grad_accum):>20s}  {'on' if p.gradient_checkpointing else 'off':>4s}"
                         f"  {p.optim:18s} {p.rank:>4d}  " + (f"{layout:>12s}  " if multi else "")
                         + f"{c.breakdown.required_bytes / GiB:6.2f}  {c.tokens_per_s / rec.tokens_per_s:5.2f}x")
        lines.append("  (speed: relative, by the roofline the search ranks plans with; the speed line above is the "
                     "model fitted to measured step times)")
    lines.append(f"\ncalibration: {b.calibration['source']}")
    return lines
