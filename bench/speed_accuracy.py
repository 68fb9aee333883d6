"""How well the fitted speed model predicts measured step times: in-sample and leave-one-architecture-out.

    python bench/speed_accuracy.py [--calib DIR] [--worst N]

Per GPU: runs, MAE, LOAO MAE (refit without the architecture, predict its runs), the worst LOAO error and the
share within 15% (the goal for plans the fit did not see). Then what bounds any model of these records: repeat
runs of one plan on one GPU, and the longer runs no fit saw (calibration/train). Then several GPUs.
Torch-free; needs numpy and scipy (the [test] extra).
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vramplan.calibrate import speed_multi_gpu as M  # noqa: E402
from vramplan.calibrate import speed_solve as S  # noqa: E402
from vramplan.memory import estimate  # noqa: E402
from vramplan.plan import TrainPlan  # noqa: E402
from vramplan.profiles import find_gpu, find_model  # noqa: E402
from vramplan.resources import data_dir  # noqa: E402
from vramplan.speed import predicted_step_seconds  # noqa: E402
from vramplan.speed_fits import shipped_speed_params  # noqa: E402
from vramplan.store.calibrations import Calibrations  # noqa: E402


def per_gpu_table(rows: list[dict], worst: int) -> None:
    """Per GPU, solved as the shipped fits are (the GPUs of one architecture together): the step time's and
    tokens/s' errors, in sample and leave-one-architecture-out."""
    print(f"{'GPU':24s} {'runs':>5s} {'archs':>5s} {'':10s} {'MAE':>7s} {'LOAO MAE':>9s} {'worst':>8s} "
          f"{'within 15%':>11s}")
    details = []
    for group in S.by_architecture(rows).values():
        params, held_rows = S.solve_group(group), S.loao_rows(group)
        for name, rs in sorted(S.by_gpu(group).items()):
            own_held = [e for e in held_rows if e["gpu_name"] == name]
            for label, key in (("step time", "error_pct"), ("tokens/s", "tokens_error_pct")):
                fitted = S.summarize(S.error_rows(rs, params), key)
                held = S.summarize(own_held, key)
                print(f"{name:24s} {len(rs):5d} {len({r['model'] for r in rs}):5d} {label:10s} "
                      f"{fitted['mae_pct']:6.1f}% {held['mae_pct']:8.1f}% {held['worst_pct']:+7.1f}% "
                      f"{held['within_pct']:10.0f}%")
            details.append((name, own_held))
    for name, held_rows in details:
        print(f"\n{name}: worst LOAO predictions (tokens/s error)")
        for r in sorted(held_rows, key=lambda r: -abs(r["tokens_error_pct"]))[:worst]:
            print(f"  {r['tokens_error_pct']:+6.1f}%  {r['model']:16s} {r['why'][:46]:46s} measured {r['measured_s']:.3f} s, "
                  f"predicted {r['predicted_s']:.3f} s")


def repeat_noise(rows: list[dict]) -> None:
    """Runs of the same plan on the same GPU: how far each lies from their mean (the floor under any fit)."""
    groups: dict = {}
    for r in rows:
        key = (r["gpu_name"], r["model"], json.dumps(r["plan"].to_dict(), sort_keys=True))
        groups.setdefault(key, []).append(r["measured_s"])
    devs = [100 * abs(t - statistics.fmean(ts)) / statistics.fmean(ts) for ts in groups.values() if len(ts) > 1
            for t in ts]
    spread = [100 * (max(ts) - min(ts)) / min(ts) for ts in groups.values() if len(ts) > 1]
    if devs:
        print(f"\nrepeat runs: {len(spread)} plans measured more than once; each run lies {statistics.fmean(devs):.1f}% "
              f"from their mean on average; the slower of a pair is up to {max(spread):.0f}% slower")


def longer_runs() -> None:
    """calibration/train: plans no fit saw (gradient accumulation 4-8, 8,192 tokens per micro-batch)."""
    folder = data_dir("calibration") / "train"
    cal = Calibrations.package()
    print("\nlonger runs no fit saw (calibration/train):")
    print(f"  {'GPU':10s} {'model':14s} {'plan':34s} {'measured':>9s} {'predicted':>9s} {'tokens/s error':>7s}")
    for path, kind in ((folder / "comparison.jsonl", "steps"), (folder / "train_runs.jsonl", "train")):
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            r = json.loads(line)
            plan = TrainPlan.from_dict(r["plan"])
            if plan.gpus > 1:
                continue  # the multi-GPU table below has these layouts
            gpu = find_gpu(r["gpu"]["name"] if isinstance(r["gpu"], dict) else r["gpu"])
            model = find_model(r["model"])
            pred = predicted_step_seconds(model, gpu, plan, estimate(model, gpu, plan, cal.params(gpu)),
                                          shipped_speed_params(gpu))
            if kind == "steps":
                measured, note = r["step_time_s"], "step_time_s"
            else:  # a whole `vramplan train` run: wall seconds over its steps, the data pipeline included
                measured, note = r["seconds"] / r["steps"], f"train: {r['steps']} steps, wall"
            desc = f"b{plan.batch}x{plan.seq} ga{plan.grad_accum} ckpt {'on' if plan.gradient_checkpointing else 'off'} {plan.optim}"
            print(f"  {gpu.name:10s} {model.name:14s} {desc:34s} {measured:8.3f}s {pred:8.3f}s "
                  f"{100 * (measured / pred - 1):+6.1f}%  ({note})")


def validation_sets(rows: list[dict], folder: Path) -> None:
    """Each set of folder whose step times were predicted (and committed, validation*.json) before it ran."""
    for path in sorted(folder.glob("validation*.json")):
        validation_set(rows, folder, path)


def validation_set(rows: list[dict], folder: Path, path: Path) -> None:
    """Measured tokens/s against the prediction made before the runs, and against the current fit with the run's
    architecture held out (refit without it); nothing while none of its runs is measured."""
    predicted = json.loads(path.read_text())
    runs = {r["run_key"]: r for r in rows if r["source"] == folder.name and r["run_key"] in predicted}
    if not runs:
        return
    hopper = [r for r in rows if r["profile"].architecture == "hopper"]
    held = {e["run_key"]: e for e in S.loao_rows(hopper) if e["source"] == folder.name}
    print(f"\n{folder.name}: {len(runs)} runs predicted before they were measured ({path.name}); tokens/s error "
          f"= predicted / measured tokens/s - 1 (positive: the prediction too fast)")
    print(f"  {'model':18s} {'plan':44s} {'measured':>9s} {'before':>8s} {'held out':>9s}")
    before, after = [], []
    for key, r in sorted(runs.items(), key=lambda kv: (kv[1]["model"], kv[1]["why"])):
        t = r["plan"].tokens * r["plan"].grad_accum
        b = 100 * (r["measured_s"] / predicted[key]["step_s"] - 1)
        h = held[key]["tokens_error_pct"]
        before.append(b)
        after.append(h)
        print(f"  {r['model']:18s} {r['why'][:44]:44s} {t / r['measured_s']:8,.0f}/s {b:+7.1f}% {h:+8.1f}%")
    for label, e in (("predicted before measuring", before), ("held out by architecture, current fit", after)):
        print(f"  {label}: MAE {statistics.fmean(abs(x) for x in e):.1f}%, worst {max(e, key=abs):+.1f}%, "
              f"within 15%: {100 * sum(abs(x) <= 15 for x in e) / len(e):.0f}%")


def multi_gpu(rows: list[dict]) -> None:
    multi = S.by_gpu(M.multi_gpu_rows())
    for name, ms in multi.items():
        own = [r for r in rows if r["gpu_name"] == name]
        if not own:
            continue
        params = S.solve([r for r in rows if r["profile"].architecture == own[0]["profile"].architecture], name)
        fitted = M.solve_multi_gpu(ms, params)
        from dataclasses import replace
        params = replace(params, **fitted)
        print(f"\nseveral GPUs on {name} ({len(ms)} runs; fsdp_unit_s {fitted.get('fsdp_unit_s', 0) * 1e3:.2f} ms, "
              f"ddp_step_s {fitted.get('ddp_step_s', 0):.3f} s):")
        for kind in ("fsdp", "ddp"):
            errs = [e for e in M.multi_gpu_errors(ms, params) if e["parallel"] == kind]
            held = [e for e in M.multi_gpu_loao(ms, params) if e["parallel"] == kind]
            if errs:
                a, b = S.summarize(errs), S.summarize(held)
                print(f"  {kind}: {a['n']} runs, MAE {a['mae_pct']:.1f}%, LOAO MAE {b['mae_pct']:.1f}% "
                      f"(worst {b['worst_pct']:+.1f}%, within 15%: {b['within_pct']:.0f}%)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calib", type=Path, default=None)
    ap.add_argument("--worst", type=int, default=5)
    args = ap.parse_args()
    rows = S.with_features(S.speed_rows(args.calib))
    print("speed model against measured step times (the median step after the first; one GPU; TRL and plain Trainer; "
          "no evaluation runs)\n")
    per_gpu_table(rows, args.worst)
    repeat_noise(rows)
    validation_sets(rows, (args.calib or data_dir("calibration")) / "speed_runs")
    longer_runs()
    multi_gpu(rows)


if __name__ == "__main__":
    main()
