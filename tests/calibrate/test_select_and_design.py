from vramplan.calibrate.design import SMALL, boundary, sweep
from vramplan.calibrate.records import append_run, gpu_slug, load_runs, run_key
from vramplan.profiles import find_gpu, find_model
from vramplan.store.calibrations import calibration_for
from vramplan.units import GiB


def test_calibrated_gpu_uses_its_own_fit():
    rt = calibration_for(find_gpu("H100-80GB"))
    assert rt.source.startswith("calibrated on NVIDIA H100") and rt.runs >= 40


def test_uncalibrated_gpu_says_which_calibration_it_borrows():
    rt = calibration_for(find_gpu("T4"))
    assert "nearest calibrated GPU" in rt.source and "T4 itself is not calibrated" in rt.source
    assert rt.error["loao_mae_pct"] is not None


def test_full_sweep_spans_sizes_vocabularies_and_factors():
    runs = sweep("full")
    models = {find_model(r.model) for r in runs}
    assert len(runs) >= 40 and len(models) >= 5
    assert min(m.total_params for m in models) < 0.6e9 and max(m.total_params for m in models) > 7.5e9
    assert min(m.vocab for m in models) <= 32768 and max(m.vocab for m in models) >= 256000
    plans = [r.plan for r in runs]
    for factor in ("optim", "dtype", "attn", "gradient_checkpointing", "double_quant", "rank", "batch", "seq"):
        assert len({getattr(p, factor) for p in plans}) > 1, factor
    keys = {run_key("H100", r.model, r.plan.to_dict(), 3, r.cap_bytes) for r in runs}
    assert len(keys) == len(runs)


def test_quick_sweep_and_model_filter():
    assert {r.model for r in sweep("quick")} == set(SMALL)
    assert {r.model for r in sweep("full", ("gemma-2-2b",))} == {"gemma-2-2b"}


def test_boundary_runs_straddle_their_caps():
    runs = boundary()
    assert len(runs) == 12 and {r.cap_bytes for r in runs} == {12 * GiB, 16 * GiB, 24 * GiB}


def test_records_are_appended_never_rewritten(tmp_path):
    path = tmp_path / "runs" / f"{gpu_slug('NVIDIA H100 80GB HBM3')}.jsonl"
    append_run(path, {"run_key": "a"})
    before = path.read_text()
    append_run(path, {"run_key": "b"})
    assert path.read_text().startswith(before)
    assert [r["run_key"] for r in load_runs(path)] == ["a", "b"]
