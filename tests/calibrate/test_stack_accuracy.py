"""The stack model against the H200 runs of calibration/stacks (bench/stack_runs.py; bench/stack_accuracy.py
prints the tables)."""
import json

import pytest

from vramplan.calibrate.stack_accuracy import accuracy_rows, error_pct
from vramplan.resources import data_dir


def test_training_footprint_over_every_measured_release():
    rows = accuracy_rows()
    releases = {r["release"].rsplit(".", 1)[0] for r in rows if r["release"]}
    assert len(rows) >= 40 and len({r["model"] for r in rows}) >= 6 and len(releases) >= 16
    errs = [error_pct(r["train_predicted"], r["train_measured"]) for r in rows]
    assert sum(map(abs, errs)) / len(errs) < 3.0
    fused = [e for e, r in zip(errs, rows) if r["loss_path"] == "trl_fused"]
    assert max(map(abs, fused)) < 3.0


def test_full_logits_runs_are_charged_the_segment_only_where_the_allocator_took_it():
    """Where the metrics' shifted copy strands a segment is decided per shape (memory/loss_paths.py): charged to
    every full-logits run, llama-3.2-1b at 4,096 tokens was 19% over."""
    full = [r for r in accuracy_rows() if r["loss_path"] in ("trl_full", "trl_full_copies")]
    assert len(full) >= 19 and len({r["model"] for r in full}) >= 7
    for r in full:
        assert abs(error_pct(r["train_predicted"], r["train_measured"])) < 3.0, r


def test_no_whole_run_peak_is_more_than_5_percent_above_its_prediction():
    for r in accuracy_rows():
        assert error_pct(r["whole_predicted"], r["whole_measured"]) > -5.0, r
        if r["eval_batch"]:
            assert r["peak_phase"] == "evaluation"


@pytest.mark.parametrize("name, runs", [("validation.json", 7), ("validation2.json", 6)])
def test_validation_sets_predicted_before_measuring(name, runs):
    predicted = json.loads((data_dir("calibration") / "stacks" / name).read_text())
    rows = {r["run_key"]: r for r in accuracy_rows()}
    measured = [(p, rows[k]) for k, p in predicted.items() if k in rows]
    assert len(measured) >= runs
    for p, r in measured:
        assert error_pct(p["peak_bytes"], r["whole_measured"]) > -5.0, (p, r)


def test_the_stack_slack_constants_are_the_measured_medians():
    from vramplan.calibrate.stack_accuracy import slack_medians
    from vramplan.memory.calibration import DEFAULT_CALIBRATION
    medians = slack_medians()
    for path, value in DEFAULT_CALIBRATION.stack_slack_bytes.items():
        assert abs(value - medians[path]) < 2**20, path


def test_the_expandable_stack_slack_is_the_measured_median():
    from vramplan.calibrate.stack_accuracy import expandable_slack_median
    from vramplan.memory.calibration import DEFAULT_CALIBRATION
    assert abs(DEFAULT_CALIBRATION.stack_expandable_slack_bytes - expandable_slack_median()) < 2**20
