"""The fit and its accuracy, recomputed from the committed raw records (calibration/runs)."""
import json

import pytest

from vramplan.calibration.fit import (capped, evaluate, fit_gpu, fit_params, loao, refit_all, summarize, usable,
                                      verdicts)
from vramplan.calibration.records import load_all_runs
from vramplan.memory.runtime import RuntimeParams
from vramplan.profiles import find_gpu
from vramplan.resources import data_dir

RUNS = load_all_runs(data_dir("calibration"))
ALL_CAPPED = [r for records in RUNS.values() for r in records if capped(r)]


def test_committed_runs_cover_two_gpus_with_40_runs_over_5_architectures_each():
    assert {"nvidia-h100-80gb-hbm3", "nvidia-h200"} <= set(RUNS)
    for records in RUNS.values():
        ok = [r for r in records if usable(r)]
        assert len(ok) >= 40 and len({r["model"] for r in ok}) >= 5


def test_records_hold_what_design_section_4_asks():
    r = next(r for r in RUNS["nvidia-h100-80gb-hbm3"] if usable(r))
    assert {"before_init", "after_init", "after_load", "after_peft", "peak", "end"} <= set(r["nvml"])
    assert {"max_allocated", "max_reserved", "steps"} <= set(r["torch"])
    assert {"torch", "transformers", "peft", "bitsandbytes", "cuda"} <= set(r["versions"])
    assert {"name", "driver", "memory_total_bytes", "compute_capability"} <= set(r["gpu"])
    assert r["step_time_s"] > 0 and r["plan"]["rank"] > 0


@pytest.mark.parametrize("slug", sorted(RUNS))
def test_leave_one_architecture_out_error_is_within_3_percent(slug):
    records = RUNS[slug]
    gpu = find_gpu(records[0]["gpu"]["name"])
    held_out = summarize(loao(records, gpu))
    assert held_out["mae_pct"] <= 3.0


@pytest.mark.parametrize("slug", sorted(RUNS))
def test_allocator_peak_is_within_3_percent_on_every_4bit_run(slug):
    records = RUNS[slug]
    gpu = find_gpu(records[0]["gpu"]["name"])
    rows = [row for row in evaluate(records, gpu, fit_params(records, gpu))]
    four_bit = {r["run_key"] for r in records if r.get("plan", {}).get("quant") in ("nf4", "fp4")}
    for row in rows:
        if row["run_key"] in four_bit:
            err = (row["predicted_allocated"] - row["measured_allocated"]) / row["measured_allocated"]
            assert abs(err) < 0.03, row


def test_every_boundary_verdict_is_right():
    assert len(ALL_CAPPED) >= 12
    fit = fit_gpu(RUNS["nvidia-h200"], ALL_CAPPED)
    params = RuntimeParams(**fit["params"])
    checks = verdicts(ALL_CAPPED, params)
    assert all(c["right"] for c in checks), [c for c in checks if not c["right"]]
    assert {c["measured"] for c in checks} == {"ok", "oom"}


def test_committed_fits_are_what_refit_produces(tmp_path):
    """Fits are derived data: rerunning the fit on the raw records reproduces them."""
    src = data_dir("calibration")
    for folder in ("runs", "multi_gpu"):
        (tmp_path / folder).mkdir()
        for p in (src / folder).glob("*.jsonl"):
            (tmp_path / folder / p.name).write_text(p.read_text())
    for path in refit_all(tmp_path):
        committed = json.loads((src / "fits" / path.name).read_text())
        assert json.loads(path.read_text()) == committed


def test_crashed_and_capped_runs_are_not_fitted():
    records = RUNS["nvidia-h200"]
    assert any(r["status"] == "oom" for r in records)
    assert all(r["status"] == "ok" and not r.get("cap_bytes") for r in records if usable(r))
