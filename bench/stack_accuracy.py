"""The stack model against its measured runs: per stack and release, the training footprint and the whole-run
peak (evaluation included), and the validation set against the predictions committed before it was measured.

    python bench/stack_accuracy.py
"""
import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vramplan.calibrate.stack_accuracy import accuracy_rows, error_pct, slack_medians  # noqa: E402
from vramplan.units import GiB  # noqa: E402


def table(rows) -> None:
    groups = defaultdict(list)
    for r in rows:
        groups[(r["trainer"], r["loss_path"])].append(r)
    print("| stack | loss path | releases | runs | archs | training footprint: MAE, range | whole run (eval): range |")
    print("|---|---|---|---|---|---|---|")
    for (trainer, path), rs in sorted(groups.items()):
        errs = [error_pct(r["train_predicted"], r["train_measured"]) for r in rs]
        whole = [error_pct(r["whole_predicted"], r["whole_measured"]) for r in rs if r["eval_batch"]]
        releases = sorted({r["release"] for r in rs if r["release"]}, key=lambda v: tuple(map(int, v.split("."))))
        print(f"| {'TRL SFTTrainer' if trainer == 'trl' else 'transformers Trainer'} | {path} | "
              f"{', '.join(releases) or '-'} | {len(rs)} | {len({r['model'] for r in rs})} | "
              f"{sum(map(abs, errs)) / len(errs):.1f}%, {min(errs):+.1f}..{max(errs):+.1f}% | "
              + (f"{min(whole):+.1f}..{max(whole):+.1f}% ({len(whole)} runs)" if whole else "-") + " |")
    errs = [error_pct(r["train_predicted"], r["train_measured"]) for r in rows]
    print(f"\nall {len(rows)} runs: training footprint MAE {sum(map(abs, errs)) / len(errs):.1f}%, "
          f"{min(errs):+.1f}..{max(errs):+.1f}%")


def validation(rows, name: str) -> None:
    predicted = json.loads((ROOT / "calibration" / "stacks" / name).read_text())
    by_key = {r["run_key"]: r for r in rows}
    print(f"\nvalidation set (predicted before measuring, calibration/stacks/{name}):\n")
    print("| model | run | predicted GiB | measured GiB | error | phase |")
    print("|---|---|---|---|---|---|")
    for key, p in predicted.items():
        r = by_key.get(key)
        measured = f"{r['whole_measured'] / GiB:.2f}" if r else "not measured"
        err = f"{error_pct(p['peak_bytes'], r['whole_measured']):+.1f}%" if r else "-"
        print(f"| {p['model']} | {p['why'].split(': ', 1)[-1]} | {p['peak_bytes'] / GiB:.2f} | {measured} | "
              f"{err} | {p['peak_phase']} |")


def main() -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    rows = accuracy_rows()
    table(rows)
    print("\nallocator slack (reserved - allocated), median per loss path of the runs without evaluation: "
          + ", ".join(f"{path} {v / 2**20:.0f} MiB" for path, v in slack_medians().items()))
    for path in sorted((ROOT / "calibration" / "stacks").glob("validation*.json")):
        validation(rows, path.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
