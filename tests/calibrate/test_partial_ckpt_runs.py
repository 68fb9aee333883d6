"""bench/partial_ckpt_runs.py (the GPU runs partial and offloaded checkpointing are checked on), on CPU."""
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import partial_ckpt_runs as pc  # noqa: E402
from vramplan.profiles import checkpointing  # noqa: E402


@pytest.fixture(autouse=True)
def gate_restored(monkeypatch):
    """predict() opens the gate in its process; a test puts it back."""
    monkeypatch.setattr(checkpointing, "measured_checkpointing_modes", checkpointing.measured_checkpointing_modes)


def test_the_set_covers_what_the_issue_asks():
    items = pc.runs()
    plans = [m.run.plan for m in items]
    assert len(items) >= 10
    assert {m.run.model for m in items} == {"llama-3.2-1b", "qwen2.5-1.5b", "gemma-2-2b"}
    assert {p.checkpoint_every for p in plans} >= {2, 3, 4}
    assert any(p.checkpoint_offload for p in plans) and any(p.checkpoint_every > 1 and not p.checkpoint_offload
                                                           for p in plans)
    assert any(not p.gradient_checkpointing for p in plans)  # the baselines beside the modes
    assert any(m.run.trainer == "hf" for m in items) and sum(m.run.trainer == "trl" for m in items) > len(items) / 2
    assert all(m.run.steps == 6 for m in items)
    assert 4 <= sum(m.validation for m in items) < len(items)
    assert len({m.run.key("NVIDIA H200") for m in items}) == len(items)
    assert len(items) * pc.FIRST_GUESS_S <= 400


def test_every_run_is_predicted_on_the_h200_and_fits_it():
    items = pc.runs()
    predicted = pc.predict(items, "H200", "NVIDIA H200")
    assert len(predicted) == len(items)
    for m in items:
        p = predicted[m.run.key("NVIDIA H200")]
        assert 0 < p["required_bytes"] < 130 * 2**30 and p["step_s"] > 0
        if m.run.plan.gradient_checkpointing:
            assert p["checkpointed_layers"] == -(-p["layers"] // m.run.plan.checkpoint_every)


def test_the_loop_records_each_run_goes_on_after_a_failure_and_resumes(tmp_path, monkeypatch):
    items = pc.runs()[:3]
    calls = []

    def fake_run_one(run, ckpt, key, timeout_s, fork=False):
        calls.append(key)
        if len(calls) == 2:
            raise RuntimeError("checkpoint build failed")
        return {"status": "ok", "run_key": key, "nvml": {"peak": 5 * 2**30}, "step_time_s": 0.3,
                "checkpointed_layers": 8, "wall_s": 20.0}
    monkeypatch.setattr(pc, "gpu_name", lambda: "NVIDIA H200")
    monkeypatch.setattr(pc, "preload_stack", lambda: False)
    monkeypatch.setattr(pc, "checkpoint", lambda model, cache: tmp_path / model)
    monkeypatch.setattr(pc, "run_one", fake_run_one)
    pc.measure(items, tmp_path / "out", tmp_path / "cache", budget_s=1000, timeout_s=100, t0=pc.time.time())
    lines = [json.loads(x) for x in (tmp_path / "out" / "nvidia-h200.jsonl").read_text().splitlines()]
    assert [r["status"] for r in lines] == ["ok", "error", "ok"]
    assert all("predicted" in r and "validation" in r for r in lines)
    assert lines[1]["run_key"] == items[1].run.key("NVIDIA H200") and "checkpoint build failed" in lines[1]["error"]
    calls.clear()
    pc.measure(items, tmp_path / "out", tmp_path / "cache", budget_s=1000, timeout_s=100, t0=pc.time.time())
    assert calls == []  # every run recorded (a failure too): nothing left


def test_a_run_past_the_budget_is_left_for_the_next_call(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pc, "gpu_name", lambda: "NVIDIA H200")
    monkeypatch.setattr(pc, "preload_stack", lambda: False)
    monkeypatch.setattr(pc, "run_one", lambda *a, **k: pytest.fail("no run fits the budget"))
    pc.measure(pc.runs()[:2], tmp_path / "out", tmp_path / "cache", budget_s=10, timeout_s=100, t0=pc.time.time())
    assert "stopping: run 1" in capsys.readouterr().out


def test_the_progress_line_sets_measured_beside_predicted():
    line = pc.summary({"status": "ok", "nvml": {"peak": 4 * 2**30}, "step_time_s": 0.25, "checkpointed_layers": 8,
                       "wall_s": 21.0}, {"peak_bytes": 5 * 2**30, "step_s": 0.2, "checkpointed_layers": 8,
                                         "layers": 16})
    assert "NVML peak 4.00 GiB (predicted 5.00)" in line and "step 0.250 s (predicted 0.200)" in line
    assert "8 of 16 layers checkpointed (predicted 8)" in line
