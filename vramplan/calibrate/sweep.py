"""Run a calibration sweep: each plan in a fresh process, records appended as they come, resumable."""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from ..gpu_info import detect_gpu, software_versions
from ..layout import layout_dict
from ..resources import data_dir
from ..workers import worker_command
from .design import SweepRun
from .progress import SweepProgress
from .records import append_run, load_runs, run_key, runs_path

STEPS = 3  # step 1 creates the optimizer state; 2 and 3 are steady state


def _profile_path(model: str) -> Path:
    return data_dir("profiles") / "models" / f"{model}.json"


def ensure_checkpoint(model: str, cache: Path, log=lambda message: None) -> Path:
    """cache/MODEL: a random-weight checkpoint of a catalog profile, built once (the build_model worker)."""
    out = cache / model
    if not (out / "config.json").exists():
        log(f"building random-weight checkpoint of {model} in {out}")
        subprocess.run(worker_command("build_model", str(_profile_path(model)), str(out)), check=True)
    return out


def run_one(run: SweepRun, checkpoint: Path, key: str, timeout_s: int, trace_path: Path | None = None) -> dict:
    plan = run.plan.to_dict()
    spec = {"run_key": key, "model": run.model, "checkpoint": str(checkpoint), "plan": layout_dict(run.plan),
            "steps": STEPS,
            "cap_bytes": run.cap_bytes, "why": run.why, "trace_path": str(trace_path) if trace_path else None}
    with tempfile.TemporaryDirectory() as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "record.json"
        spec["output_dir"] = str(Path(tmp) / "trainer")
        spec_path.write_text(json.dumps(spec))
        t0 = time.time()
        try:
            proc = subprocess.run(worker_command("measure", str(spec_path), str(out_path)),
                                  timeout=timeout_s, capture_output=True, text=True)
            if out_path.exists():
                record = json.loads(out_path.read_text())
            else:
                record = {"status": "crash", "error": f"exit {proc.returncode}: {proc.stderr[-1500:]}"}
        except subprocess.TimeoutExpired:
            record = {"status": "timeout", "error": f"no result within {timeout_s} s"}
        record.setdefault("run_key", key)
        record.setdefault("model", run.model)
        record.setdefault("plan", plan)
        record.setdefault("cap_bytes", run.cap_bytes)
        record["why"] = run.why
        record["wall_s"] = round(time.time() - t0, 2)
        return record


def predicted_peak(run: SweepRun, gpu_name: str) -> int | None:
    """The planner's nvidia-smi peak for a run on this GPU (under its cap, if any), with the calibration the
    planning commands read; None for a GPU the catalog has no profile of, or a plan the planner refuses (a
    measured run is worth recording either way: the sweep goes on)."""
    from ..errors import VramplanError
    from ..memory import estimate
    from ..profiles import find_gpu, find_model
    from ..store.calibrations import Calibrations
    try:
        gpu = find_gpu(gpu_name)
        return estimate(find_model(run.model), gpu, run.plan, Calibrations.shipped().params(gpu),
                        vram_bytes=run.cap_bytes).peak_bytes
    except VramplanError:
        return None


def run_sweep(runs: list[SweepRun], out_dir: Path, cache: Path, timeout_s: int = 600,
              progress: SweepProgress | None = None) -> Path:
    """Each run not yet recorded, in a fresh process, its record appended as it lands; progress (stderr by
    default) shows run i of n, the time left and each measured peak against its prediction."""
    gpu = detect_gpu()
    path = runs_path(out_dir, gpu["name"])
    done = {r.get("run_key") for r in load_runs(path)}
    todo = [(r, run_key(gpu["name"], r.model, r.plan.to_dict(), STEPS, r.cap_bytes)) for r in runs]
    todo = [(r, k) for r, k in todo if k not in done]
    progress = progress or SweepProgress([r for r, _ in todo])
    progress.say(f"{gpu['name']} ({gpu['memory_total_mib']} MiB, driver {gpu['driver']}), {software_versions()}")
    progress.say(f"{len(runs) - len(todo)} of {len(runs)} runs already recorded in {path}; {len(todo)} to go")
    try:
        for i, (run, key) in enumerate(todo, 1):
            progress.start(i)
            checkpoint = ensure_checkpoint(run.model, cache, progress.say)
            record = run_one(run, checkpoint, key, timeout_s)
            append_run(path, record)
            progress.done(i, record, predicted_peak(run, gpu["name"]))
    finally:
        progress.close()
    return path


def default_cache() -> Path:
    return Path(os.environ.get("VRAMPLAN_CACHE", Path(tempfile.gettempdir()) / "vramplan-checkpoints"))


def run_multi_gpu(run: SweepRun, checkpoint: Path, key: str, timeout_s: int = 900,
                  trace_path: Path | None = None) -> dict:
    """One measured multi-GPU run (rank_measure on every GPU through accelerate) as its record."""
    from ..train.multi_gpu import launch_rank_measure
    plan = run.plan
    spec = {"run_key": key, "model": run.model, "checkpoint": str(checkpoint), "plan": layout_dict(plan),
            "steps": STEPS, "cap_bytes": run.cap_bytes, "trace_path": str(trace_path) if trace_path else None}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        ranks, _, err, cfg, cmd = launch_rank_measure(spec, plan, Path(tmp), timeout_s)
        status = ("ok" if ranks and all(r["status"] == "ok" for r in ranks) and len(ranks) == plan.gpus else
                  "oom" if any(r["status"] == "oom" for r in ranks) else "error")
        rec = {"schema": 1, "run_key": key, "model": run.model, "why": run.why, "plan": plan.to_dict(),
               "cap_bytes": run.cap_bytes, "steps_requested": STEPS, "status": status, "ranks": ranks,
               "accelerate_config": cfg.read_text(), "launch": cmd[1:], "wall_s": round(time.time() - t0, 1),
               "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        if status != "ok":
            rec["launcher_stderr"] = err
        return rec
