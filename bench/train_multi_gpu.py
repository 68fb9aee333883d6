"""On a host with 2+ GPUs: `vramplan train --gpus N` end to end.

    python bench/train_multi_gpu.py --model llama-3.2-1b --gpus 2 --seq 1024 --steps 20 [--parallel fsdp]

Builds a random-weight checkpoint of the profile with a small word-level tokenizer and a synthetic dataset, runs
`vramplan train --gpus N` (verification on every rank, then the launch), and appends its run record (every
rank's measured peak, the predicted per-GPU peak, the accelerate configuration) to OUT/train_runs.jsonl.
"""
import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.synthetic import synthetic_run  # noqa: E402
from vramplan.calibrate.records import append_run, train_bench_record  # noqa: E402
from vramplan.units import GiB


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="llama-3.2-1b")
    ap.add_argument("--gpus", type=int, default=2)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--effective-batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--parallel", default=None, help="fsdp or ddp (default: what fit chooses)")
    ap.add_argument("--out", type=Path, default=ROOT / "calibration" / "train")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vramplan-bench-"))
    ckpt, data = synthetic_run(args.model, work, args.effective_batch * args.steps, args.seq)
    out_run = work / "run"
    cmd = [sys.executable, "-m", "vramplan", "train", str(ckpt), "--data", str(data), "--seq", str(args.seq),
           "--gpus", str(args.gpus), "--effective-batch", str(args.effective_batch), "--max-steps", str(args.steps),
           "--output", str(out_run)] + (["--parallel", args.parallel] if args.parallel else [])
    code = subprocess.run(cmd).returncode
    record = train_bench_record(out_run, cmd[1:], code)
    if record is None:
        sys.exit(f"vramplan train exited {code} without a run record")
    append_run(args.out / "train_runs.jsonl", record)
    peaks = record.get("measured_nvml_peak_bytes_per_rank") or []
    print(f"{args.model} on {args.gpus} GPUs ({record['plan'].get('parallel')}): exit {code}; measured per rank "
          + ", ".join(f"{p / GiB:.2f}" for p in peaks) + f" GiB; predicted {record['predicted_peak_bytes_per_gpu'] / GiB:.2f}"
          f" GiB per GPU; {record.get('tokens_per_s')} tokens/s; files {record['bench']['written']}")


if __name__ == "__main__":
    main()
