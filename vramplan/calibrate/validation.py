"""Validation sets: predictions written before the runs are measured (write_predictions), then compared with the
measured per-rank peaks (validation_rows)."""
from __future__ import annotations

import json
from pathlib import Path

from ..profiles import find_gpu, find_model
from ..store.calibrations import Calibrations
from .design import SweepRun
from .records import measured_peak, run_key


def write_predictions(out: Path, set_name: str, gpu_name: str, runs: list[SweepRun], steps: int,
                      commit: str) -> dict:
    """The planner's predicted per-rank peaks of each run, written to `out` (the validation file)."""
    from ..planner import Planner
    planner = Planner(find_gpu(gpu_name), Calibrations.package())
    rows = []
    for run in runs:
        b = planner.estimate(find_model(run.model), run.plan)
        rows.append({"run_key": run_key(gpu_name, run.model, run.plan.to_dict(), steps, run.cap_bytes),
                     "model": run.model, "why": run.why, "plan": run.plan.to_dict(),
                     "predicted_peak_bytes": b.peak_bytes, "predicted_allocated_bytes": b.peak_allocated_bytes})
    spec = {"set": set_name, "gpu": gpu_name, "model_commit": commit, "runtime": planner.calibration.source,
            "predictions": rows}
    out.write_text(json.dumps(spec, indent=1) + "\n")
    return spec


def validation_rows(spec: dict, multi_records: list[dict]) -> list[dict]:
    """Each prediction of a validation file (bench/multi_gpu_runs.py --predict) with its measured per-rank peaks
    and errors; both lists are empty where the run was not measured."""
    measured = {r["run_key"]: r for r in multi_records if r.get("status") == "ok"}
    rows = []
    for p in spec["predictions"]:
        peaks = [measured_peak(k) for k in measured[p["run_key"]]["ranks"]] if p["run_key"] in measured else []
        rows.append({**p, "measured": peaks,
                     "errors_pct": [100.0 * (p["predicted_peak_bytes"] - m) / m for m in peaks]})
    return rows


