"""`vramplan train --gpus N`, the launching side: verification on every rank, then the full run, both through
`accelerate launch` with the configuration of training/distributed.py. No torch here: the ranks import it."""
from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import NamedTuple

from ..calibrate.records import measured_peak
from ..layout import layout_dict
from ..plan import TrainPlan
from ..workers import WORKERS
from .distributed import free_port, launch_command, write_accelerate_config
from .verify import Trial


def trial_from_ranks(records: list[dict], gpus: int, error: str = "") -> Trial:
    """One verification result from every rank's record: the worst rank decides."""
    if len(records) < gpus:
        oom = any(r.get("status") == "oom" for r in records)
        return Trial("oom" if oom else "error", error=error or f"{len(records)} of {gpus} ranks reported")
    peaks = tuple(measured_peak(r) for r in records)
    statuses = {r.get("status") for r in records}
    status = "ok" if statuses == {"ok"} else "oom" if "oom" in statuses else "error"
    errors = "; ".join(f"rank {r.get('rank')}: {r['error']}" for r in records if r.get("error"))
    return Trial(status, max(peaks), sum(r.get("tokens_per_s", 0.0) for r in records), errors, peaks)


class Launch(NamedTuple):
    records: list[dict]
    """Every rank's record."""
    code: int | None
    """The launcher's exit code; None when it ran out of time."""
    log: str
    """The end of the launcher's stderr (or why there is none)."""
    config: Path
    command: list[str]


def launch_rank_measure(spec: dict, plan: TrainPlan, work: Path, timeout_s: int) -> Launch:
    """rank_measure on every GPU: spec and accelerate configuration written into `work`, then the launch."""
    spec = {**spec, "output_dir": str(work / "trainer")}
    (work / "spec.json").write_text(json.dumps(spec))
    cfg = write_accelerate_config(work / "accelerate.yaml", plan.to_dict())
    cmd = launch_command(cfg, plan.gpus, WORKERS["rank_measure"], [str(work / "spec.json"), str(work / "out")],
                         port=free_port())
    try:
        proc = subprocess.run(cmd, timeout=timeout_s, capture_output=True, text=True)
        code, log = proc.returncode, proc.stderr[-2500:]
    except subprocess.TimeoutExpired:
        code, log = None, f"no result within {timeout_s} s"
    records = [json.loads(p.read_text()) for p in sorted((work / "out").glob("rank*.json"))]
    return Launch(records, code, log, cfg, cmd)


def rank_verification_trial(model_path: str, plan: TrainPlan, steps: int = 3, timeout_s: int = 1200) -> Trial:
    """A few real optimizer steps on every GPU at the plan's micro-batch and full sequence length."""
    spec = {"run_key": "verify", "model": Path(model_path).name, "checkpoint": model_path, "plan": layout_dict(plan),
            "steps": steps}
    with tempfile.TemporaryDirectory() as tmp:
        launch = launch_rank_measure(spec, plan, Path(tmp), timeout_s)
    if launch.code is None:
        return Trial("error", error=launch.log)
    error = f"launcher exit {launch.code}: {launch.log[-800:]}" if launch.code else ""
    return trial_from_ranks(launch.records, plan.gpus, error)


def write_launch(out: Path, source: str, data: str, plan: TrainPlan, *, max_steps: int, epochs: float,
                 save_steps: int | None) -> tuple[Path, list[str]]:
    """The accelerate configuration and the launch spec, in the output folder, and the command that runs them."""
    cfg = write_accelerate_config(out / "accelerate_config.yaml", plan.to_dict())
    spec = {"source": source, "data": str(Path(data).resolve()), "plan": layout_dict(plan), "max_steps": max_steps,
            "epochs": epochs, "save_steps": save_steps}
    spec_path = out / "launch.json"
    cmd = launch_command(cfg, plan.gpus, WORKERS["rank_train"], [str(spec_path)], port=free_port())
    spec_path.write_text(json.dumps({**spec, "command": cmd}, indent=2) + "\n")
    return spec_path, cmd


def run_launch(cmd: list[str]) -> int:
    """The full run, its output streamed to the terminal (rank 0 reports progress)."""
    return subprocess.run(cmd).returncode


def collect_ranks(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "ranks").glob("rank*.json"))]
