"""Accuracy of predicted peak_bytes against the measured NVML peak, recomputed from calibration/.

    python bench/accuracy.py            # print the table
    python bench/accuracy.py --write    # also draw docs/accuracy.png and refresh the README section

Per GPU: in-sample error of the fitted model and leave-one-architecture-out (LOAO) error; the allocator-level
error; the fits verdicts of the allocator-capped boundary runs.
"""
import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from vramplan.calibrate.frame import load_frame  # noqa: E402
from vramplan.calibrate.records import load_runs  # noqa: E402
from vramplan.calibrate.solve import (evaluate, loao, multi_gpu_loao, multi_gpu_rank_rows, solve_gpu,  # noqa: E402
                                      summarize, verdicts)
from vramplan.calibrate.validation import validation_rows  # noqa: E402
from vramplan.memory.calibration import Calibration  # noqa: E402
from vramplan.profiles import find_gpu  # noqa: E402
from vramplan.store.calibrations import calibration_for  # noqa: E402
from vramplan.units import GiB

START, END = "<!-- accuracy:start -->", "<!-- accuracy:end -->"


def compute():
    """Per GPU, from the records read once into a DataFrame: the in-sample and LOAO accuracy rows, the allocator
    error, the boundary verdicts."""
    frame = load_frame(ROOT / "calibration")
    all_capped = frame[frame["capped"]]
    out = []
    for slug, runs in frame.groupby("slug", sort=True):
        gpu = find_gpu(runs["gpu"].iloc[0])
        fit = solve_gpu(runs, all_capped)
        params = Calibration(**fit["params"])
        rows, held = evaluate(runs, gpu, params), loao(runs, gpu)
        alloc = 100 * (rows["predicted_allocated"] - rows["measured_allocated"]) / rows["measured_allocated"]
        out.append({"gpu": fit["gpu_name"], "runs": len(rows), "archs": len(fit["architectures"]),
                    "in": summarize(rows), "loao": summarize(held), "rows": rows, "held": held,
                    "alloc_mae": float(alloc.abs().mean()), "alloc_worst": float(alloc[alloc.abs().idxmax()]),
                    "verdicts": verdicts(runs[runs["capped"]], params)})
    return out


def per_architecture(results) -> str:
    """Leave-one-architecture-out error of each architecture, per GPU."""
    held = pd.concat([r["held"].assign(gpu=r["gpu"]) for r in results], ignore_index=True)
    table = held.groupby(["gpu", "model"])["error_pct"].agg(
        runs="count", mae=lambda e: e.abs().mean(), worst_under="min", worst_over="max")
    lines = ["| GPU | architecture | runs | LOAO MAE | worst under | worst over |", "|---|---|---|---|---|---|"]
    lines += [f"| {gpu} | {model} | {int(t.runs)} | {t.mae:.2f}% | {t.worst_under:+.1f}% | {t.worst_over:+.1f}% |"
              for (gpu, model), t in table.iterrows()]
    return "\n".join(lines)


def table(results) -> str:
    lines = ["| GPU | runs | archs | MAE | LOAO MAE | LOAO worst under | LOAO worst over | allocator MAE | "
             "boundary verdicts right |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        v = r["verdicts"]
        lines.append(f"| {r['gpu']} | {r['runs']} | {r['archs']} | {r['in']['mae_pct']:.2f}% | "
                     f"{r['loao']['mae_pct']:.2f}% | {r['loao']['worst_under_pct']:.1f}% | "
                     f"{r['loao']['worst_over_pct']:.1f}% | {r['alloc_mae']:.2f}% | "
                     f"{sum(c['right'] for c in v)}/{len(v)} |" if v else
                     f"| {r['gpu']} | {r['runs']} | {r['archs']} | {r['in']['mae_pct']:.2f}% | "
                     f"{r['loao']['mae_pct']:.2f}% | {r['loao']['worst_under_pct']:.1f}% | "
                     f"{r['loao']['worst_over_pct']:.1f}% | {r['alloc_mae']:.2f}% | - |")
    worst = [h for r in results for h in r["held"].to_dict("records") if h["error_pct"] < -5]
    if worst:
        lines.append("")
        lines.append("LOAO under-predictions worse than -5%: " + "; ".join(
            f"{h['model']} {h['why']} ({h['error_pct']:.1f}%)" for h in sorted(worst, key=lambda h: h['error_pct'])))
    return "\n".join(lines)


def multi_gpu_summary() -> str:
    """Per-rank accuracy of the multi-GPU runs in calibration/multi_gpu, per kind (parallelism, offload,
    allocator): in-sample (nccl_bytes and the FSDP parameters are fitted on these runs) and leave-one-architecture-
    out; then the validation set, against the predictions written before it was measured."""
    lines = []
    for path in sorted((ROOT / "calibration" / "multi_gpu").glob("*.jsonl")):
        records = load_runs(path)
        gpu = find_gpu(records[0]["ranks"][0]["gpu"]["name"])
        params = calibration_for(gpu)
        all_rows, all_held = multi_gpu_rank_rows(records, gpu, params), multi_gpu_loao(records, gpu, params)
        lines += ["| layout | runs | ranks | architectures | MAE | range | LOAO MAE | LOAO range | allocated |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for kind, rows in all_rows.groupby("kind", sort=True):
            s, h = summarize(rows), summarize(all_held[all_held["kind"] == kind])
            alloc = 100 * (rows["predicted_allocated"] - rows["measured_allocated"]) / rows["measured_allocated"]
            lines.append(f"| {kind} ({gpu.name}) | {rows['run_key'].nunique()} | {len(rows)} | "
                         f"{rows['model'].nunique()} | {s['mae_pct']:.1f}% | "
                         f"{s['worst_under_pct']:+.1f}..{s['worst_over_pct']:+.1f}% | {h['mae_pct']:.1f}% | "
                         f"{h['worst_under_pct']:+.1f}..{h['worst_over_pct']:+.1f}% | "
                         f"{alloc.min():+.1f}..{alloc.max():+.1f}% |")
        events = all_rows[all_rows["fragmentation_event"]]
        if len(events):
            bound = all_rows.loc[all_rows["kind"].str.endswith("-default"), "error_vs_bound_pct"]
            lines += ["", f"Default allocator: {len(events)} ranks of {events['run_key'].nunique()} runs "
                          f"({', '.join(sorted(set(events['why'] + ' ' + events['model'])))}) had the re-split "
                          f"event; against peak_upper_bytes for those and peak_bytes for the rest, every default-"
                          f"allocator rank is within {bound.min():+.1f}..{bound.max():+.1f}%"]
        for spec in sorted((ROOT / "calibration" / "multi_gpu").glob("validation*.json")):
            lines += ["", *validation_lines(records, spec)]
    return "\n".join(lines)


def validation_lines(records: list[dict], path: Path) -> list[str]:
    """A validation set's per-rank peaks against the predictions written before it was measured."""
    spec = json.loads(path.read_text())
    lines = [f"Validation (predicted at commit {spec['model_commit'][:7]} before measuring; `{path.relative_to(ROOT)}`):",
             "", "| model | run | predicted | measured (per rank) | error |", "|---|---|---|---|---|"]
    errs = []
    for p in validation_rows(spec, records):
        peaks, e = p["measured"], p["errors_pct"]
        if not peaks:
            lines.append(f"| {p['model']} | {p['why']} | {p['predicted_peak_bytes'] / GiB:.2f} GiB | not measured | |")
            continue
        errs += e
        lines.append(f"| {p['model']} | {p['why'].removeprefix('validation: ')} | "
                     f"{p['predicted_peak_bytes'] / GiB:.2f} GiB | "
                     f"{' / '.join(f'{m / GiB:.2f}' for m in peaks)} GiB | {max(e, key=abs):+.1f}% |")
    if errs:
        lines += ["", f"Validation: {len(errs)} ranks, MAE {sum(map(abs, errs)) / len(errs):.1f}%, "
                      f"{min(errs):+.1f}..{max(errs):+.1f}%"]
    return lines


def plot(results, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 6.0), dpi=110)
    top = 0.0
    for i, (r, marker) in enumerate(zip(results, "os^D")):
        xs = list(r["held"]["measured"] / GiB)
        ys = list(r["held"]["predicted"] / GiB)
        top = max(top, *xs, *ys)
        # hollow markers after the first: GPUs with the same software measure the same peaks
        style = {"facecolors": "none", "edgecolors": f"C{i}", "s": 70} if i else {"alpha": 0.7}
        ax.scatter(xs, ys, marker=marker, label=f"{r['gpu']} ({len(xs)} runs)", **style)
    ax.plot([0, top * 1.05], [0, top * 1.05], "k-", lw=0.8, label="exact")
    ax.plot([0, top * 1.05], [0, top * 1.05 * 0.95], "r:", lw=0.8, label="-5%")
    ax.set_xlabel("measured NVML peak (GiB)")
    ax.set_ylabel("predicted peak_bytes, leave-one-architecture-out (GiB)")
    ax.set_title("vramplan: predicted vs measured QLoRA peak memory")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", action="store_true", help="draw docs/accuracy.png and refresh README.md")
    args = ap.parse_args()
    results = compute()
    text = table(results)
    print(text)
    print()
    print(per_architecture(results))
    print(multi_gpu_summary())
    if args.write:
        plot(results, ROOT / "docs" / "accuracy.png")
        readme = ROOT / "README.md"
        body = readme.read_text()
        block = f"{START}\n{text}\n\n![predicted vs measured](docs/accuracy.png)\n\n" \
                f"Generated by `python bench/accuracy.py --write` from calibration/.\n{END}"
        body = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, body, flags=re.S)
        readme.write_text(body)


if __name__ == "__main__":
    main()
