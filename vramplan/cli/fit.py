"""`vramplan fit MODEL --gpu GPU`: the fastest plan that fits, with alternatives, or why nothing fits."""
from __future__ import annotations

from ..profiles import find_gpu, find_model
from ..store.calibrations import Calibrations
from ..planner import Planner
from ..search import SAFETY_MARGIN
from ..units import GiB
from .common import add_multi_gpu_args, gpus_from_args, positive_int, print_json, vram_from_args
from ..present import bar, model_json, model_lines, plan_line
from ..present.reasons import fit_reasons, reasons_json
from ..present.time_cost import lines as time_cost_lines
from ..speed import predicted_tokens_per_second
from .estimate import add_time_args, job_from_args, plan_time_cost, time_cost_json


def register(sub) -> None:
    p = sub.add_parser("fit", help="recommend the fastest plan that fits",
                       description="Search rank, micro-batch x accumulation, optimizer and checkpointing for the "
                                   "fastest QLoRA plan that fits the GPU with a safety margin.")
    p.add_argument("model", metavar="MODEL", help="catalog name, hub id, config.json or model folder")
    p.add_argument("--gpu", required=True, help="catalog GPU name (vramplan gpus); 2xNAME for two of them")
    p.add_argument("--seq", type=positive_int("--seq"), default=2048, help="sequence length (default 2048)")
    p.add_argument("--effective-batch", type=positive_int("--effective-batch"), default=16,
                   help="sequences per optimizer step (default 16)")
    p.add_argument("--rank", type=positive_int("--rank"), default=None, help="fix the LoRA rank")
    p.add_argument("--vram", default=None, help="judge against this much memory instead (e.g. 22GiB)")
    add_multi_gpu_args(p, search=True)
    add_time_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    model, gpu = find_model(args.model), find_gpu(args.gpu)
    job = job_from_args(args)
    planner = Planner(gpu, Calibrations.shipped(), vram_from_args(args))
    result = planner.fit(model, seq=args.seq, effective_batch=args.effective_batch, rank=args.rank,
                         gpus=gpus_from_args(args) or 1, parallel=args.parallel)
    rec = result.recommended
    tc = plan_time_cost(model, gpu, rec.plan, rec.breakdown, job) if rec else None
    if args.json:
        print_json({**to_json(result), **model_json(model), **(time_cost_json(tc) if tc else {})})
    else:
        print("\n".join(model_lines(model, args.model) + render(result, tc)))
    return 0 if result.recommended else 1


def _fitted(result, c) -> dict:
    """The fitted model's tokens/s and seconds per step of a candidate (tokens_per_s_estimate: the ranking's)."""
    tps = predicted_tokens_per_second(result.model, result.gpu, c.plan, c.breakdown)
    return {"tokens_per_s": round(tps, 1),
            "step_s": round(c.plan.tokens * c.plan.grad_accum * c.plan.gpus / tps, 4)}


def to_json(result) -> dict:
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


def render(result, tc: dict | None = None) -> list[str]:
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
    lines += [f"  {line}" for line in (time_cost_lines(tc) if tc else [])]
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
