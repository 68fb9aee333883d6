"""What the host adds to the speed model's error: the launch cost per device call, the spread of steps within a
run, and what the NVML poller costs.

    python bench/speed_hosts.py

Runs are grouped into device calls by their timestamps (a gap of more than 20 minutes starts a new one; each call
may land on another host). For each call, the host factor `vramplan calibrate` fits (vramplan.calibrate.speed_host: one factor on
the shipped fit's per-launch, per-micro-batch and per-step costs) is fitted on that call's runs alone, and the
launch cost it gives: how far the hosts lie apart. Then, for the runs of
calibration/speed_runs (14 steps), the coefficient of variation of their steady steps, by how launch-bound they
are, and the pairs run with and without the poller. Torch-free; needs numpy and scipy (the [test] extra).
"""
import statistics
import sys
from datetime import datetime
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vramplan.calibrate import speed_solve as S  # noqa: E402
from vramplan.calibrate.records import load_runs  # noqa: E402
from vramplan.resources import data_dir  # noqa: E402
from vramplan.calibrate.speed_host import host_factor  # noqa: E402
from vramplan.speed_fits import shipped_speed_params  # noqa: E402

GAP_S = 1200


def records_by_key() -> dict:
    out = {}
    for source in S.SOURCES:
        for path in (data_dir("calibration") / source).glob("*.jsonl"):
            for r in load_runs(path):
                out[(source, r.get("run_key"))] = r
    return out


def device_calls(rows: list[dict], records: dict) -> list[list[dict]]:
    """rows split where their records' timestamps are more than GAP_S apart."""
    stamped = sorted(rows, key=lambda r: records[(r["source"], r["run_key"])]["timestamp"][:19])
    calls, last = [], None
    for r in stamped:
        t = datetime.fromisoformat(records[(r["source"], r["run_key"])]["timestamp"][:19])
        if last is None or (t - last).total_seconds() > GAP_S:
            calls.append([])
        calls[-1].append(r)
        last = t
    return calls


def calibrated_hosts(rows: list[dict], records: dict) -> None:
    """What `vramplan calibrate` buys on a machine: each architecture held out of the rates (refit without it,
    as LOAO) and of its device call's host factor (fitted on the call's other architectures), against LOAO alone."""
    from vramplan.speed_fits import host_scaled
    print("\ntokens/s held out by architecture, without and with a host factor fitted on the same device call's "
          "other architectures (what `vramplan calibrate` fits on your machine):")
    for group in S.by_architecture(rows).values():
        plain: dict[str, list[float]] = {}
        hosted: dict[str, list[float]] = {}
        calls = [c for _, rs in sorted(S.by_gpu(group).items()) for c in device_calls(rs, records)]
        for arch in sorted({r["model"] for r in group}):
            params = S.solve_group([r for r in group if r["model"] != arch])
            for call in calls:
                test = [r for r in call if r["model"] == arch]
                rest = [r for r in call if r["model"] != arch]
                if not test or len(rest) < 3:
                    continue
                name = test[0]["gpu_name"]
                plain.setdefault(name, []).extend(e["tokens_error_pct"] for e in S.error_rows(test, params[name]))
                scaled = host_scaled(params[name], host_factor(rest, params[name]))
                hosted.setdefault(name, []).extend(e["tokens_error_pct"] for e in S.error_rows(test, scaled))
        for name in sorted(plain):
            a, b = plain[name], hosted[name]
            print(f"  {name}: {len(a)} runs, MAE {statistics.fmean(map(abs, a)):.1f}% without, "
                  f"{statistics.fmean(map(abs, b)):.1f}% with (worst {max(b, key=abs):+.1f}%, within 15%: "
                  f"{100 * sum(abs(x) <= 15 for x in b) / len(b):.0f}%)")


def main() -> None:
    from vramplan.profiles import find_gpu
    rows = S.with_features(S.speed_rows())
    records = records_by_key()
    for name, rs in sorted(S.by_gpu(rows).items()):
        base = shipped_speed_params(find_gpu(name))
        print(f"{name}: shipped launch cost {base.kernel_s * 1e6:.1f} us")
        for call in device_calls(rs, records):
            first = records[(call[0]["source"], call[0]["run_key"])]["timestamp"][:16]
            factor = host_factor(call, base)
            print(f"  call from {first}: {len(call):3d} runs, host factor {factor:.2f}, launch cost "
                  f"{base.kernel_s * factor * 1e6:5.1f} us ({', '.join(sorted({r['source'] for r in call}))})")
    calibrated_hosts(rows, records)
    print("\ncalibration/speed_runs: steady steps' coefficient of variation (sd / mean), by step time")
    spread = []
    for path in sorted((data_dir("calibration") / "speed_runs").glob("*.jsonl")):
        for r in load_runs(path):
            if r.get("status") != "ok":
                continue
            warm = max(1, r.get("nvml_polled_steps") or 0)
            steps = [s["time_s"] for s in r["torch"]["steps"][warm:]]
            spread.append((statistics.median(steps), statistics.stdev(steps) / statistics.fmean(steps), r))
    polled = max(r.get("nvml_polled_steps") or 0 for _, _, r in spread)
    for label, keep in (("under 1 s a step", lambda t: t < 1.0), ("1 s or more", lambda t: t >= 1.0)):
        cvs = [100 * cv for t, cv, _ in spread if keep(t)]
        if cvs:
            print(f"  {label}: {len(cvs)} runs, {min(cvs):.0f}-{max(cvs):.0f}% (median {statistics.median(cvs):.0f}%)")
    print("\nthe NVML poller (same plan, polled throughout against polled for the first steps only):")
    by_plan: dict = {}
    for _, _, r in spread:  # both over the same steps: those after the other run's polled ones
        t = statistics.median(s["time_s"] for s in r["torch"]["steps"][polled:])
        by_plan.setdefault((r["model"], r["why"].replace(", NVML polled throughout", "")), {})[
            "throughout" if "polled throughout" in r["why"] else "first"] = t
    for (model, why), pair in sorted(by_plan.items()):
        if len(pair) == 2:
            print(f"  {model} {why}: {pair['first']:.3f} s against {pair['throughout']:.3f} s polled throughout "
                  f"({100 * (pair['throughout'] / pair['first'] - 1):+.1f}%)")


if __name__ == "__main__":
    main()
