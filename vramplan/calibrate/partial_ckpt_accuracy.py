"""Partial (every_n_layers) and offloaded checkpointing against their GPU runs (calibration/partial_ckpt/): the NVML
peak and the step time, as predicted before each run (the record's `predicted`, and the validation subset's
committed calibration/partial_ckpt/validation.json) and by the model now; and the bound a mode's memory error must
keep to be listed in profiles/checkpointing_modes.json.

Torch-free (the planner only), like vramplan.calibrate.stack_accuracy.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from ..planner import Planner
from ..profiles import find_gpu, find_model
from ..profiles.checkpointing import plan_modes
from ..resources import data_dir
from ..speed import predicted_step_seconds
from ..store.calibrations import Calibrations
from .records import steady_step_seconds
from .stack_accuracy import record_plan

GATE_MAE_PCT = 3.0
"""A mode opens when the MAE of its runs' predicted NVML peaks is at most this (the calibrated stacks: 0.5-3.2%)."""
GATE_UNDER_PCT = -3.0
"""... and no run's peak is under-predicted by more than this (the side that runs out of memory)."""
GATE_OVER_PCT = 7.0
"""... nor over-predicted by more than this (memory the plan would leave idle)."""
PROFILE_OF = {"NVIDIA H200": "H200", "NVIDIA H100 80GB HBM3": "H100-80GB"}


def folder(calib_dir: Path | None = None) -> Path:
    return (Path(calib_dir) if calib_dir else data_dir("calibration")) / "partial_ckpt"


def records(calib_dir: Path | None = None) -> list[dict]:
    out = []
    for path in sorted(folder(calib_dir).glob("*.jsonl")):
        out += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return out


def _pct(predicted: float, measured: float) -> float:
    return 100.0 * (predicted - measured) / measured


def accuracy_rows(recs: list[dict] | None = None, calib_dir: Path | None = None) -> list[dict]:
    """One row per run that trained: measured, predicted before (the record's) and now, peak and step time."""
    committed = {}
    path = folder(calib_dir) / "validation.json"
    if path.exists():
        committed = json.loads(path.read_text())
    planners: dict[str, Planner] = {}
    rows = []
    for r in records(calib_dir) if recs is None else recs:
        if r.get("status") != "ok":
            continue
        gpu = find_gpu(PROFILE_OF.get(r["gpu"]["name"], r["gpu"]["name"]))
        planner = planners.setdefault(gpu.name, Planner(gpu, Calibrations.package()))
        plan, model = record_plan(r), find_model(r["model"])
        b = planner.estimate(model, plan)
        before = committed.get(r["run_key"], r["predicted"])
        rows.append({"run_key": r["run_key"], "model": r["model"], "why": r["why"], "plan": plan,
                     "modes": plan_modes(plan), "validation": bool(r.get("validation")),
                     "committed": r["run_key"] in committed,
                     "measured_bytes": r["nvml"]["peak"], "before_bytes": before["peak_bytes"],
                     "now_bytes": b.peak_bytes, "measured_s": steady_step_seconds(r), "before_s": before["step_s"],
                     "now_s": predicted_step_seconds(model, gpu, plan, b),
                     "layers_measured": r.get("checkpointed_layers"), "layers_predicted": before["checkpointed_layers"]})
    return rows


def mode_summary(rows: list[dict], mode: str, key: str = "before_bytes", measured: str = "measured_bytes") -> dict:
    """MAE and range of one error over the runs that use the mode ('partial', 'offload'; 'none': neither)."""
    sel = [r for r in rows if (mode in r["modes"] if mode != "none" else not r["modes"])]
    errs = [_pct(r[key], r[measured]) for r in sel]
    if not errs:
        return {"runs": 0}
    return {"runs": len(sel), "archs": len({r["model"] for r in sel}), "mae_pct": statistics.fmean(map(abs, errs)),
            "min_pct": min(errs), "max_pct": max(errs)}


def within_gate(summary: dict) -> bool:
    """Whether a mode's memory error (as predicted before its runs) meets the bound that opens it."""
    return summary.get("runs", 0) > 0 and summary["mae_pct"] <= GATE_MAE_PCT and \
        GATE_UNDER_PCT <= summary["min_pct"] and summary["max_pct"] <= GATE_OVER_PCT


def error_pct(row: dict, key: str, measured: str) -> float:
    return _pct(row[key], row[measured])
