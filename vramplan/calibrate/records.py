"""Raw measured runs: calibration/runs/<gpu>.jsonl, one JSON object a line, append-only."""
from __future__ import annotations

import hashlib
import json
import re
import statistics
from pathlib import Path

from ..errors import VramplanError


def measured_peak(record: dict) -> int:
    """What nvidia-smi showed for a measured process (a one-GPU run, or one rank of a multi-GPU run): its NVML
    peak (polled, or read after training or at the end) less what the GPU held before it started."""
    nvml = record.get("nvml", {})
    return max(nvml.get("peak", 0), nvml.get("after_train", 0), nvml.get("end", 0)) - nvml.get("before_init", 0)


def gpu_slug(gpu_name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3'."""
    return re.sub(r"[^a-z0-9]+", "-", gpu_name.lower()).strip("-")


def run_key(gpu_name: str, model: str, plan: dict, steps: int, cap_bytes: int | None) -> str:
    """A run's identity: GPU, model, the plan as it runs, steps and cap. Stable across how plans are stored."""
    plan = {k: v for k, v in plan.items() if k not in ("quant_storage", "layout", "loss_path", "trainable_itemsize")}
    if plan.get("trainer", "hf") == "hf":  # keys of the plain-Trainer runs recorded before the stack was a field
        plan = {k: v for k, v in plan.items() if k not in ("trainer", "trl_version", "fp32_adapters")}
    if not plan.get("eval_batch"):
        plan.pop("eval_batch", None)
    if plan.get("allocator", "default") == "default":  # keys of the runs recorded before the field existed
        plan = {k: v for k, v in plan.items() if k != "allocator"}
    if plan.get("checkpoint_every", 1) == 1:  # keys of the runs recorded before partial checkpointing was a field
        plan.pop("checkpoint_every", None)
    if not plan.get("checkpoint_offload", False):
        plan.pop("checkpoint_offload", None)
    # keys of the runs recorded while plans were stored resolved: FSDP without kbit preparation, one GPU as fsdp
    several = plan.get("gpus", 1) > 1
    if several and plan.get("parallel", "fsdp") == "fsdp":
        plan["kbit_prepare"] = False
    elif not several and "parallel" in plan:
        plan["parallel"] = "fsdp"
    blob = json.dumps([gpu_slug(gpu_name), model, plan, steps, cap_bytes], sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def runs_path(calib_dir: Path, gpu_name: str) -> Path:
    return calib_dir / "runs" / f"{gpu_slug(gpu_name)}.jsonl"


def record_allocator(record: dict) -> str:
    """The allocator a run measured: its plan's, "default" for the runs recorded before the field existed."""
    return (record.get("plan") or {}).get("allocator", "default")


def load_runs(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:  # a sweep killed mid-write leaves half a line
            raise VramplanError(f"{path}:{number}: not a JSON record (a run cut off while it was written?)",
                                hint="delete that line (the run is measured again by the next `vramplan "
                                     "calibrate`), then --refit") from None
    return out


def load_all_runs(calib_dir: Path) -> dict[str, list[dict]]:
    """{gpu slug: records} for every runs file."""
    return {p.stem: load_runs(p) for p in sorted((calib_dir / "runs").glob("*.jsonl"))}


def append_run(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def train_bench_record(out_run: Path, command: list[str], exit_code: int) -> dict | None:
    """A `vramplan train` run's own record (OUT/run_record.json) with what the bench ran and what it wrote;
    None when train wrote no record."""
    path = out_run / "run_record.json"
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    adapter = out_run / "adapter"
    record["bench"] = {"command": command, "exit_code": exit_code, "written": sorted(p.name for p in out_run.iterdir()),
                       "adapter_files": sorted(p.name for p in adapter.glob("*")) if adapter.exists() else []}
    return record


def steady_step_seconds(record: dict) -> float:
    """The median of the optimizer steps after the first, or after the ones NVML was polled in where the record
    stopped its poller (the mean of the middle two when even); a record without per-step times gives its
    step_time_s."""
    steps = (record.get("torch") or {}).get("steps") or []
    warm = max(1, record.get("nvml_polled_steps") or 0)
    times = [s["time_s"] for s in steps[warm:] if s.get("time_s")]
    return float(statistics.median(times)) if times else float(record["step_time_s"])
