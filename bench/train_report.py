"""The README table of bench/train_vs_recipe.py, from its records (no number typed by hand):

    python bench/train_report.py [--records calibration/train]

tokens/s of `vramplan train`'s plan and of the seed 000 recipe (3 fresh processes each) with their ratio and
whole-run NVML peaks, the capped runs, and the predicted against measured peak of every verification.
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vramplan.calibrate.records import measured_peak  # noqa: E402
from vramplan.flags import plan_line  # noqa: E402
from vramplan.units import GiB  # noqa: E402

SUITE = "train_vs_recipe_trl"


def load(folder: Path, name: str) -> list[dict]:
    path = folder / name
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("bench", {}).get("suite") == SUITE]


def latest(rows: list[dict], item: str) -> list[dict]:
    """The runs of one item from the latest call that ran it (a rerun supersedes; the file keeps both)."""
    mine = [r for r in rows if r["bench"]["item"] == item and r.get("status") != "skipped"]
    last = max((r["bench"]["call"] for r in mine), default=None)
    return [r for r in mine if r["bench"]["call"] == last]


def gib(n) -> str:
    return f"{n / GiB:.2f} GiB" if n else "-"


def speed_rows(comparison: list[dict]) -> tuple[list[str], dict]:
    out, medians = ["| run | plan | runs ok | tokens/s, median (min-max) | whole-run NVML peak, max |",
                    "|---|---|---|---|---|"], {}
    for item, label in (("vramplan", "`vramplan train`'s plan"), ("seed recipe", "seed 000 recipe")):
        runs = latest(comparison, item)
        ok = [r for r in runs if r.get("status") == "ok"]
        if not runs:
            continue
        plan = plan_line(runs[0]["spec_plan"]) if runs[0].get("spec_plan") else "-"
        if ok:
            speeds = sorted(r["tokens_per_s"] for r in ok)
            medians[item] = statistics.median(speeds)
            speed = f"{medians[item]:,.0f} ({speeds[0]:,.0f}-{speeds[-1]:,.0f})"
            peak = gib(max(measured_peak(r) for r in ok))
        else:
            speed, peak = "-", "-"
        out.append(f"| {label} | {plan} | {len(ok)} of {len(runs)} | {speed} | {peak} |")
    if "vramplan" in medians and "seed recipe" in medians:
        out.append("")
        out.append(f"Speed ratio, vramplan / recipe: **{medians['vramplan'] / medians['seed recipe']:.2f}x**")
    return out, medians


def capped_rows(capped: list[dict], trains: list[dict]) -> list[str]:
    out = ["| run | plan | cap | status | measured peak | predicted peak (required) |", "|---|---|---|---|---|---|"]
    for item in ("16 GiB cap, TRL", "16 GiB cap, plain Trainer"):
        for r in latest(capped, item):
            peak = measured_peak(r) if r.get("nvml") else 0
            out.append(f"| {item} | {plan_line(r['spec_plan'])} | {gib(cap_of(r))} | {r['status']} | "
                       f"{gib(peak) if r['status'] == 'ok' else '-'} | {gib(r['bench'].get('predicted_peak_bytes'))} "
                       f"({gib(r['bench'].get('predicted_required_bytes'))}) |")
    for r in latest(trains, "vramplan train fp16 T4 cap"):
        plan = plan_line(r["plan"]) if r.get("plan") else "-"
        out.append(f"| `vramplan train --gpu T4 --memory-cap 15GiB` | {plan} | {gib(cap_of(r))} | "
                   f"{r['status']} | {gib(train_peak(r))} | {gib(r.get('predicted_peak_bytes'))} "
                   f"({gib(r.get('predicted_required_bytes'))}) |")
    found = next((r["bench"]["planner"] for r in capped if r["bench"].get("planner")), None)
    if found:
        out += ["", f"Planner, 16 GiB on {found['gpu_profile']}: the longest Llama-3.1-8B sequence is "
                    f"{found['longest_seq_trl']} tokens through TRL and {found['longest_seq_hf']} through the "
                    f"plain Trainer."]
    return out


def cap_of(record: dict) -> int | None:
    """The footprint a run was held to (vramplan.train.memory_cap; train holds it to the memory planned for)."""
    return (record.get("memory_cap") or {}).get("memory_cap_bytes")


def train_peak(record: dict) -> int | None:
    """A `vramplan train` run's NVML peak during training, less what the GPU held before it started."""
    peak = record.get("measured_nvml_peak_bytes")
    return peak - (record.get("nvml_before_bytes") or 0) if peak else None


def verification_rows(trains: list[dict]) -> list[str]:
    out = ["| run | plan | status | predicted peak (required) | measured peak | error of the peak |",
           "|---|---|---|---|---|---|"]
    for item in ("vramplan train", "vramplan train fp16 T4 cap"):
        for r in latest(trains, item):
            for v in r.get("verifications", []):
                err = f"{v['error_pct']:+.1f}%" if "error_pct" in v else "-"
                out.append(f"| {item} | {plan_line(v['plan'])} | {v['status']} | {gib(v['predicted_peak_bytes'])} "
                           f"({gib(v.get('predicted_required_bytes'))}) | {gib(v.get('measured_peak_bytes'))} | "
                           f"{err} |")
    return out


def setup_line(rows: list[dict]) -> str:
    r = next((r for r in rows if r.get("gpu") and r.get("versions")), None)
    if r is None:
        return ""
    gpu, v = r["gpu"], r["versions"]
    libs = ", ".join(f"{k} {v[k]}" for k in ("torch", "transformers", "peft", "trl", "bitsandbytes") if v.get(k))
    return f"{gpu.get('name')} (driver {gpu.get('driver')}); {libs}."


def report(folder: Path) -> str:
    comparison, capped = load(folder, "trl_comparison.jsonl"), load(folder, "trl_capped.jsonl")
    trains = load(folder, "trl_train_runs.jsonl")
    if not (comparison or capped or trains):
        return f"no records of {SUITE} in {folder} (run bench/train_vs_recipe.py --part 1 and --part 2 first)"
    speed, _ = speed_rows(comparison)
    lines = ["Llama-3.1-8B (random weights), 2048 tokens, effective batch 16, through TRL's SFTTrainer; "
             + setup_line(comparison + capped), "", *speed, "", *capped_rows(capped, trains), "",
             "Verification steps of `vramplan train` at the longest sequence (the peak is predicted for a card "
             "with room; under a cap the allocator frees its cache down to the required bytes):", "",
             *verification_rows(trains)]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=Path, default=ROOT / "calibration" / "train")
    print(report(ap.parse_args().records))


if __name__ == "__main__":
    main()
