"""Fit the speed model (vramplan.speed) to the measured step times; write calibration/speed/<gpu>.json.

    python -m vramplan.calibrate.speed_solve [--calib DIR] [--out DIR] [--dry-run]

Runs: every completed one-GPU record with a step time in calibration/runs (the plain Trainer) and in the
folders of bench/stack_runs.py's records (TRL's SFTTrainer at its releases, and the plain Trainer):
calibration/stacks, calibration/partial_ckpt (partial and offloaded checkpointing), calibration/ranking (the
plans fit compares for one job) and calibration/speed_runs (steady-state runs, 1B-14B); evaluation runs left out
(their steps hold an evaluation loop). The target is the median of each record's optimizer steps after the first
(the first holds CUDA and cuBLAS initialization, the paged optimizer's first allocation), or after the steps its
NVML poller ran in (nvml_polled_steps), from the per-step times the record keeps; the records' own `step_time_s`
took the upper median, with two steady steps the slower one. The GPUs of one architecture are fitted together
(solve_group): one matmul and one bandwidth efficiency, each GPU its own launch costs.

The fit minimizes the relative error of tokens/s, predicted / measured tokens/s - 1 (a 0.2 s step off by 0.05 s
matters as much as a 2 s step off by 0.5 s), with every coefficient non-negative and the rates at most the
datasheet's. Errors are reported of both: the step time's (predicted / measured seconds - 1, positive: too slow)
and tokens/s' (positive: too fast). Accuracy: in-sample, and leave-one-architecture-out (LOAO: refit without
every run of the model, on every GPU, and predict its runs).

Most of these runs (1,024-16,384 tokens a step) are launch-bound, so how their token-proportional time splits
between the matmul rate and the streamed bytes is weakly determined: the Hopper GPUs' shared fit puts the
bandwidth at its datasheet bound and the matmul rate, pinned by the H200's 8B-14B runs, at 0.59 of it. Their sum
is what is measured; the split matters for a GPU derived from its datasheet, whose figures are the less certain.

numpy and scipy, like vramplan.calibrate.solve; nothing on the planning path imports this module.
"""
from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..memory import estimate
from ..plan import TrainPlan
from ..profiles import find_gpu, find_model
from ..resources import data_dir
from ..speed_fits import SpeedParams
from ..speed import HOST_COLUMNS, features, seconds_from_features
from ..store.calibrations import Calibrations
from .records import gpu_slug, load_runs, steady_step_seconds
from .speed_multi_gpu import measured_layouts, multi_gpu_errors, multi_gpu_loao, multi_gpu_rows, solve_multi_gpu
from .stack_accuracy import record_plan

WITHIN_PCT = 15.0
"""The goal for plans the fit did not see: predicted step time within this share of the measured one."""


def _row(record: dict, plan: TrainPlan, source: str) -> dict:
    return {"run_key": record.get("run_key"), "gpu_name": record["gpu"]["name"], "model": record["model"],
            "plan": plan, "measured_s": steady_step_seconds(record), "source": source,
            "why": record.get("why", "")}


STACK_FORMAT_SOURCES = ("stacks", "partial_ckpt", "ranking", "speed_runs")
"""The folders of bench/stack_runs.py's records (TRL's SFTTrainer at its releases, and the plain Trainer): the
stacks, the partial and offloaded checkpointing runs, the ranking set's plans and the steady-state speed runs
(bench/speed_runs.py)."""
SOURCES = ("runs",) + STACK_FORMAT_SOURCES


def speed_rows(calib_dir: Path | None = None) -> list[dict]:
    """The runs the speed model is fitted on, one dict each (plan as a TrainPlan, measured_s in seconds)."""
    folder = Path(calib_dir) if calib_dir else data_dir("calibration")
    rows = []
    for path in sorted((folder / "runs").glob("*.jsonl")):
        for r in load_runs(path):
            if r.get("status") == "ok" and r.get("step_time_s") and r["plan"].get("gpus", 1) == 1:
                rows.append(_row(r, TrainPlan.from_dict(r["plan"]), "runs"))
    for source in STACK_FORMAT_SOURCES:
        for path in sorted((folder / source).glob("*.jsonl")):
            for r in load_runs(path):
                if r.get("status") == "ok" and r.get("step_time_s") and not r.get("eval"):
                    rows.append(_row(r, record_plan(r), source))
    return rows


def with_features(rows: list[dict], calibrations: Calibrations | None = None) -> list[dict]:
    """Each row with its GPU profile and its FEATURES vector (from the plan's Breakdown on that GPU)."""
    cal = calibrations or Calibrations.package()
    out = []
    for r in rows:
        gpu, model = find_gpu(r["gpu_name"]), find_model(r["model"])
        b = estimate(model, gpu, r["plan"], cal.params(gpu))
        out.append({**r, "profile": gpu, "x": np.array(features(model, r["plan"], b), dtype=float)})
    return out


SHARED = (0, 1)
"""FEATURES columns whose rate the GPUs of one architecture share as a share of their datasheets (the matmul rate,
the streaming bandwidth): the same SMs, and the same kernels; only the large runs of one of them pin it."""
OVERLAP_BOUNDS = (1.0, 8.0)
"""The overlap p the fit may take: 1 adds host and device time, 8 is all but their maximum."""
OWN = (2, 3, 4, 5)
"""FEATURES columns each GPU fits alone: the per-launch, per-micro-batch and per-step costs of the hosts it was
measured on, and its offloaded copies over its own PCIe link."""


def _own_at(names: list[str], name: str) -> int:
    """The first of a GPU's OWN columns in solve_group's design."""
    return len(SHARED) + len(OWN) * names.index(name)


def _group_design(rows: list[dict], names: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """solve_group's columns: the SHARED ones in seconds at each GPU's datasheet rates (their coefficients are 1 /
    efficiency), then each GPU's OWN; their lower bounds; and which are host, device or serial time."""
    width = len(SHARED) + len(OWN) * len(names)
    x = np.zeros((len(rows), width))
    for i, r in enumerate(rows):
        gpu, at = r["profile"], _own_at(names, r["gpu_name"])
        x[i, 0] = r["x"][0] / gpu.tensor_tflops_16bit
        x[i, 1] = r["x"][1] / gpu.bandwidth_gbs
        x[i, at:at + len(OWN)] = r["x"][list(OWN)]
    lower = np.zeros(width)
    lower[list(SHARED)] = 1.0  # no faster than the datasheet
    kinds = np.empty(width, dtype=object)
    kinds[list(SHARED)] = "device"
    pcie = {r["gpu_name"]: r["profile"].pcie_gbs for r in rows}
    for name in names:
        at = _own_at(names, name)
        lower[at + OWN.index(5)] = 1.0 / pcie[name]  # offloaded copies: no faster than the PCIe link
        for col, column in enumerate(OWN):
            kinds[at + col] = "host" if column in HOST_COLUMNS else "serial"
    return x, lower, kinds


def solve_group(rows: list[dict]) -> dict[str, SpeedParams]:
    """The coefficients of each GPU of rows (rows from with_features, GPUs of one architecture), fitted together:
    one matmul and one bandwidth efficiency against each GPU's datasheet, each GPU its own OWN costs.

    It minimizes the squared relative error of tokens/s, measured / predicted seconds - 1, the prediction
    combining host and device time with the overlap p fitted with the rest (vramplan.speed.seconds_from_terms;
    bounded nonlinear least squares, from the linear fit of the step time's relative error). Every coefficient is
    non-negative, the rates at most the datasheet's, the offload copies at most the PCIe link's; a column no run
    exercises stays at its bound."""
    from scipy.optimize import least_squares, lsq_linear
    if not rows:
        raise ValueError("no runs with step times")
    names = sorted({r["gpu_name"] for r in rows})
    profiles = {r["gpu_name"]: r["profile"] for r in rows}
    x, lower, kinds = _group_design(rows, names)
    m = np.array([r["measured_s"] for r in rows])
    coefs = lower.copy()
    used = x.max(axis=0) > 0
    a = x[:, used] / m[:, None]  # in units of each row's measured step: columns of comparable size
    scale = a.max(axis=0)
    a, low, kinds = a / scale, lower[used] * scale, kinds[used]
    start = lsq_linear(a, np.ones(len(rows)), bounds=(low, np.inf)).x  # the step time's relative error, p = 1
    host, device, serial = (a[:, kinds == k] for k in ("host", "device", "serial"))

    def seconds(z):  # predicted / measured seconds of each row; z: the used coefficients (scaled), then p
        c, p = z[:-1], z[-1]
        h, d = host @ c[kinds == "host"], device @ c[kinds == "device"]
        return serial @ c[kinds == "serial"] + (h ** p + d ** p) ** (1.0 / p)

    z0 = np.append(np.maximum(start, low * (1 + 1e-9)), 2.0)
    fit = least_squares(lambda z: 1.0 / seconds(z) - 1.0, z0, bounds=(np.append(low, OVERLAP_BOUNDS[0]),
                        np.append(np.full(len(low), np.inf), OVERLAP_BOUNDS[1])), x_scale="jac",
                        xtol=1e-10, ftol=1e-10, gtol=1e-10)
    coefs[used] = fit.x[:-1] / scale
    overlap = float(fit.x[-1])
    out = {}
    for name in names:
        gpu, at = profiles[name], _own_at(names, name)
        out[name] = SpeedParams.from_coefficients(
            (coefs[0] / gpu.tensor_tflops_16bit, coefs[1] / gpu.bandwidth_gbs, *coefs[at:at + len(OWN)]),
            overlap=overlap, measured=True, runs=sum(r["gpu_name"] == name for r in rows))
    return out


def solve(rows: list[dict], gpu_name: str | None = None) -> SpeedParams:
    """One GPU's coefficients (gpu_name's, else the first row's) from rows of its architecture: its own runs
    alone, or with the other GPUs' of the architecture, as the shipped fits are solved."""
    return solve_group(rows)[gpu_name or rows[0]["gpu_name"]]


def by_architecture(rows: list[dict]) -> dict[str, list[dict]]:
    """Rows by their GPU's architecture (hopper, ampere, ...): the groups solve_group fits together."""
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["profile"].architecture, []).append(r)
    return out


def predict(rows: list[dict], params: SpeedParams) -> list[float]:
    return [seconds_from_features(r["x"], params) for r in rows]


def error_rows(rows: list[dict], params: SpeedParams | dict[str, SpeedParams]) -> list[dict]:
    """Each run's error: of the step time (predicted / measured seconds - 1) and of tokens/s (predicted / measured
    tokens/s - 1 = measured / predicted seconds - 1; positive: the prediction too fast).
    params: one GPU's, or solve_group's for each GPU of rows."""
    out = []
    for r in rows:
        own = params[r["gpu_name"]] if isinstance(params, dict) else params
        p = seconds_from_features(r["x"], own)
        out.append({"model": r["model"], "gpu_name": r["gpu_name"], "why": r["why"], "source": r["source"],
                    "run_key": r["run_key"], "measured_s": r["measured_s"], "predicted_s": p,
                    "error_pct": 100.0 * (p - r["measured_s"]) / r["measured_s"],
                    "tokens_error_pct": 100.0 * (r["measured_s"] - p) / p})
    return out


def loao_rows(rows: list[dict]) -> list[dict]:
    """Refit without each architecture (model: its runs on every GPU of rows) and predict its runs; a GPU with no
    run of another architecture has nothing to refit on, and its runs of that one are left out."""
    out = []
    for arch in sorted({r["model"] for r in rows}):
        rest = [r for r in rows if r["model"] != arch]
        if not rest:
            continue
        params = solve_group(rest)
        out += error_rows([r for r in rows if r["model"] == arch and r["gpu_name"] in params], params)
    return out


def summarize(errors: list[dict], key: str = "error_pct") -> dict:
    """MAE, the worst error (signed), the range and the share within WITHIN_PCT, of the step time (key
    error_pct) or of tokens/s (tokens_error_pct)."""
    e = [r[key] for r in errors]
    if not e:
        return {}
    return {"mae_pct": round(statistics.fmean(abs(x) for x in e), 2), "worst_pct": round(max(e, key=abs), 2),
            "worst_under_pct": round(min(e), 2), "worst_over_pct": round(max(e), 2),
            "within_pct": round(100.0 * sum(abs(x) <= WITHIN_PCT for x in e) / len(e), 1), "n": len(e)}


def by_gpu(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["gpu_name"], []).append(r)
    return out


def fit_document(gpu_rows: list[dict], multi_rows: list[dict] | None = None,
                 group_rows: list[dict] | None = None, group_loao: list[dict] | None = None,
                 group_params: dict[str, SpeedParams] | None = None) -> dict:
    """The JSON the planner reads for one GPU: its coefficients, their efficiencies against the datasheet,
    the runs and the accuracy; with multi-GPU runs, the FSDP and DDP costs and their accuracy. group_rows: the
    runs of every GPU of its architecture, solved together (solve_group); its own alone when None. group_loao and
    group_params: loao_rows(group_rows) and solve_group(group_rows), when the caller has them."""
    gpu, name = gpu_rows[0]["profile"], gpu_rows[0]["gpu_name"]
    group = group_rows or gpu_rows
    params = (group_params or solve_group(group))[name]
    offloaded = sum(bool(r["plan"].checkpoint_offload) for r in gpu_rows)
    in_rows = error_rows(gpu_rows, params)
    loao = [e for e in (group_loao if group_loao is not None else loao_rows(group)) if e["gpu_name"] == name]
    shared = sorted({r["gpu_name"] for r in group} - {name})
    fitted, held_out = summarize(in_rows), summarize(loao)
    tokens = {f"{pre}{k}": v for pre, rows in (("", in_rows), ("loao_", loao))
              for k, v in summarize(rows, "tokens_error_pct").items() if k != "n"}
    multi = {}
    if multi_rows:
        params = replace(params, **solve_multi_gpu(multi_rows, params))
        errs, loao = multi_gpu_errors(multi_rows, params), multi_gpu_loao(multi_rows, params)
        multi = {"multi_gpu": {"runs": len(multi_rows), "gpus": sorted({r["plan"].gpus for r in multi_rows}),
                               "layouts": measured_layouts(multi_rows),
                               **{k: v for k, v in summarize(errs).items() if k != "n"},
                               **{f"loao_{k}": v for k, v in summarize(loao).items() if k != "n"},
                               "note": "slowest rank's median step after the first, the plain Trainer; one-GPU terms as fitted"}}
    return {**multi, "gpu_name": gpu_rows[0]["gpu_name"], "profile": gpu.name, "architecture": gpu.architecture,
            "compute_capability": gpu.compute_capability,
            "datasheet": {"tensor_tflops_16bit": gpu.tensor_tflops_16bit, "bandwidth_gbs": gpu.bandwidth_gbs},
            # the multi-GPU costs only where this GPU's own multi-GPU runs fitted them: the planner borrows
            # them from the GPU that has them, and says so
            # the offload rate only where this GPU's runs offloaded: the others scale their PCIe link by its efficiency
            "params": {k: round(v, 9) for k, v in params.to_dict().items()
                       if (multi or k not in ("fsdp_unit_s", "ddp_step_s")) and (offloaded or k != "offload_gbs")},
            "efficiency": {"matmul": round(params.matmul_tflops / gpu.tensor_tflops_16bit, 4),
                           "bandwidth": round(params.stream_gbs / gpu.bandwidth_gbs, 4),
                           **({"offload": round(params.offload_gbs / gpu.pcie_gbs, 4)} if offloaded else {})},
            # the matmul and bandwidth efficiencies are fitted with these GPUs' runs too
            "efficiency_shared_with": shared,
            "offload_runs": offloaded,
            "runs": len(gpu_rows), "architectures": sorted({r["model"] for r in gpu_rows}),
            "sources": {s: sum(r["source"] == s for r in gpu_rows) for s in SOURCES},
            "error": {**{k: v for k, v in fitted.items() if k != "n"},
                      **{f"loao_{k}": v for k, v in held_out.items() if k != "n"}},
            # the same of tokens/s (measured / predicted seconds - 1), what the fit minimizes
            "tokens_error": tokens,
            "target": "median optimizer step after the first, or after the NVML-polled ones (nvml_polled_steps); "
                      "one GPU, evaluation runs left out",
            "derived_by": "python -m vramplan.calibrate.speed_solve (vramplan/calibrate/speed_solve.py)"}


def solve_all(calib_dir: Path | None = None) -> dict[str, dict]:
    """{gpu slug: fit document} for every GPU with runs."""
    rows = with_features(speed_rows(calib_dir))
    multi = by_gpu(multi_gpu_rows(calib_dir))
    groups = by_architecture(rows)
    held = {arch: loao_rows(group) for arch, group in groups.items()}
    solved = {arch: solve_group(group) for arch, group in groups.items()}
    docs = {}
    for name, rs in sorted(by_gpu(rows).items()):
        arch = rs[0]["profile"].architecture
        docs[gpu_slug(name)] = fit_document(rs, multi.get(name), groups[arch], held[arch], solved[arch])
    return docs


def write_fits(docs: dict[str, dict], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for slug, doc in docs.items():
        path = out_dir / f"{slug}.json"
        path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="fit the speed model to the recorded step times")
    ap.add_argument("--calib", type=Path, default=None, help="calibration folder (default: the shipped one)")
    ap.add_argument("--out", type=Path, default=None, help="where the fits go (default: CALIB/speed)")
    ap.add_argument("--dry-run", action="store_true", help="print, write nothing")
    args = ap.parse_args(argv)
    docs = solve_all(args.calib)
    print("(step time error = predicted / measured seconds - 1, positive: too slow; tokens/s error = predicted / "
          "measured tokens/s - 1, positive: too fast)")
    for doc in docs.values():
        e = doc["error"]
        t = doc["tokens_error"]
        print(f"{doc['gpu_name']}: {doc['runs']} runs; step time MAE {e['mae_pct']:.1f}%, LOAO MAE "
              f"{e['loao_mae_pct']:.1f}% (worst {e['loao_worst_pct']:+.1f}%); tokens/s MAE {t['mae_pct']:.1f}%, LOAO "
              f"MAE {t['loao_mae_pct']:.1f}% (worst {t['loao_worst_pct']:+.1f}%); matmul "
              f"{doc['params']['matmul_tflops']:.0f} TFLOP/s ({doc['efficiency']['matmul']:.2f} of the datasheet)")
    if not args.dry_run:
        out = args.out or (args.calib or data_dir("calibration")) / "speed"
        for path in write_fits(docs, out):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
