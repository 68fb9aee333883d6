"""Your machine's launch costs, from the step times of its own calibration runs: OUT/speed_host/<gpu>.json.

At the sizes people fine-tune, a QLoRA step waits on the host launching kernels, and the same GPU type steps at
different speeds on different hosts: fitted on each device call's runs alone, this factor is 0.85 to 1.16 over
the H200's shipped calls and 0.81 and 1.07 over the H100's (python bench/speed_hosts.py). The GPU's rates (matmul,
bandwidth, offloaded copies) stay the shipped fit's, or its datasheet's at the Hopper shares; one factor scales
the host's terms (per launch, per micro-batch, per optimizer step), fitted on the runs `vramplan calibrate`
recorded here so that their tokens/s err least (squared relative error). The fit says how far those runs' tokens/s
were from the shipped figures and from the calibrated ones, and, leaving each architecture out of the factor in
turn, how far its runs were from the rest's.

numpy and scipy (the [train] extra, which `vramplan calibrate` needs); the planning path only reads the JSON.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..profiles import find_gpu
from ..profiles.gpus import GpuSpec
from ..errors import VramplanError
from ..speed import seconds_from_features
from ..speed_fits import HOST_FACTOR_BOUNDS, HOST_FOLDER, SpeedParams, host_scaled, shipped_speed_params
from .records import gpu_slug
from .speed_solve import by_gpu, error_rows, speed_rows, summarize, with_features

MIN_RUNS = 3
"""Fewer runs than this with step times fit no factor: the shipped figures stay."""


def host_factor(rows: list[dict], base: SpeedParams) -> float:
    """The factor on base's host terms that minimizes the rows' squared relative error of tokens/s."""
    from scipy.optimize import minimize_scalar
    m = np.array([r["measured_s"] for r in rows])

    def loss(k: float) -> float:
        scaled = host_scaled(base, k)
        return float(np.sum((m / np.array([seconds_from_features(r["x"], scaled) for r in rows]) - 1.0) ** 2))

    return float(minimize_scalar(loss, bounds=HOST_FACTOR_BOUNDS, method="bounded", options={"xatol": 1e-6}).x)


def held_out_errors(rows: list[dict], base: SpeedParams) -> list[dict]:
    """Each architecture's runs predicted with the factor fitted on the other architectures' runs (empty with
    fewer than two architectures)."""
    archs = sorted({r["model"] for r in rows})
    if len(archs) < 2:
        return []
    out = []
    for arch in archs:
        rest = [r for r in rows if r["model"] != arch]
        out += error_rows([r for r in rows if r["model"] == arch], host_scaled(base, host_factor(rest, base)))
    return out


def _summary(errors: list[dict]) -> dict:
    return {k: v for k, v in summarize(errors, "tokens_error_pct").items() if k in ("mae_pct", "worst_pct", "n")}


def host_fit_document(rows: list[dict], gpu_name: str, gpu: GpuSpec | None = None) -> dict | None:
    """The speed fit the planner reads for this GPU on this machine (rows: with_features rows of one GPU; gpu:
    its profile, found from gpu_name when None); None with fewer than MIN_RUNS runs."""
    if len(rows) < MIN_RUNS:
        return None
    gpu = gpu or find_gpu(gpu_name)
    base = shipped_speed_params(gpu)  # the shipped fits alone: no factor on a factor
    factor = host_factor(rows, base)
    params = host_scaled(base, factor)
    held = held_out_errors(rows, base)
    return {"kind": "host", "gpu_name": gpu_name, "profile": gpu.name, "architecture": gpu.architecture,
            "compute_capability": gpu.compute_capability, "host_factor": round(factor, 4),
            "base": base.source, "base_measured": base.measured,
            "params": {k: round(v, 9) for k, v in params.to_dict().items()},
            "runs": len(rows), "architectures": sorted({r["model"] for r in rows}),
            # predicted / measured tokens/s - 1, in percent (positive: the prediction too fast)
            "tokens_error": {"shipped": _summary(error_rows(rows, base)),
                             "calibrated": _summary(error_rows(rows, params)),
                             **({"held_out": _summary(held)} if held else {})},
            "target": "median optimizer step after the first (or after the NVML-polled ones)",
            "derived_by": "vramplan calibrate (vramplan/calibrate/speed_host.py)"}


def write_host_fits(out: Path, gpus: set[str] | None = None) -> list[Path]:
    """OUT/speed_host/<gpu>.json for each GPU whose runs OUT records (gpus: only these slugs); the paths written."""
    from ..store.calibrations import Calibrations
    rows = [r for r in speed_rows(out) if r["source"] == "runs"]
    written = []
    for name, rs in sorted(by_gpu(rows).items()):
        slug = gpu_slug(name)
        if gpus is not None and slug not in gpus:
            continue
        try:
            gpu = find_gpu(name)
        except VramplanError:  # a GPU the catalog has no profile of: its memory fit stands, no speed is planned
            continue
        doc = host_fit_document(with_features(rs, Calibrations.package()), name, gpu)
        if doc is None:
            continue
        path = out / HOST_FOLDER / f"{slug}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
