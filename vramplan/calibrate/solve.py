"""Fit the run-time parameters of one GPU from its raw records, and measure how good the fit is.

Fitted: CUDA context (NVML outside torch's reserve), unmodelled allocated workspace, allocator slack as a
function of the allocation pattern (constant + fp32 logits blocks + fp32 MLP blocks), the managed-memory floor,
the driver's reserve. Accuracy: predicted peak_bytes against the measured NVML peak, in-sample and
leave-one-architecture-out (LOAO: refit without the architecture, predict it).
"""
from __future__ import annotations

import json
import statistics
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..layout import resolve
from ..memory import estimate
from ..memory.calibration import CALIBRATED_FIELDS, DEFAULT_CALIBRATION, Calibration
from ..memory.estimate import logits_resplit_bytes
from ..memory.fsdp_reserve import all_gather_reserve, compute_stream_after_wrap, gathered_bytes
from ..memory.logits import fp32_block
from ..plan import TrainPlan
from ..profiles import find_gpu, find_model
from ..profiles.gpus import GpuSpec
from ..units import GiB
from .frame import load_frame
from .records import gpu_slug, load_runs, measured_peak


def _nnls(a: np.ndarray, y: np.ndarray) -> list[float]:
    """Least squares with non-negative coefficients."""
    from scipy.optimize import nnls
    return [float(c) for c in nnls(a, y)[0]]


def _slack_design(runs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Reserved minus allocated at the peak against (1, fp32 logits block, fp32 MLP block), in GiB."""
    rows, ys = [], []
    for r in runs.itertuples():
        plan, m = TrainPlan.from_dict(r.plan), find_model(r.model)
        rows.append([1.0, fp32_block(plan.tokens, m.vocab) / GiB, fp32_block(plan.tokens, m.intermediate) / GiB])
        ys.append((r.max_reserved - r.max_allocated - logits_resplit_bytes(m, resolve(plan, m))) / GiB)
    return np.array(rows), np.array(ys)


def _predict(runs: pd.DataFrame, params: Calibration, gpu: GpuSpec | None = None) -> list:
    """The Breakdown of each run (on `gpu`, or on the GPU each run was measured on)."""
    return [estimate(find_model(r.model), gpu or find_gpu(r.gpu), TrainPlan.from_dict(r.plan), params)
            for r in runs.itertuples()]


def _of(runs: pd.DataFrame, allocator: str) -> pd.DataFrame:
    return runs[runs["usable"] & (runs["allocator"] == allocator)]


def solve_params(runs: pd.DataFrame, gpu: GpuSpec, base: Calibration = DEFAULT_CALIBRATION,
                 borrowed_expandable: pd.DataFrame | None = None) -> Calibration:
    """Everything from the default-allocator runs (the standard recipe); the expandable-segments slack from
    the runs made with it: this GPU's, else `borrowed_expandable` (another GPU's: the slack is the allocator's
    behaviour, not the card's), else the default allocator's, the conservative choice."""
    recs = _of(runs, "default")
    if recs.empty:
        raise ValueError("no usable runs")
    zero = replace(base, workspace_bytes=0, slack_bytes=0, slack_per_logit_byte=0.0, slack_per_mlp_byte=0.0)
    preds = _predict(recs, zero, gpu)
    allocated = pd.Series([b.peak_allocated_bytes for b in preds], index=recs.index)
    managed = pd.Series([b.managed_bytes for b in preds], index=recs.index)
    workspace = (recs["max_allocated"] - allocated).median()
    s0, s_logit, s_mlp = _nnls(*_slack_design(recs))
    expandable = _of(runs, "expandable")
    source = expandable if not expandable.empty or borrowed_expandable is None else \
        _of(borrowed_expandable, "expandable")
    e0, e_logit, e_mlp = _nnls(*_slack_design(source)) if not source.empty else (s0, s_logit, s_mlp)
    outside = recs["after_train"] - recs["max_reserved"]
    unmanaged = outside[managed == 0]
    context = unmanaged.median() if len(unmanaged) else base.context_bytes
    floor = (outside - context)[(managed > 0) & (managed <= base.managed_min_bytes)]
    return replace(base, context_bytes=int(context), workspace_bytes=int(max(0, workspace)),
                   slack_bytes=int(s0 * GiB), slack_per_logit_byte=round(s_logit, 4),
                   slack_per_mlp_byte=round(s_mlp, 4), expandable_slack_bytes=int(e0 * GiB),
                   expandable_slack_per_logit_byte=round(e_logit, 4), expandable_slack_per_mlp_byte=round(e_mlp, 4),
                   managed_min_bytes=int(floor.median()) if len(floor) else base.managed_min_bytes,
                   driver_reserved_fraction=round(float(recs["reserved_fraction"].median()), 5),
                   runs=len(recs) + len(expandable))


def evaluate(runs: pd.DataFrame, gpu: GpuSpec, params: Calibration) -> pd.DataFrame:
    """Predicted against measured peak of every usable run."""
    ok = runs[runs["usable"]]
    return pd.DataFrame([_accuracy_row(r.record, b, int(r.measured_peak), int(r.max_allocated))
                         for r, b in zip(ok.itertuples(), _predict(ok, params, gpu))], columns=ACCURACY_COLUMNS)


ACCURACY_COLUMNS = ("run_key", "model", "why", "measured", "predicted", "error_pct", "measured_allocated",
                    "predicted_allocated")


def _accuracy_row(record: dict, b, measured: int, measured_allocated: int, **extra) -> dict:
    return {"run_key": record["run_key"], "model": record["model"], "why": record.get("why", ""), **extra,
            "measured": measured, "predicted": b.peak_bytes, "error_pct": 100.0 * (b.peak_bytes - measured) / measured,
            "measured_allocated": measured_allocated, "predicted_allocated": b.peak_allocated_bytes}


def summarize(rows) -> dict:
    """MAE and the worst errors of accuracy rows (a DataFrame, or a list of row dicts)."""
    errs = pd.DataFrame(rows, columns=["error_pct"]) if isinstance(rows, list) else rows
    errs = errs["error_pct"] if len(errs) else pd.Series(dtype=float)
    if errs.empty:
        return {}
    return {"mae_pct": round(float(errs.abs().mean()), 3), "worst_under_pct": round(float(errs.min()), 3),
            "worst_over_pct": round(float(errs.max()), 3), "n": int(len(errs))}


def loao(runs: pd.DataFrame, gpu: GpuSpec, borrowed_expandable: pd.DataFrame | None = None) -> pd.DataFrame:
    """Refit without each architecture and predict its runs."""
    rows = []
    for arch in sorted(runs.loc[runs["usable"], "model"].unique()):
        borrowed = None if borrowed_expandable is None else borrowed_expandable[borrowed_expandable["model"] != arch]
        params = solve_params(runs[runs["model"] != arch], gpu, borrowed_expandable=borrowed)
        rows.append(evaluate(runs[runs["model"] == arch], gpu, params))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=ACCURACY_COLUMNS)


def solve_pressure_fragmentation(capped_runs: pd.DataFrame, params: Calibration) -> float | None:
    """Fragmentation under an allocator cap: between the largest allocated/cap ratio that trained and the
    smallest that ran out of memory, with the allocated peaks these params predict (the ones just fitted). The
    midpoint of that interval; None without both outcomes."""
    ratio = pd.Series([b.peak_allocated_bytes for b in _predict(capped_runs, params)],
                      index=capped_runs.index, dtype=float) / capped_runs["cap_bytes"].astype(float)
    ok, oom = ratio[capped_runs["status"] == "ok"], ratio[capped_runs["status"] == "oom"]
    if ok.empty or oom.empty:
        return None
    low, high = 1 / ok.max() - 1, 1 / oom.min() - 1  # frag <= low keeps the oks; frag > high flags the ooms
    return round((low + high) / 2, 4) if high < low else round(low, 4)


def verdicts(capped_runs: pd.DataFrame, params: Calibration) -> list[dict]:
    """The fits verdict for each capped run: capacity = cap + what lives outside the allocator."""
    out = []
    for r, b in zip(capped_runs.itertuples(), _predict(capped_runs, params)):
        need = int(b.peak_allocated_bytes * (1 + params.pressure_fragmentation))
        out.append({"run_key": r.run_key, "model": r.model, "why": r.why, "cap_bytes": int(r.cap_bytes),
                    "predicted_fits": need <= r.cap_bytes, "measured": r.status,
                    "right": bool((need <= r.cap_bytes) == (r.status == "ok"))})
    return out


def _usable_multi(multi_records: list[dict]) -> list[dict]:
    """Completed, uncapped multi-GPU runs (the capped proof runs test a verdict, not the peak)."""
    return [r for r in multi_records if r.get("status") == "ok" and not r.get("cap_bytes") and "ranks" in r]


def multi_gpu_kind(record: dict) -> str:
    """fsdp-default, fsdp-expandable, ddp-expandable, ...: the groups whose slack behaves alike."""
    plan = TrainPlan.from_dict(record["plan"])
    return f"{plan.parallel}{'-offload' if plan.offload else ''}-{plan.allocator}"


def multi_gpu_rank_rows(multi_records: list[dict], gpu: GpuSpec, params: Calibration) -> pd.DataFrame:
    """Predicted against measured peak of every rank of every completed, uncapped multi-GPU run."""
    out = []
    for r in _usable_multi(multi_records):
        b = estimate(find_model(r["model"]), gpu, TrainPlan.from_dict(r["plan"]), params)
        upper = b.peak_bytes + b.fragmentation_event_bytes
        for k in r["ranks"]:
            measured = measured_peak(k)
            event = b.fragmentation_event_bytes > 0 and measured - b.peak_bytes > b.fragmentation_event_bytes / 2
            out.append(_accuracy_row(r, b, measured, k["torch"]["max_allocated"], rank=k["rank"],
                                     kind=multi_gpu_kind(r), fragmentation_event=event, predicted_upper=upper,
                                     error_vs_bound_pct=100.0 * ((upper if event else b.peak_bytes) - measured)
                                     / measured))
    return pd.DataFrame(out, columns=[*ACCURACY_COLUMNS[:3], "rank", "kind", "fragmentation_event", "predicted_upper",
                                      "error_vs_bound_pct", *ACCURACY_COLUMNS[3:]])


WRAP_MARGIN = 1 << 29  # first guess: the wrap branch's residuals stay under this, a training-set run goes above


def _fsdp_branches(points: list[tuple[float, float, float]]) -> tuple[float, tuple[float, float]]:
    """points: (excess over the wrap + loss model, slack over the compute stream's allocated peak, fp32 MLP
    block) per rank, in GiB. Each rank's reserve was set by one branch: start from the margin, then give each
    rank to the branch that predicts it better and refit, until the split holds. Returns the wrap branch's
    median excess and the training branch's (constant, per MLP byte)."""
    train = [p[0] > WRAP_MARGIN / GiB for p in points]
    extra, coef = 0.0, (0.0, 0.0)
    for _ in range(10):
        wraps = [p[0] for p, t in zip(points, train) if not t]
        extra = max(0.0, statistics.median(wraps)) if wraps else 0.0
        rows = [([1.0, p[2]], p[1]) for p, t in zip(points, train) if t]
        coef = tuple(_nnls([r for r, _ in rows], [y for _, y in rows])) if rows else (0.0, 0.0)
        again = [abs(p[1] - coef[0] - coef[1] * p[2]) < abs(p[0] - extra) if rows else False for p in points]
        if again == train:
            break
        train = again
    return extra, coef


def _without_event(point: tuple, fitted: tuple) -> tuple:
    """A default-allocator rank whose reserve exceeds the fitted model by more than half an fp32 loss block had
    the re-split event (estimate.py: peak_upper_bytes); take the block out before fitting."""
    d, ts, mlp, block = point
    extra, (const, per_mlp) = fitted
    if min(d - extra, ts - const - per_mlp * mlp) > block / 2:
        return d - block, ts - block, mlp, block
    return point


def solve_multi_gpu(multi_records: list[dict], gpu: GpuSpec, params: Calibration) -> Calibration:
    """Per-rank NCCL memory (NVML minus reserve, context and paged states) of every multi-GPU run; with FSDP,
    the compute stream's reserve (measured reserve minus the modelled all-gather pool): the wrap branch's excess
    over the wrap + loss model, and the training branch's slack over the compute stream's allocated peak
    (constant + per fp32 MLP byte), per allocator setting; default-allocator ranks with the re-split event are
    fitted without its block. DDP keeps the one-GPU slack."""
    nccl, points = [], {"default": [], "expandable": []}
    zero = replace(params, nccl_bytes=0, fsdp_wrap_extra_bytes=0, fsdp_slack_bytes=0, fsdp_slack_per_mlp_byte=0.0,
                   fsdp_expandable_slack_bytes=0, fsdp_expandable_slack_per_mlp_byte=0.0)
    for r in _usable_multi(multi_records):
        plan, model = TrainPlan.from_dict(r["plan"]), find_model(r["model"])
        b = estimate(model, gpu, plan, zero)
        for k in r["ranks"]:
            t = k["torch"]
            nccl.append(measured_peak(k) - t["max_reserved"] - params.context_bytes - b.managed_bytes)
            if not resolve(plan).fsdp:
                continue
            compute = t["max_reserved"] - all_gather_reserve(b.phases)
            peak = b.phases[b.peak_phase]
            points[plan.allocator].append(((compute - compute_stream_after_wrap(model, resolve(plan), b.phases)) / GiB,
                                           (compute - (t["max_allocated"] - gathered_bytes(peak))) / GiB,
                                           fp32_block(plan.tokens, model.intermediate) / GiB,
                                           fp32_block(plan.tokens, model.vocab) / GiB))
    if not nccl:
        return params
    fitted = {}
    if points["expandable"]:
        fitted["expandable"] = _fsdp_branches([p[:3] for p in points["expandable"]])
    if points["default"]:
        first = fitted.get("expandable") or _fsdp_branches([p[:3] for p in points["default"]])
        fitted["default"] = _fsdp_branches([_without_event(p, first)[:3] for p in points["default"]])
    # the wrap branch does not depend on the allocator setting: expandable segments' runs are the larger set
    extra = fitted["expandable" if "expandable" in fitted else "default"][0] if fitted else \
        params.fsdp_wrap_extra_bytes / GiB
    d0, dm = fitted.get("default", (0, (params.fsdp_slack_bytes / GiB, params.fsdp_slack_per_mlp_byte)))[1]
    e0, em = fitted.get("expandable", (0, (d0, dm)))[1]
    return replace(params, nccl_bytes=int(statistics.median(nccl)), fsdp_wrap_extra_bytes=int(extra * GiB),
                   fsdp_slack_bytes=int(d0 * GiB), fsdp_slack_per_mlp_byte=round(dm, 4),
                   fsdp_expandable_slack_bytes=int(e0 * GiB), fsdp_expandable_slack_per_mlp_byte=round(em, 4))


def solve_gpu(runs: pd.DataFrame, all_capped: pd.DataFrame | None = None, multi_records: list[dict] = (),
              other_gpus_runs: pd.DataFrame | None = None, other_multi_records: list[dict] = ()) -> dict:
    """One GPU's fit from its runs (vramplan.calibrate.frame). other_gpus_runs / other_multi_records: the other
    GPUs' runs, which stand in where this GPU has no expandable-segments runs or no multi-GPU runs (said in
    `expandable_slack_from`, `multi_gpu_from`): what they fit is the allocator's and NCCL's behaviour, not the
    card's."""
    name = runs["gpu"].dropna().iloc[0]
    gpu = find_gpu(name)
    own = not _of(runs, "expandable").empty
    borrowed = None if own or other_gpus_runs is None else _of(other_gpus_runs, "expandable")
    params = solve_params(runs, gpu, borrowed_expandable=borrowed)
    capped_runs = all_capped if all_capped is not None else runs[runs["capped"]]
    frag = solve_pressure_fragmentation(capped_runs, params)
    if frag is not None:
        params = replace(params, pressure_fragmentation=frag)
    multi_source = list(multi_records) or list(other_multi_records)
    params = solve_multi_gpu(multi_source, gpu, params)
    in_sample, held_out = summarize(evaluate(runs, gpu, params)), summarize(loao(runs, gpu, borrowed))
    checks = verdicts(capped_runs, params)
    multi_rows = multi_gpu_rank_rows(list(multi_records), gpu, params)
    multi_held = multi_gpu_loao(list(multi_records), gpu, params) if len(multi_rows) else None
    first = next(r for r in runs["record"] if r.get("versions"))
    return {
        "gpu_name": name, "profile": gpu.name, "architecture": gpu.architecture,
        "compute_capability": gpu.compute_capability, "memory_mib": gpu.memory_mib,
        "driver": first["gpu"].get("driver"), "versions": first["versions"], "runs": params.runs,
        "architectures": sorted(runs.loc[runs["usable"], "model"].unique()),
        "expandable_slack_from": (name if own else sorted(borrowed["gpu"].unique()) if borrowed is not None
                                  and not borrowed.empty else None),
        "multi_gpu_from": sorted({k["gpu"]["name"] for r in _usable_multi(multi_source) for k in r["ranks"]}) or None,
        "params": {k: getattr(params, k) for k in CALIBRATED_FIELDS},
        "error": {"mae_pct": in_sample.get("mae_pct"), "worst_under_pct": in_sample.get("worst_under_pct"),
                  "loao_mae_pct": held_out.get("mae_pct"), "loao_worst_under_pct": held_out.get("worst_under_pct"),
                  "loao_worst_over_pct": held_out.get("worst_over_pct")},
        "boundary": {"runs": len(checks), "right": sum(c["right"] for c in checks),
                     "note": "allocator-capped runs of every calibrated GPU; pressure_fragmentation is fitted on "
                             "these same runs, so the verdict count is in-sample"},
        **({"multi_gpu": multi_gpu_summary(multi_rows, multi_held)} if len(multi_rows) else {}),
        "derived_by": "vramplan calibrate --refit (vramplan/calibrate/solve.py) from calibration/runs",
    }


def multi_gpu_loao(multi_records: list[dict], gpu: GpuSpec, params: Calibration) -> pd.DataFrame:
    """Refit the multi-GPU parameters without each architecture's multi-GPU runs and predict them (the one-GPU
    parameters in `params` stay as fitted)."""
    usable_runs = _usable_multi(multi_records)
    rows = [multi_gpu_rank_rows([r for r in usable_runs if r["model"] == arch], gpu,
                                solve_multi_gpu([r for r in usable_runs if r["model"] != arch], gpu, params))
            for arch in sorted({r["model"] for r in usable_runs})]
    return pd.concat(rows, ignore_index=True) if rows else multi_gpu_rank_rows([], gpu, params)


def multi_gpu_summary(rows: pd.DataFrame, held_out: pd.DataFrame | None = None) -> dict:
    """Per-rank accuracy, over all runs and per kind (parallelism, offload, allocator)."""
    kinds = {}
    for kind, sub in rows.groupby("kind", sort=True):
        loao_sub = summarize(held_out[held_out["kind"] == kind]) if held_out is not None else {}
        events = sub[sub["fragmentation_event"]]
        bound = sub["error_vs_bound_pct"]
        kinds[kind] = {"runs": sub["run_key"].nunique(), "ranks": len(sub),
                       "architectures": sorted(sub["model"].unique()), **summarize(sub),
                       **({"fragmentation_event_ranks": len(events),
                           "worst_vs_bound_pct": round(float(bound.loc[bound.abs().idxmax()]), 3)}
                          if len(events) else {}),
                       **({"loao_mae_pct": loao_sub["mae_pct"], "loao_worst_under_pct": loao_sub["worst_under_pct"],
                           "loao_worst_over_pct": loao_sub["worst_over_pct"]} if loao_sub else {})}
    return {"runs": rows["run_key"].nunique(), "ranks": len(rows), **summarize(rows), "kinds": kinds,
            "note": "per-rank peak; nccl_bytes and the fsdp parameters are fitted on these same runs (in-sample); "
                    "loao_*: refit without the architecture's multi-GPU runs; ranks with the default allocator's "
                    "fragmentation event are compared with peak_upper_bytes in worst_vs_bound_pct"}


def solve_all(calib_dir: Path) -> list[Path]:
    """Refit every GPU's calibration from calib_dir's records (read once) into calib_dir/fits/."""
    written = []
    frame = load_frame(calib_dir)
    all_capped = frame[frame["capped"]]
    multi = {slug: load_runs(calib_dir / "multi_gpu" / f"{slug}.jsonl") for slug in frame["slug"].unique()}
    for slug in frame["slug"].unique():
        runs = frame[frame["slug"] == slug]
        if not runs["usable"].any():
            continue
        other_multi = [r for other, recs in multi.items() if other != slug for r in recs]
        fit = solve_gpu(runs, all_capped, multi[slug], frame[frame["slug"] != slug], other_multi)
        path = calib_dir / "fits" / f"{gpu_slug(fit['gpu_name'])}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(fit, indent=2) + "\n")
        written.append(path)
    return written
