"""Issue 7 on a host with 2+ GPUs: measured FSDP QLoRA runs, per-rank peaks, and the 24 GiB proof.

    python bench/fsdp_runs.py [--out calibration/fsdp] [--only 0,1,...]

Each run: a random-weight checkpoint built from its profile, the accelerate/FSDP configuration of
vramplan/training/distributed.py, `accelerate launch` of vramplan.runtime.fsdp_measure (3 optimizer steps, every
rank records its own NVML and torch peaks). The proof: the same plan on one GPU (standard recipe) and on two
(FSDP), both under an allocator cap of 24 GiB per GPU. Records are appended to OUT/<gpu>.jsonl.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vramplan.calibration.design import SweepRun  # noqa: E402
from vramplan.calibration.records import append_run, gpu_slug, run_key  # noqa: E402
from vramplan.plan import TrainPlan  # noqa: E402
from vramplan.training.distributed import launch_command, write_accelerate_config  # noqa: E402
from vramplan.units import GiB  # noqa: E402

PROOF_SEQ = 8192  # llama-3.1-8b: planner says 25.9 GiB allocator need on one GPU (cap 24), well under on two
RUNS = (
    ("mistral-7b-v0.3", "fsdp base 2048", TrainPlan(seq=2048, gpus=2), None),
    ("mistral-7b-v0.3", "fsdp seq 4096", TrainPlan(seq=4096, gpus=2), None),
    ("mistral-7b-v0.3", "fsdp micro-batch 2, r64", TrainPlan(seq=2048, batch=2, rank=64, alpha=64, gpus=2), None),
    ("llama-3.1-8b", "fsdp base 2048", TrainPlan(seq=2048, gpus=2), None),
    ("llama-3.1-8b", "fsdp seq 4096", TrainPlan(seq=4096, gpus=2), None),
    ("llama-3.1-8b", "fsdp micro-batch 2, r64", TrainPlan(seq=2048, batch=2, rank=64, alpha=64, gpus=2), None),
    ("llama-3.1-8b", "proof: 2 GPUs capped at 24 GiB", TrainPlan(seq=PROOF_SEQ, gpus=2), 24 * GiB),
    ("llama-3.1-8b", "proof: 1 GPU capped at 24 GiB", TrainPlan(seq=PROOF_SEQ), 24 * GiB),
)
STEPS = 3


def run_fsdp(model, why, plan, cap, ckpt, key, timeout_s=900) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec = {"run_key": key, "model": model, "checkpoint": str(ckpt), "plan": plan.to_dict(), "steps": STEPS,
                "cap_bytes": cap, "output_dir": str(tmp / "trainer")}
        (tmp / "spec.json").write_text(json.dumps(spec))
        cfg = write_accelerate_config(tmp / "accelerate.yaml", plan.gpus)
        cmd = launch_command(cfg, plan.gpus, "vramplan.runtime.fsdp_measure", [str(tmp / "spec.json"), str(tmp / "out")])
        t0 = time.time()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
            err = proc.stderr[-2500:]
        except subprocess.TimeoutExpired:
            err = f"no result within {timeout_s} s"
        ranks = [json.loads(p.read_text()) for p in sorted((tmp / "out").glob("rank*.json"))]
        status = ("ok" if ranks and all(r["status"] == "ok" for r in ranks) and len(ranks) == plan.gpus else
                  "oom" if any(r["status"] == "oom" for r in ranks) else "error")
        rec = {"schema": 1, "run_key": key, "model": model, "why": why, "plan": plan.to_dict(), "cap_bytes": cap,
               "steps_requested": STEPS, "status": status, "ranks": ranks, "accelerate_config": cfg.read_text(),
               "launch": cmd[1:], "wall_s": round(time.time() - t0, 1),
               "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        if status != "ok":
            rec["launcher_stderr"] = err
        return rec


def main() -> None:
    from vramplan.runtime.gpu_info import detect_gpu
    from vramplan.runtime.sweep import default_cache, ensure_checkpoint, run_one

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "calibration" / "fsdp")
    ap.add_argument("--only", default=None, help="comma-separated indexes of RUNS")
    args = ap.parse_args()
    gpu = detect_gpu()
    path = args.out / f"{gpu_slug(gpu['name'])}.jsonl"
    print(f"{gpu['name']} x{gpu['count']}")
    for i, (model, why, plan, cap) in enumerate(RUNS):
        if args.only is not None and str(i) not in args.only.split(","):
            continue
        ckpt = ensure_checkpoint(model, default_cache(), print)
        key = run_key(gpu["name"], model, plan.to_dict(), STEPS, cap)
        if plan.gpus == 1:
            rec = run_one(SweepRun(model, why, plan, cap), ckpt, key, timeout_s=900)
            peaks = [rec.get("nvml", {}).get("peak", 0)]
        else:
            rec = run_fsdp(model, why, plan, cap, ckpt, key)
            peaks = [r["nvml"]["peak"] - r["nvml"]["before_init"] for r in rec["ranks"]]
        append_run(path, rec)
        print(f"[{i}] {model:16s} {why:34s} {rec['status']:5s} peaks " + " ".join(f"{p / GiB:6.2f}" for p in peaks)
              + f" GiB  {rec.get('wall_s')} s")
        if rec["status"] == "error":
            print((rec.get("launcher_stderr") or rec.get("error") or "")[-2500:])
            for r in rec.get("ranks", []):
                print(r.get("traceback", r.get("error", ""))[-1500:])
            if plan.gpus > 1:
                break  # the recipe itself failed: later runs would too
    print(f"records: {path}")


if __name__ == "__main__":
    main()
