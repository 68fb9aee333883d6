"""Why does the reserve grow at step 2 in some runs? Allocation traces, default allocator vs expandable segments.

    python bench/segment_split.py [--out calibration/traces]

Runs the configurations whose reserve grew after step 1 on the H100 (and controls that did not), each in a fresh
process with torch's memory history on, once with the default caching allocator and once with
expandable_segments:True. Appends the records to OUT/<gpu>.jsonl and writes each trace (blocks >= 8 MiB and every
segment, with the frames that asked for them) to OUT/<run_key>.trace.json. Prints, per run, the growth of the
reserve after step 1 in units of one fp32 tokens x vocab block, and NVML peak expandable / default.

The controls (llama-3.2-1b without checkpointing and with 16-bit LoRA: no growth measured, where qwen2.5-0.5b grew)
tell where the backward thread's 32 MiB cuBLAS workspace lands when it does not split a freed logits segment:
python bench/segment_split.py --only 4,5,6
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vramplan.calibrate.design import BASE, SweepRun  # noqa: E402
from vramplan.calibrate.records import append_run, gpu_slug, measured_peak, run_key  # noqa: E402
from vramplan.profiles import find_model  # noqa: E402
from vramplan.units import GiB

CASES = (
    ("qwen2.5-0.5b", "no checkpointing (split)", {"gradient_checkpointing": False}),
    ("gemma-2-2b", "no checkpointing (split)", {"gradient_checkpointing": False}),
    ("phi-3-mini", "no checkpointing (split)", {"gradient_checkpointing": False}),
    ("qwen2.5-0.5b", "16-bit LoRA (split)", {"quant": "none"}),
    ("llama-3.2-1b", "no checkpointing (control)", {"gradient_checkpointing": False}),
    ("qwen2.5-0.5b", "base (control)", {}),
    ("llama-3.2-1b", "16-bit LoRA (control)", {"quant": "none"}),
)


def growth(record: dict) -> float:
    res = [s["max_reserved"] for s in record["torch"]["steps"]]
    return max(res[1:]) - res[0]


def main() -> None:
    from vramplan.calibrate.sweep import STEPS, default_cache, ensure_checkpoint, run_one
    from vramplan.gpu_info import detect_gpu

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "calibration" / "traces")
    ap.add_argument("--only", default=None, help="comma-separated indexes of CASES")
    args = ap.parse_args()
    gpu = detect_gpu()["name"]
    args.out.mkdir(parents=True, exist_ok=True)
    cases = [c for i, c in enumerate(CASES) if args.only is None or str(i) in args.only.split(",")]
    for model, why, change in cases:
        ckpt = ensure_checkpoint(model, default_cache(), print)
        peaks = {}
        for allocator in ("default", "expandable"):
            run = SweepRun(model, f"{why}, {allocator} allocator", BASE.with_(allocator=allocator, **change))
            key = run_key(gpu, model, run.plan.to_dict(), STEPS, None) + "-trace"
            rec = run_one(run, ckpt, key, timeout_s=600, trace_path=args.out / f"{key}.trace.json")
            append_run(args.out / f"{gpu_slug(gpu)}.jsonl", rec)
            if rec["status"] != "ok":
                print(f"{model:14s} {run.why:45s} {rec['status']}: {rec.get('error', '')[:200]}")
                continue
            block = run.plan.tokens * find_model(model).vocab * 4
            peaks[allocator] = measured_peak(rec)
            print(f"{model:14s} {run.why:45s} reserve growth after step 1: {growth(rec) / block:5.2f} fp32 logits "
                  f"blocks; nvml peak {measured_peak(rec) / GiB:6.2f} GiB")
        if len(peaks) == 2:
            print(f"{'':14s} expandable / default nvml peak: {peaks['expandable'] / peaks['default']:.3f}")


if __name__ == "__main__":
    main()
