"""On a GPU: the PreflightCallback stops an over-sized job before its first step and passes a good one.

    python bench/preflight_demo.py --model llama-3.1-8b [--out calibration/preflight]

Each job runs in its own process: the standard recipe (from_pretrained 4-bit, prepare_model_for_kbit_training,
peft LoRA) handed to a transformers Trainer with PreflightCallback(gpu='auto'). The over-sized job is the same model
at a sequence long enough that the planner predicts more than the card has; the good job is `vramplan fit`'s plan.
Records (outcome, predicted, measured peak, GPU, versions) are appended to OUT/<gpu>.jsonl.
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))



def main() -> None:
    from vramplan.calibrate.preflight_job import crash_record
    from vramplan.calibrate.records import append_run, gpu_slug
    from vramplan.calibrate.sweep import ensure_checkpoint
    from vramplan.gpu_info import detect_gpu
    from vramplan.plan import TrainPlan
    from vramplan.planner import Planner
    from vramplan.profiles import find_gpu, find_model
    from vramplan.store.calibrations import Calibrations
    from vramplan.units import GiB
    from vramplan.workers import worker_command

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="llama-3.1-8b")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "calibration" / "preflight")
    args = ap.parse_args()
    gpu_name = detect_gpu()["name"]
    arch, gpu = find_model(args.model), find_gpu(gpu_name)
    cal = Calibrations.shipped()
    good = Planner(gpu, cal).fit(arch, seq=2048, effective_batch=16).recommended.plan
    too_long = Planner(gpu, cal, gpu.memory_bytes).longest_seq(arch, TrainPlan()) * 2
    oversized = TrainPlan(seq=too_long, batch=1, grad_accum=16)
    work = Path(tempfile.mkdtemp(prefix="vramplan-preflight-"))
    ckpt = ensure_checkpoint(args.model, work)
    path = args.out / f"{gpu_slug(gpu_name)}.jsonl"
    for job, plan in (("over-sized", oversized), ("good", good)):
        spec = {"job": job, "model": args.model, "checkpoint": str(ckpt), "plan": plan.to_dict(),
                "steps": args.steps, "output_dir": str(work / job)}
        proc = subprocess.run(worker_command("preflight_job", json.dumps(spec)), capture_output=True, text=True,
                              timeout=1200)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        rec = json.loads(lines[-1]) if lines else crash_record(job, proc.stderr)
        append_run(path, rec)
        print(f"{job:10s} seq {plan.seq:6d}: {rec['outcome']}  steps {rec.get('steps_done')}  "
              f"predicted {rec.get('predicted_required_bytes', 0) / GiB:.1f} GiB  "
              f"measured peak {rec.get('nvml_peak', 0) / GiB:.1f} GiB")
    print(f"records: {path}")


if __name__ == "__main__":
    main()
