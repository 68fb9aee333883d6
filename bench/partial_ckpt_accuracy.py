"""Partial (every_n_layers) and offloaded checkpointing against their H200 runs (calibration/partial_ckpt/): the
NVML peak and the step time (median step after the first), as predicted before each run, by the model now (whose
speed fit includes these runs: in sample) and by the speed fit refitted without the run's architecture (held out),
and the gate each mode's memory error has to meet (profiles/checkpointing_modes.json). README-ready tables:

    python bench/partial_ckpt_accuracy.py

Torch-free (vramplan.calibrate.partial_ckpt_accuracy; the held-out column needs numpy and scipy).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vramplan.calibrate import partial_ckpt_accuracy as A  # noqa: E402
from vramplan.profiles.checkpointing import measured_checkpointing_modes  # noqa: E402


def add_held_out(rows: list[dict]) -> None:
    """Each run's step time by the speed fit refitted (as the shipped one, with the other Hopper GPUs' runs)
    without any run of its architecture (numpy and scipy)."""
    from vramplan.calibrate import speed_solve as S
    from vramplan.planner import Planner
    from vramplan.profiles import find_gpu, find_model
    from vramplan.speed import predicted_step_seconds
    from vramplan.store.calibrations import Calibrations
    fit_rows = [r for r in S.with_features(S.speed_rows()) if r["profile"].architecture == "hopper"]
    gpu = find_gpu("H200")
    planner = Planner(gpu, Calibrations.package())
    for arch in {r["model"] for r in rows}:
        params = S.solve([r for r in fit_rows if r["model"] != arch], "NVIDIA H200")
        model = find_model(arch)
        for r in rows:
            if r["model"] == arch:
                r["held_s"] = predicted_step_seconds(model, gpu, r["plan"], planner.estimate(model, r["plan"]), params)


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f}"


def table(rows: list[dict]) -> None:
    print("| model | run | layers ckpt | measured GiB | predicted before | error | now | error "
          "| measured s/step | predicted before | error | now | error | held out | error |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        run = r["why"].replace("partial ckpt: ", "") + (" (validation)" if r["validation"] else "")
        print(f"| {r['model']} | {run} | {r['layers_measured']} ({r['layers_predicted']} predicted) "
              f"| {_gib(r['measured_bytes'])} | {_gib(r['before_bytes'])} "
              f"| {A.error_pct(r, 'before_bytes', 'measured_bytes'):+.1f}% | {_gib(r['now_bytes'])} "
              f"| {A.error_pct(r, 'now_bytes', 'measured_bytes'):+.1f}% | {r['measured_s']:.3f} | {r['before_s']:.3f} "
              f"| {A.error_pct(r, 'before_s', 'measured_s'):+.1f}% | {r['now_s']:.3f} "
              f"| {A.error_pct(r, 'now_s', 'measured_s'):+.1f}% | {r['held_s']:.3f} "
              f"| {A.error_pct(r, 'held_s', 'measured_s'):+.1f}% |")


def summaries(rows: list[dict]) -> None:
    listed = measured_checkpointing_modes()
    print(f"\ngate: a mode is listed when its runs' peaks, as predicted before them, have MAE <= {A.GATE_MAE_PCT:g}% "
          f"and every run within {A.GATE_UNDER_PCT:+g}..{A.GATE_OVER_PCT:+g}%\n")
    print("| mode | runs | archs | peak before: MAE, range | peak now: MAE, range | step before: MAE, range "
          "| step now: MAE, range | step held out: MAE, range | meets the gate | listed |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for mode in ("partial", "offload", "none"):
        s = A.mode_summary(rows, mode)
        if not s["runs"]:
            continue
        cells = []
        for key, measured in (("before_bytes", "measured_bytes"), ("now_bytes", "measured_bytes"),
                              ("before_s", "measured_s"), ("now_s", "measured_s"), ("held_s", "measured_s")):
            e = A.mode_summary(rows, mode, key, measured)
            cells.append(f"{e['mae_pct']:.1f}%, {e['min_pct']:+.1f}..{e['max_pct']:+.1f}%")
        name = {"partial": "every_n_layers > 1", "offload": "offloaded", "none": "full or none (baselines)"}[mode]
        gate = ("yes" if A.within_gate(s) else "no") if mode != "none" else "-"
        print(f"| {name} | {s['runs']} | {s['archs']} | " + " | ".join(cells)
              + f" | {gate} | {'yes' if mode in listed else ('-' if mode == 'none' else 'no')} |")


def main() -> int:
    rows = A.accuracy_rows()
    add_held_out(rows)
    print(f"{len(rows)} runs on NVIDIA H200 (TRL 1.16 SFTTrainer, and the plain Trainer: 'hf'); 'before': each record's prediction, made "
          "before the run (the validation runs' committed in calibration/partial_ckpt/validation.json); 'now': in "
          "sample (the speed fit includes these runs); 'held out': the speed fit without the run's architecture\n")
    table(rows)
    summaries(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
