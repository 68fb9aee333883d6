"""The Mixture-of-Experts model against its measured runs (calibration/moe, bench/moe_runs.py): the accuracy row
for the README, every run, the per-layer slopes, the 24 GiB cap runs, and the validation set against the
predictions written before it was measured (calibration/moe/validation.json).

    python bench/moe_accuracy.py [--records calibration/moe]
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from moe_runs import SHAPES, shape_arch  # noqa: E402
from vramplan.calibrate.stack_accuracy import PROFILE_OF, error_pct, record_plan  # noqa: E402
from vramplan.planner import Planner  # noqa: E402
from vramplan.profiles import find_gpu  # noqa: E402
from vramplan.store.calibrations import Calibrations  # noqa: E402
from vramplan.units import GiB  # noqa: E402


def load(folder: Path) -> list[dict]:
    out = []
    for path in sorted(folder.glob("*.jsonl")):
        out += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return out


def rows(records: list[dict]) -> list[dict]:
    """Each run with its prediction: the NVML peak over the whole run (load included) and over the steps."""
    out = []
    for r in records:
        if r.get("model") not in SHAPES or r.get("status") not in ("ok", "oom"):
            continue
        planner = Planner(find_gpu(PROFILE_OF[r["gpu"]["name"]]), Calibrations.package(), vram_bytes=r.get("cap_bytes"))
        b = planner.estimate(shape_arch(r["model"]), record_plan(r))
        peaks = r["nvml"]["phase_peaks"]
        out.append({"key": r["run_key"], "model": r["model"], "family": shape_arch(r["model"]).model_type,
                    "why": r.get("why", ""), "status": r["status"],
                    "trainer": r["stack"]["trainer"], "cap": r.get("cap_bytes"), "validation": r.get("validation"),
                    "measured": r["nvml"]["peak"], "predicted": b.peak_bytes, "phase": b.peak_phase,
                    "train_measured": peaks.get("train", 0), "train_predicted": b.train_peak_bytes,
                    "load_measured": peaks.get("load", 0),
                    "load_predicted": b.phase_peaks()["load"] + b.components.get("cuda_context", 0),
                    "fits": b.within_capacity, "required": b.required_bytes, "versions": r.get("versions", {})})
    return out


def family_of(row: dict) -> str:
    return row["family"]


def listed_families() -> set[str]:
    """The families profiles/moe_families.json lists (shape_arch opens the gate to all in this process)."""
    from vramplan.profiles.experts import moe_families_file
    return set(moe_families_file()["measured"])


def accuracy_row(rs: list[dict], listed: bool = True) -> str:
    """The README row of the families the gate lists (listed) or of those it still refuses."""
    ok = [r for r in rs if r["status"] == "ok" and not r["cap"] and (family_of(r) in listed_families()) == listed]
    if not ok:
        return f"no uncapped run of a {'listed' if listed else 'refused'} MoE family recorded"
    errs = [error_pct(r["predicted"], r["measured"]) for r in ok]
    families = {SHAPES[r["model"]].profile for r in ok}
    under = sum(e < -5 for e in errs)
    what = "Mixture-of-Experts" if listed else "Mixture-of-Experts, refused (not within 5%)"
    return (f"| {what} ({', '.join(sorted(families))}) | {len(ok)} runs | "
            f"MAE {sum(map(abs, errs)) / len(errs):.1f}% | {min(errs):+.1f}..{max(errs):+.1f}% | "
            f"{under} under by more than 5% |")


def per_run(rs: list[dict]) -> None:
    print("| shape | run | stack | status | predicted GiB | measured GiB | error | steps: pred / meas GiB | "
          "load: pred (allocated + context) / meas GiB | phase |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rs:
        err = f"{error_pct(r['predicted'], r['measured']):+.1f}%" if r["status"] == "ok" else "-"
        print(f"| {r['model']} | {r['why']} | {r['trainer']} | {r['status']} | {r['predicted'] / GiB:.2f} | "
              f"{r['measured'] / GiB:.2f} | {err} | {r['train_predicted'] / GiB:.2f} / "
              f"{r['train_measured'] / GiB:.2f} | {r['load_predicted'] / GiB:.2f} / {r['load_measured'] / GiB:.2f} "
              f"| {r['phase']} |")


def slopes(rs: list[dict]) -> None:
    """Runs of one plan at two layer counts of one shape: the measured per-layer slope against the predicted."""
    by = {}
    for r in rs:
        if r["status"] == "ok" and not r["cap"] and "@" in r["model"] and "-" not in r["model"].split("@")[1]:
            by.setdefault((SHAPES[r["model"]].profile, r["why"], r["trainer"]), []).append(r)
    print("\nper-layer slope (same plan, two layer counts):\n")
    for (profile, why, _), pair in sorted(by.items()):
        if len(pair) < 2:
            continue
        pair.sort(key=lambda r: SHAPES[r["model"]].overrides["num_hidden_layers"])
        lo, hi = pair[0], pair[-1]
        n = SHAPES[hi["model"]].overrides["num_hidden_layers"] - SHAPES[lo["model"]].overrides["num_hidden_layers"]
        meas, pred = (hi["measured"] - lo["measured"]) / n, (hi["predicted"] - lo["predicted"]) / n
        print(f"- {profile} {why}: measured {meas / GiB:.3f} GiB/layer, predicted {pred / GiB:.3f} "
              f"({error_pct(pred, meas):+.1f}%)")


def caps(rs: list[dict]) -> None:
    print("\n24 GiB allocator cap (set_per_process_memory_fraction):\n")
    for r in rs:
        if r["cap"]:
            verdict = "fits" if r["fits"] else "does not fit"
            agree = (r["status"] == "ok") == r["fits"]
            print(f"- {r['model']} {r['why']}: predicted {verdict} (needs {r['required'] / GiB:.2f} GiB), "
                  f"measured {r['status']} at {r['measured'] / GiB:.2f} GiB: {'agrees' if agree else 'DISAGREES'}")


def full_qwen3(rs: list[dict]) -> None:
    """`vramplan fit qwen3-30b-a3b --gpu RTX-4090`: no plan of all 48 layers fits; the leanest one's prediction,
    and the measured 6-layer attention-only peak carried to 48 layers by the measured per-layer slope."""
    from vramplan.plan import TrainPlan
    from vramplan.profiles import arch_from_config
    shape_arch("qwen3-30b-a3b@6L")  # opens the measured-families gate in this process
    profile = json.loads((ROOT / "profiles" / "models" / "qwen3-30b-a3b.json").read_text())
    model = arch_from_config(profile["config"], name="qwen3-30b-a3b", origin="profile")
    leanest = TrainPlan(batch=1, seq=512, rank=8, targets=("q_proj", "k_proj", "v_proj", "o_proj"))
    b = Planner(find_gpu("RTX-4090"), Calibrations.package()).estimate(model, leanest)
    print(f"\nqwen3-30b-a3b, all 48 layers, on an RTX 4090: the leanest plan (attention-only r8, b1x512, "
          f"checkpointing) needs {b.required_bytes / GiB:.1f} GiB predicted against {b.capacity_bytes / GiB:.1f} GiB "
          f"({b.components['moe_experts'] / GiB:.1f} GiB of fp32 experts)")
    pair = {SHAPES[r["model"]].overrides["num_hidden_layers"]: r for r in rs if r["status"] == "ok" and not r["cap"]
            and r["why"] == "attention-only dropout 0.05 b2x1024" and r["model"].startswith("qwen3-30b-a3b@")}
    if {3, 6} <= set(pair):
        slope = (pair[6]["measured"] - pair[3]["measured"]) / 3
        print(f"measured: {pair[6]['measured'] / GiB:.2f} GiB at 6 layers + 42 x {slope / GiB:.2f} GiB/layer = "
              f"{(pair[6]['measured'] + 42 * slope) / GiB:.1f} GiB at 48 layers (b2x1024)")


def validation(rs: list[dict], path: Path) -> None:
    if not path.exists():
        print(f"\nno validation predictions at {path} (bench/moe_runs.py --predict {path})")
        return
    predicted, by_key = json.loads(path.read_text()), {r["key"]: r for r in rs}
    print(f"\nvalidation set (predicted before measuring, {path}):\n")
    print("| shape | run | predicted GiB | measured GiB | error | the model now (in sample) |")
    print("|---|---|---|---|---|---|")
    for key, p in predicted.items():
        r = by_key.get(key)
        measured = f"{r['measured'] / GiB:.2f}" if r else "not measured"
        ok = r and r["status"] == "ok"
        err = f"{error_pct(p['peak_bytes'], r['measured']):+.1f}%" if ok else "-"
        now = f"{r['predicted'] / GiB:.2f} GiB, {error_pct(r['predicted'], r['measured']):+.1f}%" if ok else "-"
        print(f"| {p['model']} | {p['why'].replace('validation: ', '')} | {p['peak_bytes'] / GiB:.2f} | {measured} "
              f"| {err} | {now} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", default=str(ROOT / "calibration" / "moe"))
    folder = Path(ap.parse_args().records)
    rs = rows(load(folder))
    print(accuracy_row(rs))
    print(accuracy_row(rs, listed=False))
    versions = {json.dumps(r["versions"], sort_keys=True) for r in rs}
    print("\nversions: " + "; ".join(sorted(versions)) + "\n")
    per_run(rs)
    slopes(rs)
    caps(rs)
    full_qwen3(rs)
    validation(rs, folder / "validation.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
