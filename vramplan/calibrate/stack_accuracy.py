"""Measured stack runs (calibration/stacks) against the planner: the training footprint and the whole-run peak.

The training footprint is the NVML peak over the optimizer steps before the first evaluation; the whole-run peak
includes the evaluation loops. Torch-free: it reads the records and asks the planner.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..planner import Planner
from ..plan import TrainPlan
from ..stacks import normalize_release
from ..profiles import find_gpu, find_model
from ..resources import data_dir
from ..store.calibrations import Calibrations

PROFILE_OF = {"NVIDIA H200": "H200", "NVIDIA H100 80GB HBM3": "H100-80GB"}
"""The catalog profile of each GPU the stack runs were measured on, by its NVML name."""


STACK_FOLDERS = ("stacks", "resplit")
"""The folders of calibration/ whose records are stack runs (bench/stack_runs.py; --set resplit wrote the runs
that tell where the full-logits metrics take one more logits segment into calibration/resplit)."""


def stack_records(folder: Path | None = None) -> list[dict]:
    folders = [folder] if folder else [data_dir("calibration") / name for name in STACK_FOLDERS]
    out = []
    for path in sorted(p for f in folders for p in f.glob("*.jsonl")):
        out += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return out


def record_plan(record: dict) -> TrainPlan:
    """The plan vramplan estimates for a measured run: its stack, release, evaluation batch."""
    stack = record["stack"]
    release = stack.get("release", "1.16.0")
    return TrainPlan.from_dict({**record["plan"], "trainer": stack["trainer"],
                                "trl_version": normalize_release(release),
                                "fp32_adapters": bool(stack.get("fp32_adapters")),
                                "eval_batch": (record.get("eval") or {}).get("batch", 0)})


def accuracy_rows(records: list[dict] | None = None) -> list[dict]:
    """One row per run that trained: measured and predicted training footprint and whole-run peak (bytes)."""
    planners: dict[str, Planner] = {}
    rows = []
    for r in stack_records() if records is None else records:
        if r.get("status") != "ok":
            continue
        gpu = r["gpu"]["name"]
        planner = planners.setdefault(gpu, Planner(find_gpu(PROFILE_OF[gpu]), Calibrations.package()))
        plan = record_plan(r)
        b = planner.estimate(find_model(r["model"]), plan)
        peaks = r["nvml"]["phase_peaks"]
        rows.append({"run_key": r["run_key"], "model": r["model"], "trainer": plan.trainer,
                     "release": r["stack"].get("release") if plan.trainer == "trl" else None,
                     "loss_path": b.layout["loss_path"], "why": r.get("why", ""),
                     "train_measured": peaks["train"], "train_predicted": b.train_peak_bytes,
                     "whole_measured": r["nvml"]["peak"], "whole_predicted": b.peak_bytes,
                     "peak_phase": b.peak_phase, "eval_batch": plan.eval_batch})
    return rows


def slack_medians(records: list[dict] | None = None) -> dict[str, int]:
    """Reserved minus allocated over the training steps, median per loss path, of the runs without evaluation:
    what Calibration.stack_slack_bytes holds for the paths that never hold full logits."""
    from statistics import median
    from ..layout import resolve
    by_path: dict[str, list[int]] = {}
    for r in stack_records() if records is None else records:
        if r.get("status") != "ok" or r.get("eval"):
            continue
        steps = r["torch"]["steps"]
        slack = max(s["max_reserved"] for s in steps) - max(s["max_allocated"] for s in steps)
        by_path.setdefault(resolve(record_plan(r)).loss_path, []).append(slack)
    return {path: int(median(v)) for path, v in sorted(by_path.items())}


def expandable_slack_median(folder: Path | None = None) -> int:
    """Reserved minus allocated of the uncapped TRL runs under expandable segments (calibration/train): what
    Calibration.stack_expandable_slack_bytes holds."""
    from statistics import median
    folder = folder or data_dir("calibration") / "train"
    values = []
    for name in ("trl_comparison.jsonl", "trl_capped.jsonl"):
        for r in map(json.loads, (folder / name).read_text().splitlines()):
            if r.get("status") == "ok" and r.get("alloc_conf") == "expandable_segments:True":
                steps = r["torch"]["steps"]
                values.append(max(s["max_reserved"] for s in steps) - max(s["max_allocated"] for s in steps))
    for r in map(json.loads, (folder / "trl_train_runs.jsonl").read_text().splitlines()):
        if r.get("status") == "ok" and r.get("alloc_conf") == "expandable_segments:True" and not r.get("memory_cap"):
            values.append(r["measured_max_reserved"] - r["measured_max_allocated"])
    return int(median(values))


def error_pct(predicted: int, measured: int) -> float:
    return 100.0 * (predicted - measured) / measured
