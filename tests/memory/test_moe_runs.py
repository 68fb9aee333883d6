"""bench/moe_runs.py (the GPU runs the MoE model is checked on) and bench/moe_accuracy.py, on CPU."""
import json
import sys
from pathlib import Path

import pytest

from tests.profiles.moe_gate import moe_gate_open  # noqa: F401  (the fixture)

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import moe_accuracy  # noqa: E402
import moe_runs  # noqa: E402


def test_the_set_covers_what_the_issue_asks():
    items = moe_runs.runs()
    assert len(items) >= 18
    shapes = {moe_runs.SHAPES[m.run.model].profile for m in items}
    assert len(shapes) >= 3
    assert sum(m.validation for m in items) >= 5
    assert any(m.run.trainer == "hf" for m in items) and sum(m.run.trainer == "trl" for m in items) > len(items) / 2
    assert any(m.run.cap_bytes == 24 * 2**30 for m in items)
    layers = {}
    for m in items:
        s = moe_runs.SHAPES[m.run.model]
        if s.weights_of is None:
            layers.setdefault((s.profile, m.run.why), set()).add(s.overrides["num_hidden_layers"])
    assert sum(len(v) >= 2 for v in layers.values()) >= 2  # per-layer slope pairs
    assert any("num_experts_per_tok" in moe_runs.SHAPES[m.run.model].overrides for m in items)
    assert len({m.run.key("NVIDIA H200") for m in items}) == len(items)


def test_config_only_shapes_keep_their_parents_layers():
    for name, s in moe_runs.SHAPES.items():
        if s.weights_of:
            parent = moe_runs.SHAPES[s.weights_of]
            assert parent.weights_of is None and parent.profile == s.profile
            assert s.overrides["num_hidden_layers"] == parent.overrides["num_hidden_layers"]


def test_every_run_is_predicted_and_uncapped_ones_fit_the_h200(moe_gate_open):
    items = moe_runs.runs()
    predicted = moe_runs.predict(items, "H200", "NVIDIA H200")
    assert len(predicted) == len(items)
    for m in items:
        p = predicted[m.run.key("NVIDIA H200")]
        assert p["peak_bytes"] > 0
        if not m.run.cap_bytes:
            assert p["fits"], m.run.why
    caps = [predicted[m.run.key("NVIDIA H200")]["fits"] for m in items if m.run.cap_bytes]
    assert True in caps and False in caps  # one cap run on each side of 24 GiB


def test_a_config_only_checkpoint_links_the_weights_and_overrides_the_config(tmp_path):
    parent = tmp_path / "parent"
    parent.mkdir()
    (parent / "model.safetensors").write_bytes(b"weights")
    (parent / "config.json").write_text(json.dumps({"num_experts_per_tok": 8, "hidden_size": 64}))
    moe_runs._config_only(parent, tmp_path / "child", {"num_experts_per_tok": 4})
    child = tmp_path / "child"
    assert (child / "model.safetensors").is_symlink() and (child / "model.safetensors").read_bytes() == b"weights"
    assert json.loads((child / "config.json").read_text()) == {"num_experts_per_tok": 4, "hidden_size": 64}


def test_the_clock_fits_overhead_and_seconds_per_gb():
    clock = moe_runs.Clock(first_guess_s=30)
    assert clock.estimate(5) == 30
    clock.add(2, 14)
    assert clock.estimate(9) == 14
    clock.add(6, 22)
    assert clock.estimate(10) == pytest.approx(30)


def test_the_accuracy_row_from_records(moe_gate_open):
    items = moe_runs.runs()[:4]
    predicted = moe_runs.predict(items, "H200", "NVIDIA H200")
    records = []
    for m in items:
        key = m.run.key("NVIDIA H200")
        p = predicted[key]
        records.append({**m.run.spec(), "run_key": key, "status": "ok", "gpu": {"name": "NVIDIA H200"},
                        "nvml": {"peak": int(p["peak_bytes"] / 0.9),
                                 "phase_peaks": {"train": int(p["train_peak_bytes"] / 0.9)}}})
    rows = moe_accuracy.rows(records)
    assert len(rows) == 4
    line = moe_accuracy.accuracy_row(rows)
    assert "4 runs" in line and "MAE 10.0%" in line and "4 under by more than 5%" in line


def _write(path):
    Path(path).write_text("done")
    print("to the log")
    return 0


def _sleep():
    import time
    time.sleep(30)


def test_fork_call_runs_in_a_child_logs_it_and_kills_it_past_the_timeout(tmp_path):
    import subprocess
    from stack_runs import fork_call
    assert fork_call(_write, (str(tmp_path / "out"),), tmp_path / "log", 10) == 0
    assert (tmp_path / "out").read_text() == "done" and "to the log" in (tmp_path / "log").read_text()
    assert fork_call(lambda: 1 / 0, (), tmp_path / "log2", 10) == 1
    assert "ZeroDivisionError" in (tmp_path / "log2").read_text()
    with pytest.raises(subprocess.TimeoutExpired):
        fork_call(_sleep, (), tmp_path / "log3", 0.5)


def test_measure_records_each_run_as_it_lands_and_resumes(tmp_path, monkeypatch, capsys):
    pytest.importorskip("trl")
    from vramplan.calibrate.build_model import build
    from vramplan.plan import TrainPlan
    from tests.memory.test_experts import TINY
    profile = tmp_path / "tiny.profile.json"
    profile.write_text(json.dumps({"name": "tiny", "config": TINY["olmoe"]}))
    build(str(profile), str(tmp_path / "cache" / "tiny@2L"), "cpu")  # on the GPU the run builds it itself
    monkeypatch.setitem(moe_runs.SHAPES, "tiny@2L", moe_runs.Shape("olmoe-1b-7b", {"num_hidden_layers": 2}))
    monkeypatch.setattr(moe_runs, "gpu_name", lambda: "NVIDIA H200")
    items = [moe_runs._r("tiny@2L", "plumbing", TrainPlan(batch=1, seq=16, dropout=0.0))]
    moe_runs.measure(items, tmp_path / "out", tmp_path / "cache", budget_s=300, timeout_s=120, t0=__import__("time").time())
    lines = (tmp_path / "out" / "nvidia-h200.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    assert len(lines) == 1 and record["status"] in ("crash", "error")  # no GPU here: the failure is the record
    assert record["shape"]["name"] == "tiny@2L" and record["validation"] is False
    assert record["worker"] in ("fork", "process")  # process where the test runner runs threads
    moe_runs.measure(items, tmp_path / "out", tmp_path / "cache", budget_s=300, timeout_s=120, t0=0)
    assert len((tmp_path / "out" / "nvidia-h200.jsonl").read_text().splitlines()) == 1  # recorded: skipped
    assert "1 of 1 recorded" in capsys.readouterr().out


def test_every_listed_family_is_within_five_percent_of_each_of_its_measured_runs():
    records = moe_accuracy.load(BENCH.parent / "calibration" / "moe")
    rows = [r for r in moe_accuracy.rows(records) if r["status"] == "ok"]
    listed = [r for r in rows if moe_accuracy.family_of(r) in moe_accuracy.listed_families()]
    assert {moe_accuracy.family_of(r) for r in listed} == moe_accuracy.listed_families()
    for r in listed:
        assert abs(r["predicted"] / r["measured"] - 1) <= 0.05, (r["model"], r["why"])


def test_the_cache_fit_reproduces_the_coefficients_the_profile_holds():
    import moe_cache_fit
    from vramplan.profiles.experts import allocator_cache
    records = moe_accuracy.load(BENCH.parent / "calibration" / "moe")
    fitted = moe_cache_fit.fitted(records)
    for family in moe_accuracy.listed_families():
        held = allocator_cache(family)
        names = moe_cache_fit.NAMES
        assert [round(getattr(held, n), 3) for n in names] == [fitted[family][n] for n in names]


def test_the_expert_speed_fit_is_the_one_the_records_give():
    import moe_speed_fit
    from vramplan.speed_experts import FEATURES, expert_speed_fit
    rows = moe_speed_fit.samples(moe_accuracy.load(BENCH.parent / "calibration" / "moe"))
    held = expert_speed_fit()
    assert held.runs == len(rows)
    assert held.coefficients == pytest.approx(tuple(moe_speed_fit.fit(rows)), rel=1e-4)
    assert len(FEATURES) == 3 and held.mae_pct == pytest.approx(moe_speed_fit.mae(rows, held.coefficients), abs=0.1)


def test_a_refused_family_cites_the_errors_its_runs_give():
    data = json.loads((BENCH.parent / "profiles" / "moe_families.json").read_text())
    rows = [r for r in moe_accuracy.rows(moe_accuracy.load(BENCH.parent / "calibration" / "moe"))
            if r["status"] == "ok" and not r["cap"]]
    for family, entry in data["refused"].items():
        errors = sorted(round(moe_accuracy.error_pct(r["predicted"], r["measured"]), 1) for r in rows
                        if moe_accuracy.family_of(r) == family)
        assert errors == sorted(entry["errors_pct"]) and max(map(abs, errors)) > 5
        assert family not in data["measured"]
