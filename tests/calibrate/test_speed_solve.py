"""The speed solver on the real records: what it reads, what it fits, and how well it predicts what it did not see."""
import functools
import json

import pytest

from vramplan.calibrate import speed_solve as S
from vramplan.resources import data_dir
from vramplan.speed import load_speed_fits

ROWS = S.with_features(S.speed_rows())
BY_GPU = S.by_gpu(ROWS)


@functools.lru_cache(maxsize=None)
def _docs() -> dict:
    """The fit documents the solver writes now (solved once for the tests that read them)."""
    return S.solve_all()


def test_it_reads_the_one_gpu_runs_with_step_times_and_leaves_evaluation_out():
    assert set(BY_GPU) == {"NVIDIA H100 80GB HBM3", "NVIDIA H200"}
    assert all(r["plan"].gpus == 1 and r["measured_s"] > 0 for r in ROWS)
    assert {r["source"] for r in BY_GPU["NVIDIA H200"]} == {"runs", "stacks", "partial_ckpt", "ranking"}
    h200 = BY_GPU["NVIDIA H200"]
    assert sum(r["plan"].checkpoint_offload for r in h200) == 5 and sum(r["plan"].checkpoint_every > 1 for r in h200) == 9
    assert not any(r["plan"].eval_batch for r in ROWS)
    assert {r["plan"].trainer for r in BY_GPU["NVIDIA H200"]} == {"hf", "trl"}


def test_the_fitted_rates_stay_under_the_datasheet_and_the_costs_non_negative():
    for rows in BY_GPU.values():
        p = S.solve(rows)
        gpu = rows[0]["profile"]
        assert 0 < p.matmul_tflops <= gpu.tensor_tflops_16bit * (1 + 1e-6)
        assert 0 < p.stream_gbs <= gpu.bandwidth_gbs * (1 + 1e-6)
        assert min(p.kernel_s, p.micro_batch_s, p.step_s) >= 0
        assert 1e-6 < p.kernel_s < 1e-4  # launches dominate these small steps: microseconds each


# The bounds the shipped records meet (bench/speed_accuracy.py prints the figures): a LOAO MAE of 14.5% (H100,
# within the 15% goal) and 15.4% (H200: above it since the partial-checkpointing and ranking runs joined, which
# the model under-predicts at large micro-batches); repeat runs of one plan differ by 5% on average.
@pytest.mark.parametrize("gpu,loao_mae", [("NVIDIA H100 80GB HBM3", 15.0), ("NVIDIA H200", 16.0)])
def test_leave_one_architecture_out_error_on_the_real_records(gpu, loao_mae):
    rows = BY_GPU[gpu]
    fitted, held = S.summarize(S.error_rows(rows, S.solve(rows))), S.summarize(S.loao_rows(rows))
    assert held["n"] == len(rows)
    assert held["mae_pct"] <= loao_mae and fitted["mae_pct"] <= held["mae_pct"] + 0.5
    assert held["within_pct"] >= 50
    assert abs(held["worst_pct"]) < 70


def test_the_offload_rate_is_fitted_where_runs_offloaded_and_borrowed_elsewhere():
    from vramplan.profiles import find_gpu
    from vramplan.speed import params_from_speed_fits
    h200 = S.solve(BY_GPU["NVIDIA H200"])
    assert 1.0 < h200.offload_gbs < find_gpu("H200").pcie_gbs  # the copies block the compute stream
    docs = _docs()
    h100_doc, h200_doc = docs["nvidia-h100-80gb-hbm3"], docs["nvidia-h200"]
    assert "offload_gbs" not in h100_doc["params"] and h100_doc["offload_runs"] == 0
    assert h200_doc["offload_runs"] == 5 and h200_doc["efficiency"]["offload"] > 0
    fits = (h100_doc, h200_doc)
    for name in ("H100-80GB", "RTX-4090"):  # no offloaded run: the PCIe datasheet x the H200's efficiency
        gpu = find_gpu(name)
        assert params_from_speed_fits(fits, gpu).offload_gbs == pytest.approx(
            gpu.pcie_gbs * h200_doc["efficiency"]["offload"])
    assert params_from_speed_fits(fits, find_gpu("H200")).offload_gbs == h200_doc["params"]["offload_gbs"]


def test_multi_gpu_costs_fit_the_two_gpu_runs():
    multi = S.by_gpu(S.multi_gpu_rows())["NVIDIA H200"]
    params = S.solve(BY_GPU["NVIDIA H200"])
    fitted = S.solve_multi_gpu(multi, params)
    assert 0 < fitted["fsdp_unit_s"] < 2e-3 and 0 <= fitted["ddp_step_s"] < 0.5
    from dataclasses import replace
    held = S.summarize(S.multi_gpu_loao(multi, replace(params, **fitted)))
    assert held["mae_pct"] <= 10


def test_the_target_is_the_median_of_the_steady_steps():
    steps = [{"time_s": t} for t in (3.0, 0.4, 0.6)]
    assert S.steady_step_seconds({"torch": {"steps": steps}, "step_time_s": 0.6}) == pytest.approx(0.5)
    assert S.steady_step_seconds({"torch": {"steps": steps + [{"time_s": 0.45}]}}) == pytest.approx(0.45)
    assert S.steady_step_seconds({"step_time_s": 0.7}) == 0.7  # no per-step times: the record's own figure


def test_the_shipped_speed_fits_are_what_the_solver_writes_now(tmp_path):
    docs = _docs()
    S.write_fits(docs, tmp_path)
    shipped = {p.name: json.loads(p.read_text()) for p in (data_dir("calibration") / "speed").glob("*.json")}
    written = {p.name: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    assert written.keys() == shipped.keys()
    for name, doc in written.items():
        assert doc["params"] == pytest.approx(shipped[name]["params"], rel=1e-6)
        assert doc["error"] == shipped[name]["error"]
    assert len(load_speed_fits()) == len(shipped)


def test_dry_run_writes_nothing(tmp_path, capsys):
    assert S.main(["--dry-run", "--out", str(tmp_path)]) == 0
    assert not list(tmp_path.iterdir()) and "LOAO MAE" in capsys.readouterr().out
