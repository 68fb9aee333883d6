"""On a GPU: `vramplan train` end to end, then its plan against the seed blog's recipe.

    python bench/train_vs_recipe.py --model llama-3.2-1b --seq 2048 --effective-batch 16 --steps 50

1. builds a random-weight checkpoint of the profile with a small word-level tokenizer and a synthetic dataset;
2. runs `vramplan train` (verification + --max-steps STEPS) and keeps its run record;
3. measures, in fresh processes on the same GPU, sequence and effective batch, the plan vramplan chose and the
   recipe of shared/seeds/000 (paged_adamw_32bit, micro-batch 2 x accumulation 8, r=64, checkpointing);
4. prints tokens/s and measured peaks of both and the speed ratio; writes every record to OUT (default
   calibration/train/train_runs.jsonl and comparison.jsonl).
"""
import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.synthetic import synthetic_run  # noqa: E402
from vramplan.calibrate.design import SweepRun  # noqa: E402
from vramplan.calibrate.records import append_run, measured_peak, train_bench_record  # noqa: E402
from vramplan.calibrate.sweep import run_one  # noqa: E402
from vramplan.plan import TrainPlan  # noqa: E402
from vramplan.units import GiB

SEED_RECIPE = dict(rank=64, alpha=64, dropout=0.05, optim="paged_adamw_32bit", batch=2, grad_accum=8,
                   gradient_checkpointing=True, allocator="default")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="llama-3.2-1b")
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--effective-batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--out", type=Path, default=ROOT / "calibration" / "train")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vramplan-bench-"))
    ckpt, data = synthetic_run(args.model, work, args.effective_batch * args.steps, args.seq)
    out_run = work / "run"
    subprocess.run([sys.executable, "-m", "vramplan", "train", str(ckpt), "--data", str(data), "--seq",
                    str(args.seq), "--effective-batch", str(args.effective_batch), "--max-steps", str(args.steps),
                    "--output", str(out_run)], check=True)
    record = train_bench_record(out_run, ["vramplan", "train"], 0)
    append_run(args.out / "train_runs.jsonl", record)
    chosen = TrainPlan.from_dict(record["plan"])
    recipe = chosen.with_(**{**SEED_RECIPE, "grad_accum": args.effective_batch // SEED_RECIPE["batch"]})
    rows = {}
    for label, plan in (("vramplan", chosen), ("seed recipe", recipe)):
        run = SweepRun(args.model, f"train comparison: {label}", plan)
        rec = run_one(run, ckpt, f"compare-{label}-{args.model}-{args.seq}", timeout_s=900)
        append_run(args.out / "comparison.jsonl", rec)
        rows[label] = rec
    print(f"{args.model}, seq {args.seq}, effective batch {args.effective_batch}:")
    for label, rec in rows.items():
        peak = measured_peak(rec) / GiB
        print(f"  {label:12s} {rec['status']:5s} {rec.get('tokens_per_s', 0):10.0f} tokens/s  peak {peak:6.2f} GiB")
    a, b = rows["vramplan"].get("tokens_per_s"), rows["seed recipe"].get("tokens_per_s")
    if a and b:
        print(f"  speed ratio vramplan / recipe: {a / b:.2f}x (goal 1.3x)")


if __name__ == "__main__":
    main()
