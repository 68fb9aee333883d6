"""The plans fit compares for one job, timed on one GPU: predicted against measured tokens/s and the rank
correlation of the orderings: the predictions committed before measuring, the speed model as it is now (fitted
on these runs too: in sample) and the same model refitted without any run of the job's architecture (held out).

    python bench/speed_ranking.py --predict     # before measuring: calibration/ranking/predictions.json
    python bench/stack_runs.py --set ranking --out calibration/ranking      # on the GPU
    python bench/speed_ranking.py               # the table

Torch-free: reads the records and asks the planner.
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scipy.stats import spearmanr  # noqa: E402

from stack_runs import SETS, stack_plan  # noqa: E402
from vramplan.planner import Planner  # noqa: E402
from vramplan.profiles import find_gpu, find_model  # noqa: E402
from vramplan.speed import predicted_step_seconds  # noqa: E402
from vramplan.speed_fits import shipped_speed_params  # noqa: E402
from vramplan.store.calibrations import Calibrations  # noqa: E402

FOLDER = ROOT / "calibration" / "ranking"
PREDICTIONS = FOLDER / "predictions.json"


def held_out_params(model: str, nvml_name: str):
    """The GPU's speed fit, solved as the shipped one (with the other GPUs of its architecture) without any run
    of the architecture (numpy and scipy)."""
    from vramplan.calibrate import speed_solve as S
    rows = S.with_features(S.speed_rows())
    arch = next(r["profile"].architecture for r in rows if r["gpu_name"] == nvml_name)
    return S.solve([r for r in rows if r["profile"].architecture == arch and r["model"] != model], nvml_name)


def predictions(profile: str, nvml_name: str, params=None) -> dict:
    gpu = find_gpu(profile)
    planner = Planner(gpu, Calibrations.package())  # the shipped fits alone: nothing of the developer's own
    out = {}
    for run in SETS["ranking"]():
        model, plan = find_model(run.model), stack_plan(run)
        b = planner.estimate(model, plan)
        tokens = plan.tokens * plan.grad_accum
        out[run.key(nvml_name)] = {
            "model": run.model, "why": run.why, "tokens_per_step": tokens,
            "fitted_tokens_per_s": tokens / predicted_step_seconds(model, gpu, plan, b,
                                                                  params or shipped_speed_params(gpu)),
            "peak_bytes": b.peak_bytes}
    return out


def median_step_after_first(record: dict) -> float:
    """The speed model's target: the median optimizer step after the first (which builds the optimizer state)."""
    from statistics import median
    return median(s["time_s"] for s in record["torch"]["steps"][1:])


def report() -> int:
    predicted = json.loads(PREDICTIONS.read_text())
    records = {}
    for path in sorted(FOLDER.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            if r.get("status") == "ok":
                records[r["run_key"]] = r
    rows = [(p, records[k]) for k, p in predicted.items() if k in records]
    print(f"{len(rows)} of {len(predicted)} predicted plans measured ({', '.join(sorted({r['gpu']['name'] for _, r in rows}))})\n")
    if not rows:
        return 0
    gpu_name, arch = rows[0][1]["gpu"]["name"], rows[0][0]["model"]
    now = predictions("H200", gpu_name)
    held = predictions("H200", gpu_name, held_out_params(arch, gpu_name))
    print("| plan | measured tokens/s | predicted before | error | speed model now (in sample) | error "
          f"| refitted without {arch} | error |")
    print("|---|---|---|---|---|---|---|---|")
    measured, before, current, unseen = [], [], [], []
    for p, r in rows:
        m = p["tokens_per_step"] / median_step_after_first(r)
        measured.append(m), before.append(p["fitted_tokens_per_s"])
        current.append(now[r["run_key"]]["fitted_tokens_per_s"]), unseen.append(held[r["run_key"]]["fitted_tokens_per_s"])
        print(f"| {p['why'].replace('ranking: ', '')} | {m:,.0f} | {before[-1]:,.0f} | {100 * (before[-1] - m) / m:+.1f}% "
              f"| {current[-1]:,.0f} | {100 * (current[-1] - m) / m:+.1f}% "
              f"| {unseen[-1]:,.0f} | {100 * (unseen[-1] - m) / m:+.1f}% |")
    if len(rows) >= 3:
        for name, pred in (("predicted before measuring", before), ("speed model now (in sample)", current),
                           (f"refitted without {arch} (held out)", unseen)):
            errs = [abs(f - m) / m for f, m in zip(pred, measured)]
            print(f"\n{name}: MAE {100 * sum(errs) / len(errs):.1f}%, worst {100 * max(errs):.1f}%, "
                  f"Spearman {spearmanr(pred, measured)[0]:.2f}", end="")
        print()
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--predict", action="store_true", help="write the predictions (before measuring) and exit")
    ap.add_argument("--gpu", default="H200")
    ap.add_argument("--nvml-name", default="NVIDIA H200")
    a = ap.parse_args()
    if a.predict:
        FOLDER.mkdir(parents=True, exist_ok=True)
        PREDICTIONS.write_text(json.dumps(predictions(a.gpu, a.nvml_name), indent=1) + "\n")
        return 0
    return report()


if __name__ == "__main__":
    sys.exit(main())
