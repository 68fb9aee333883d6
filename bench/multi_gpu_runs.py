"""On a host with 2+ GPUs: measured multi-GPU QLoRA runs, per-rank peaks, and the 24 GiB proof.

    python bench/multi_gpu_runs.py --set expandable [--out calibration/multi_gpu] [--only 0,1,...]

Each run: a random-weight checkpoint built from its profile, the accelerate configuration of
vramplan/train/distributed.py, `accelerate launch` of vramplan.calibrate.rank_measure (3 optimizer steps, every
rank records its own NVML and torch peaks). Sets: `default` (FSDP, PyTorch's allocator as is, and the proof: the
same plan on one GPU, standard recipe, and on two, FSDP, both under an allocator cap of 24 GiB per GPU),
`expandable` (FSDP, DDP and CPU offload with expandable segments: what `vramplan train --gpus` launches),
`holdout` (an architecture the fit has not seen), `allocator` (which plan setting makes the default allocator
re-split a logits segment), `validation` (architectures and shapes the fit has not seen, predicted first with
--predict; `validation-default` likewise, with PyTorch's default allocator), `tied` (tied embeddings: what `train --gpus 2` picked for
llama-3.2-1b). Records are appended to OUT/<gpu>.jsonl.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vramplan.calibrate.design import SweepRun  # noqa: E402
from vramplan.calibrate.records import append_run, gpu_slug, measured_peak, run_key  # noqa: E402
from vramplan.plan import TrainPlan  # noqa: E402
from vramplan.units import GiB  # noqa: E402

PROOF_SEQ = 8192  # llama-3.1-8b: planner says 25.9 GiB allocator need on one GPU (cap 24), well under on two
E = dict(gpus=2, allocator="expandable")
SETS = {
    "default": (
        ("mistral-7b-v0.3", "fsdp base 2048", TrainPlan(seq=2048, gpus=2), None),
        ("mistral-7b-v0.3", "fsdp seq 4096", TrainPlan(seq=4096, gpus=2), None),
        ("mistral-7b-v0.3", "fsdp micro-batch 2, r64", TrainPlan(seq=2048, batch=2, rank=64, alpha=64, gpus=2), None),
        ("llama-3.1-8b", "fsdp base 2048", TrainPlan(seq=2048, gpus=2), None),
        ("llama-3.1-8b", "fsdp seq 4096", TrainPlan(seq=4096, gpus=2), None),
        ("llama-3.1-8b", "fsdp micro-batch 2, r64", TrainPlan(seq=2048, batch=2, rank=64, alpha=64, gpus=2), None),
        ("llama-3.1-8b", "proof: 2 GPUs capped at 24 GiB", TrainPlan(seq=PROOF_SEQ, gpus=2), 24 * GiB),
        ("llama-3.1-8b", "proof: 1 GPU capped at 24 GiB", TrainPlan(seq=PROOF_SEQ), 24 * GiB),
    ),
    "expandable": (
        ("mistral-7b-v0.3", "fsdp expandable 2048", TrainPlan(seq=2048, **E), None),
        ("mistral-7b-v0.3", "fsdp expandable 4096", TrainPlan(seq=4096, **E), None),
        ("mistral-7b-v0.3", "fsdp expandable micro-batch 2, r64", TrainPlan(seq=2048, batch=2, rank=64, alpha=64, **E), None),
        ("mistral-7b-v0.3", "fsdp expandable 8192", TrainPlan(seq=8192, **E), None),
        ("llama-3.1-8b", "fsdp expandable 2048", TrainPlan(seq=2048, **E), None),
        ("llama-3.1-8b", "fsdp expandable 4096", TrainPlan(seq=4096, **E), None),
        ("llama-3.1-8b", "fsdp expandable micro-batch 2, r64", TrainPlan(seq=2048, batch=2, rank=64, alpha=64, **E), None),
        ("llama-3.1-8b", "fsdp expandable 8192", TrainPlan(seq=8192, **E), None),
        ("llama-3.1-8b", "fsdp expandable, no checkpointing", TrainPlan(seq=2048, gradient_checkpointing=False, **E), None),
        ("mistral-7b-v0.3", "ddp expandable 2048", TrainPlan(seq=2048, parallel="ddp", **E), None),
        ("llama-3.1-8b", "ddp expandable 4096", TrainPlan(seq=4096, parallel="ddp", **E), None),
        ("llama-3.1-8b", "fsdp expandable, cpu offload", TrainPlan(seq=4096, offload=True, optim="adamw_torch", **E), None),
    ),
    "holdout": (
        ("qwen2.5-7b", "fsdp expandable 2048", TrainPlan(seq=2048, **E), None),
        ("qwen2.5-7b", "fsdp expandable 4096, micro-batch 2", TrainPlan(seq=4096, batch=2, **E), None),
        ("qwen2.5-7b", "ddp expandable 2048", TrainPlan(seq=2048, parallel="ddp", **E), None),
    ),
    "tied": (  # tied embeddings, and the configurations `train --gpus 2` picked for llama-3.2-1b at seq 1024
        ("llama-3.2-1b", "fsdp expandable 1024, micro-batch 8", TrainPlan(seq=1024, batch=8, optim="adamw_8bit", **E), None),
        ("llama-3.2-1b", "ddp expandable 1024, micro-batch 8, no checkpointing",
         TrainPlan(seq=1024, batch=8, optim="adamw_8bit", gradient_checkpointing=False, parallel="ddp", **E), None),
    ),
    # the default allocator re-splits a logits segment at micro-batch 2, r=64 (not at 1, r=16): which of the two?
    "allocator": (
        ("llama-3.1-8b", "fsdp micro-batch 2, r16", TrainPlan(seq=2048, batch=2, gpus=2), None),
        ("llama-3.1-8b", "fsdp seq 4096, r64", TrainPlan(seq=4096, rank=64, alpha=64, gpus=2), None),
    ),
    # predicted before they were measured (--predict writes the predictions; calibration/multi_gpu/validation.json)
    "validation": (
        ("qwen3-8b", "validation: fsdp expandable 4096", TrainPlan(seq=4096, **E), None),
        ("mistral-nemo-12b", "validation: fsdp expandable 2048", TrainPlan(seq=2048, **E), None),
        ("llama-3.2-3b", "validation: fsdp expandable 2048, micro-batch 4 (tied)", TrainPlan(seq=2048, batch=4, **E), None),
        ("phi-3-mini", "validation: fsdp expandable 4096, micro-batch 2, r32",
         TrainPlan(seq=4096, batch=2, rank=32, alpha=64, **E), None),
        ("qwen3-8b", "validation: fsdp expandable 2048, no checkpointing",
         TrainPlan(seq=2048, gradient_checkpointing=False, **E), None),
        ("phi-3-mini", "validation: ddp expandable 2048, micro-batch 2", TrainPlan(seq=2048, batch=2, parallel="ddp", **E), None),
    ),
    # the default allocator on architectures it was not fitted on; the predictions charged every rank above 16
    # the re-split event, a rule these runs refuted (README: several GPUs)
    "validation-default": (
        ("qwen2.5-7b", "validation: fsdp default allocator 2048", TrainPlan(seq=2048, gpus=2), None),
        ("llama-3.2-3b", "validation: fsdp default allocator 2048, micro-batch 4, r64 (tied)",
         TrainPlan(seq=2048, batch=4, rank=64, alpha=64, gpus=2), None),
        ("qwen3-8b", "validation: fsdp default allocator 4096, r32", TrainPlan(seq=4096, rank=32, alpha=64, gpus=2), None),
        ("mistral-nemo-12b", "validation: fsdp default allocator 4096", TrainPlan(seq=4096, gpus=2), None),
    ),
}
STEPS = 3


def predict(set_name: str, gpu_name: str, out: Path) -> None:
    """The planner's per-rank peaks for a set, written before it is measured (no GPU needed)."""
    import subprocess

    from vramplan.calibrate.validation import write_predictions
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    runs = [SweepRun(model, why, plan, cap) for model, why, plan, cap in SETS[set_name]]
    for row in write_predictions(out, set_name, gpu_name, runs, STEPS, commit)["predictions"]:
        print(f"{row['model']:16s} {row['why']:55s} {row['predicted_peak_bytes'] / GiB:6.2f} GiB per rank")
    print(f"predictions: {out}")


def main() -> None:
    from vramplan.calibrate.sweep import default_cache, ensure_checkpoint, run_multi_gpu, run_one
    from vramplan.gpu_info import detect_gpu

    ap = argparse.ArgumentParser()
    ap.add_argument("--set", choices=sorted(SETS), required=True)
    ap.add_argument("--out", type=Path, default=ROOT / "calibration" / "multi_gpu")
    ap.add_argument("--only", default=None, help="comma-separated indexes within the set")
    ap.add_argument("--trace", type=Path, default=None, help="folder for rank 0's allocation traces (no records)")
    ap.add_argument("--predict", type=Path, default=None, help="write the planner's predictions for the set to this "
                                                               "file and measure nothing")
    ap.add_argument("--gpu", default="NVIDIA H200", help="with --predict: the GPU the set will run on")
    args = ap.parse_args()
    if args.predict:
        return predict(args.set, args.gpu, args.predict)
    gpu = detect_gpu()
    path = args.out / f"{gpu_slug(gpu['name'])}.jsonl"
    print(f"{gpu['name']} x{gpu['count']}")
    failures = 0
    for i, (model, why, plan, cap) in enumerate(SETS[args.set]):
        if args.only is not None and str(i) not in args.only.split(","):
            continue
        ckpt = ensure_checkpoint(model, default_cache(), print)
        key = run_key(gpu["name"], model, plan.to_dict(), STEPS, cap)
        if plan.gpus == 1:
            rec = run_one(SweepRun(model, why, plan, cap), ckpt, key, timeout_s=900)
            peaks = [measured_peak(rec)]
        else:
            name = f"{model}-{plan.seq}x{plan.batch}{'-ddp' if plan.parallel == 'ddp' else ''}-{plan.allocator}"
            trace = args.trace / f"{name}.trace.json" if args.trace else None
            rec = run_multi_gpu(SweepRun(model, why, plan, cap), ckpt, key, trace_path=trace)
            peaks = [measured_peak(r) for r in rec["ranks"]]
        if not args.trace:  # tracing slows the run and records the allocator's history: not a calibration run
            append_run(path, rec)
        print(f"[{i}] {model:16s} {why:40s} {rec['status']:5s} peaks " + " ".join(f"{p / GiB:6.2f}" for p in peaks)
              + f" GiB  {rec.get('wall_s')} s", flush=True)
        if rec["status"] == "error":
            failures += 1
            print((rec.get("launcher_stderr") or rec.get("error") or "")[-2000:])
            for r in rec.get("ranks", []):
                print(r.get("traceback", r.get("error", ""))[-1500:])
            if failures >= 2:
                break  # the recipe itself fails: later runs would too
    print(f"records: {path}")


if __name__ == "__main__":
    main()
