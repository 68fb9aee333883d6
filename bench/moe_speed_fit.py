"""Fits the routed experts' step time (vramplan/speed_experts.py) to the measured MoE runs (calibration/moe) and
writes calibration/moe/speed_fit.json:

    python bench/moe_speed_fit.py [--records calibration/moe] [--check]

Each run's measured step time less the dense speed model's prediction (vramplan.speed without the experts) is
fitted by least squares to the three expert features (all measured families' runs); the error is reported in
sample and leaving one family out (each family predicted by the coefficients fitted on the others; the pooled
figure over the families profiles/moe_families.json answers). --check prints without writing.
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from moe_accuracy import listed_families, load  # noqa: E402
from moe_cache_fit import solve  # noqa: E402
from moe_runs import shape_arch  # noqa: E402
from vramplan.calibrate.stack_accuracy import PROFILE_OF, record_plan  # noqa: E402
from vramplan.planner import Planner  # noqa: E402
from vramplan.profiles import find_gpu  # noqa: E402
from vramplan.speed import predicted_step_seconds  # noqa: E402
from vramplan.speed_fits import shipped_speed_params  # noqa: E402
from vramplan.speed_experts import FEATURES, expert_features, expert_seconds  # noqa: E402
from vramplan.store.calibrations import Calibrations  # noqa: E402

OUT = ROOT / "calibration" / "moe" / "speed_fit.json"


def samples(records: list[dict]) -> list[dict]:
    """Each measured run: its family, features per step, what the experts took (measured less dense) and the step."""
    out = []
    for r in records:
        if r.get("status") != "ok" or not r.get("step_time_s"):
            continue
        model, plan, gpu = shape_arch(r["model"]), record_plan(r), find_gpu(PROFILE_OF[r["gpu"]["name"]])
        b = Planner(gpu, Calibrations.package()).estimate(model, plan)
        ga = plan.grad_accum
        dense = predicted_step_seconds(model, gpu, plan, b, shipped_speed_params(gpu)) \
            - ga * expert_seconds(model, gpu, plan)
        out.append({"family": model.model_type, "model": r["model"], "why": r.get("why", ""),
                    "x": [ga * f for f in expert_features(model, gpu, plan)], "dense": dense,
                    "measured": r["step_time_s"], "gpu": r["gpu"]["name"]})
    return out


def fit(rows: list[dict]) -> list[float]:
    c = solve([[x * (1e-6 if i == 2 else 1) for i, x in enumerate(s["x"])] for s in rows],
              [s["measured"] - s["dense"] for s in rows])
    return [c[0], c[1], c[2]]


def predicted(s: dict, c: list[float]) -> float:
    return s["dense"] + c[0] * s["x"][0] + c[1] * s["x"][1] + c[2] * s["x"][2] * 1e-6


def mae(rows: list[dict], c) -> float:
    return sum(abs(predicted(s, c) / s["measured"] - 1) for s in rows) / len(rows) * 100


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", default=str(ROOT / "calibration" / "moe"))
    ap.add_argument("--check", action="store_true", help="print the fit without writing it")
    args = ap.parse_args()
    rows = samples(load(Path(args.records)))
    c = fit(rows)
    lofo = []
    for fam in sorted({s["family"] for s in rows}):
        held = [s for s in rows if s["family"] == fam]
        cf = fit([s for s in rows if s["family"] != fam])
        if fam in listed_families():  # the figure the output prints is of the families it answers
            lofo += [predicted(s, cf) / s["measured"] - 1 for s in held]
        print(f"{fam}: left out, MAE {mae(held, cf):.1f}% over {len(held)} runs")
    for s in rows:
        print(f"  {s['model']:24s} {s['why'][:44]:44s} measured {s['measured']:.3f} s, predicted "
              f"{predicted(s, c):.3f} s ({(predicted(s, c) / s['measured'] - 1) * 100:+.1f}%)")
    result = {"coefficients": dict(zip(FEATURES, (round(v, 6) for v in c))), "gpu": rows[0]["gpu"],
              "runs": len(rows), "mae_pct": round(mae(rows, c), 1),
              "lofo_mae_pct": round(sum(map(abs, lofo)) / len(lofo) * 100, 1),
              "lofo_worst_pct": round(max(lofo, key=abs) * 100, 1),
              "source": "python bench/moe_speed_fit.py over calibration/moe/*.jsonl"}
    print(json.dumps(result, indent=1))
    if not args.check:
        OUT.write_text(json.dumps(result, indent=1) + "\n")
        print(f"written {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
