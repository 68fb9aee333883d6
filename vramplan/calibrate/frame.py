"""The raw one-GPU records as a pandas DataFrame, read once: one row a run, the measured quantities as columns.

pandas is in the [train] and [test] extras; nothing on the planning path imports this module.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .records import load_all_runs, measured_peak, record_allocator

COLUMNS = ("run_key", "model", "why", "gpu", "slug", "status", "cap_bytes", "allocator", "plan", "max_allocated",
           "max_reserved", "after_train", "measured_peak", "reserved_fraction", "record")
INTS = ("cap_bytes", "max_allocated", "max_reserved", "after_train", "measured_peak")


def _row(record: dict, slug: str | None) -> dict:
    nvml, torch, gpu = record.get("nvml", {}), record.get("torch", {}), record.get("gpu", {})
    total = gpu.get("memory_total_bytes")
    return {"run_key": record.get("run_key"), "model": record.get("model"), "why": record.get("why", ""),
            "gpu": gpu.get("name"), "slug": slug, "status": record.get("status"),
            "cap_bytes": record.get("cap_bytes") or 0, "allocator": record_allocator(record),
            "plan": record.get("plan"), "max_allocated": torch.get("max_allocated"),
            "max_reserved": torch.get("max_reserved"), "after_train": nvml.get("after_train"),
            "measured_peak": measured_peak(record) if nvml else None,
            "reserved_fraction": gpu["nvml_reserved_bytes"] / total if total and "nvml_reserved_bytes" in gpu else None,
            "record": record}


def runs_frame(records: list[dict], slug: str | None = None) -> pd.DataFrame:
    """usable: completed, uncapped (they measure the unconstrained peak); capped: allocator-capped runs that
    trained or ran out of memory (they test the fits verdict)."""
    df = pd.DataFrame([_row(r, slug) for r in records], columns=list(COLUMNS))
    df = df.astype({c: "Int64" for c in INTS})
    df["usable"] = (df["status"] == "ok") & (df["cap_bytes"] == 0)
    df["capped"] = (df["cap_bytes"] > 0) & df["status"].isin(["ok", "oom"])
    return df


def load_frame(calib_dir: Path) -> pd.DataFrame:
    """Every GPU's records (calib_dir/runs/*.jsonl), slug column naming the file."""
    frames = [runs_frame(records, slug) for slug, records in load_all_runs(calib_dir).items()]
    return pd.concat(frames, ignore_index=True) if frames else runs_frame([])
