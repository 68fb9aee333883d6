"""Fits each Mixture-of-Experts family's allocator cache (profiles/moe_families.json "allocator_cache") to its
measured runs (calibration/moe, bench/moe_runs.py):

    python bench/moe_cache_fit.py [--records calibration/moe]

For every run, what the caching allocator held beyond the model's allocated peak is the measured training peak
less the prediction without the cache. Per family that is fitted, by least squares with coefficients >= 0, to
three sizes of the family's own tensors: one layer's gate_up_proj in 16 bits, every layer's down_proj in 16 bits,
and one W' of gate_up_proj when the experts carry LoRA; a size the runs do not vary (one depth measured, no
expert LoRA) is left out. Prints the coefficients as profiles/moe_families.json holds them, each run's error, and
each run's error left out of its own family's fit (the out-of-sample check of the in-sample gate).
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from moe_accuracy import load, rows  # noqa: E402
from moe_runs import shape_arch  # noqa: E402
from vramplan.calibrate.stack_accuracy import record_plan  # noqa: E402
from vramplan.memory.experts import allocator_cache_bytes, allocator_cache_sizes  # noqa: E402
from vramplan.units import GiB  # noqa: E402

NAMES = ("gate_up_16bit", "down_16bit_per_layer", "lora_gate_up_copy")


def solve(xs: list[list[float]], ys: list[float]) -> list[float]:
    """Least squares by the normal equations (at most three columns), Gaussian elimination."""
    n = len(xs[0])
    a = [[sum(x[i] * x[j] for x in xs) for j in range(n)] + [sum(x[i] * y for x, y in zip(xs, ys))]
         for i in range(n)]
    for i in range(n):
        p = max(range(i, n), key=lambda r: abs(a[r][i]))
        a[i], a[p] = a[p], a[i]
        for r in range(n):
            if r != i:
                f = a[r][i] / a[i][i]
                a[r] = [v - f * w for v, w in zip(a[r], a[i])]
    return [a[i][n] / a[i][i] for i in range(n)]


def fit(xs: list[list[float]], ys: list[float]) -> list[float]:
    """Non-negative least squares over the columns the runs vary: a negative coefficient's column is dropped."""
    cols = [j for j in range(3) if len({x[j] for x in xs}) > 1 or (j == 0 and any(x[0] for x in xs))]
    while True:
        c = solve([[x[j] for j in cols] for x in xs], ys) if cols else []
        neg = [j for j, v in zip(cols, c) if v < 0]
        if not neg:
            out = [0.0] * 3
            for j, v in zip(cols, c):
                out[j] = v
            return out
        cols.remove(neg[0])


def runs_by_family(records: list[dict]) -> dict[str, list]:
    """Per family, each measured run's (sizes, bytes beyond the allocated peak, its accuracy row)."""
    by_key = {r["run_key"]: r for r in records}
    families: dict[str, list] = {}
    for row in rows(records):
        if row["status"] != "ok":
            continue
        r = by_key[row["key"]]
        model, plan = shape_arch(r["model"]), record_plan(r)
        beyond = row["train_measured"] - (row["train_predicted"] - allocator_cache_bytes(model, plan))
        families.setdefault(model.model_type, []).append((list(allocator_cache_sizes(model, plan)), beyond, row))
    return families


def fitted(records: list[dict]) -> dict[str, dict[str, float]]:
    """Each family's coefficients, rounded as profiles/moe_families.json holds them."""
    return {family: {n: round(v, 3) for n, v in zip(NAMES, fit([x for x, _, _ in runs], [y for _, y, _ in runs]))}
            for family, runs in sorted(runs_by_family(records).items())}


def left_out(runs: list) -> list[float]:
    """Each run's error (% of its peak) with the coefficients fitted on the family's other runs."""
    out = []
    for i, (x, y, row) in enumerate(runs):
        rest = runs[:i] + runs[i + 1:]
        c = fit([r[0] for r in rest], [r[1] for r in rest]) if rest else [0.0] * 3
        out.append((sum(a * b for a, b in zip(x, c)) - y) / row["train_measured"] * 100)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", default=str(ROOT / "calibration" / "moe"))
    records = load(Path(ap.parse_args().records))
    coefficients = fitted(records)
    for family, runs in runs_by_family(records).items():
        c = [coefficients[family][n] for n in NAMES]
        print(f"{family}: {json.dumps(coefficients[family])}")
        loo = left_out(runs)
        for (x, y, row), held in zip(runs, loo):
            got = sum(a * b for a, b in zip(x, c))
            print(f"  {row['model']:24s} {row['why'][:44]:44s} {row['trainer']:3s} beyond the allocated peak "
                  f"{y / GiB:5.2f} GiB, fitted {got / GiB:5.2f}: {(got - y) / row['train_measured'] * 100:+.1f}% "
                  f"of the peak; left out of the fit {held:+.1f}%")
        print(f"  left out, one run at a time: MAE {sum(map(abs, loo)) / len(loo):.1f}%, "
              f"{min(loo):+.1f}..{max(loo):+.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
