"""The multi-GPU terms of the speed model (FSDP's per-unit cost, DDP's per-step cost), fitted on top of the
one-GPU terms to the 2 x H200 runs of calibration/multi_gpu (the plain Trainer; the slowest rank's steady step).

numpy-free; read by vramplan.calibrate.speed_solve, which writes them into the GPU's fit.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..layout import resolve
from ..memory import estimate
from ..plan import TrainPlan
from ..profiles import find_gpu, find_model
from ..resources import data_dir
from ..speed import compute_seconds_per_step, fsdp_link_seconds, fsdp_units, sync_seconds
from ..speed_fits import SpeedParams
from ..store.calibrations import Calibrations
from .records import load_runs, steady_step_seconds


def multi_gpu_rows(calib_dir: Path | None = None, calibrations: Calibrations | None = None) -> list[dict]:
    """Completed, uncapped multi-GPU runs (the plain Trainer): the slowest rank's steady step time (each rank's
    median after the first), the layout, and what
    the one-GPU terms and the link's bytes account for of it (base_s, with the solved one-GPU params later)."""
    folder = Path(calib_dir) if calib_dir else data_dir("calibration")
    cal = calibrations or Calibrations.package()
    rows = []
    for path in sorted((folder / "multi_gpu").glob("*.jsonl")):
        for r in load_runs(path):
            ranks = r.get("ranks") or []
            if r.get("status") != "ok" or r.get("cap_bytes") or not ranks or \
                    not all(k.get("step_time_s") for k in ranks):
                continue
            gpu, model, plan = find_gpu(ranks[0]["gpu"]["name"]), find_model(r["model"]), TrainPlan.from_dict(r["plan"])
            b = estimate(model, gpu, plan, cal.params(gpu))
            rows.append({"gpu_name": ranks[0]["gpu"]["name"], "profile": gpu, "model": model, "plan": plan,
                         "breakdown": b, "layout": resolve(plan, model, gpu), "why": r.get("why", ""),
                         "measured_s": max(steady_step_seconds(k) for k in ranks)})
    return rows


def _multi_base_and_count(row: dict, params: SpeedParams) -> tuple[float, float]:
    """Seconds the one-GPU terms and the link's bytes give, and the count the fitted per-unit (FSDP) or per-step
    (DDP) cost multiplies."""
    lay, plan, model, b = row["layout"], row["plan"], row["model"], row["breakdown"]
    base = compute_seconds_per_step(model, plan, b, params, lay)
    if lay.fsdp:
        return base + plan.grad_accum * fsdp_link_seconds(model, row["profile"], lay, b), \
            plan.grad_accum * fsdp_units(model, lay)
    return base + sync_seconds(row["profile"], lay, b), 1.0


def solve_multi_gpu(rows: list[dict], params: SpeedParams) -> dict:
    """fsdp_unit_s from the FSDP runs and ddp_step_s from the DDP runs, each the least relative-squares
    non-negative cost on top of the one-GPU params (closed form: one coefficient each)."""
    out = {}
    for name, kind in (("fsdp_unit_s", "fsdp"), ("ddp_step_s", "ddp")):
        num = den = 0.0
        for r in rows:
            if r["layout"].parallel != kind:
                continue
            base, n = _multi_base_and_count(r, params)
            m = r["measured_s"]
            num += (n / m) * ((m - base) / m)
            den += (n / m) ** 2
        if den:
            out[name] = max(0.0, num / den)
    return out


def multi_gpu_errors(rows: list[dict], params: SpeedParams) -> list[dict]:
    out = []
    for r in rows:
        base, n = _multi_base_and_count(r, params)
        coef = params.fsdp_unit_s if r["layout"].fsdp else params.ddp_step_s
        p = base + n * coef
        out.append({"model": r["model"].name, "why": r["why"], "parallel": r["layout"].parallel,
                    "measured_s": r["measured_s"], "predicted_s": p,
                    "error_pct": 100.0 * (p - r["measured_s"]) / r["measured_s"]})
    return out


def multi_gpu_loao(rows: list[dict], params: SpeedParams) -> list[dict]:
    out = []
    for arch in sorted({r["model"].name for r in rows}):
        fitted = solve_multi_gpu([r for r in rows if r["model"].name != arch], params)
        out += multi_gpu_errors([r for r in rows if r["model"].name == arch], replace(params, **fitted))
    return out


def measured_layouts(rows: list[dict]) -> list[dict]:
    """Each (GPUs, parallel, offload) the multi-GPU runs measured, with its run count: what the planner may say
    was measured, and what not."""
    counts: dict[tuple, int] = {}
    for r in rows:
        key = (r["plan"].gpus, r["layout"].parallel, bool(r["plan"].offload))
        counts[key] = counts.get(key, 0) + 1
    return [{"gpus": g, "parallel": p, "offload": o, "runs": n} for (g, p, o), n in sorted(counts.items())]
