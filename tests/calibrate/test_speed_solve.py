"""The speed solver on the real records: what it reads, what it fits, and how well it predicts what it did not see."""
import functools
import json
from dataclasses import replace

import pytest

from vramplan.calibrate import speed_solve as S
from vramplan.resources import data_dir
from vramplan.speed_fits import load_speed_fits

ROWS = S.with_features(S.speed_rows())
BY_GPU = S.by_gpu(ROWS)


@functools.lru_cache(maxsize=None)
def _docs() -> dict:
    """The fit documents the solver writes now (solved once for the tests that read them)."""
    return S.solve_all()


def test_it_reads_the_one_gpu_runs_with_step_times_and_leaves_evaluation_out():
    assert set(BY_GPU) == {"NVIDIA H100 80GB HBM3", "NVIDIA H200"}
    assert all(r["plan"].gpus == 1 and r["measured_s"] > 0 for r in ROWS)
    assert {r["source"] for r in BY_GPU["NVIDIA H200"]} == {"runs", "stacks", "partial_ckpt", "ranking", "speed_runs"}
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


HOPPER = [r for r in ROWS if r["profile"].architecture == "hopper"]


def test_the_gpus_of_one_architecture_share_their_rate_efficiencies_and_keep_their_own_launch_costs():
    params = S.solve_group(HOPPER)
    h100, h200 = params["NVIDIA H100 80GB HBM3"], params["NVIDIA H200"]
    eff = [(p.matmul_tflops / g.tensor_tflops_16bit, p.stream_gbs / g.bandwidth_gbs)
           for p, g in ((h100, BY_GPU["NVIDIA H100 80GB HBM3"][0]["profile"]), (h200, BY_GPU["NVIDIA H200"][0]["profile"]))]
    assert eff[0] == pytest.approx(eff[1])
    # the H200's compute-bound runs (8B-14B at 8-16k tokens a step) pin the matmul rate well below the datasheet
    assert 0.4 < eff[0][0] < 0.8
    assert h100.kernel_s != pytest.approx(h200.kernel_s)
    assert h100.overlap == h200.overlap and 1.0 < h200.overlap < S.OVERLAP_BOUNDS[1]  # fitted, not at a bound


def test_host_and_device_time_overlap_rather_than_add():
    from vramplan.speed import seconds_from_terms
    terms = (0.3, 0.1, 0.5, 0.0, 0.02, 0.0)  # device 0.4 s, host 0.5 s, step 0.02 s
    assert seconds_from_terms(terms, 1.0) == pytest.approx(0.92)
    assert 0.52 < seconds_from_terms(terms, 2.3) < 0.92 and seconds_from_terms(terms, 8.0) < 0.60
    # the fitted overlap predicts the large compute-bound runs: 8B-14B at 8-16k tokens a step within 15%
    rows = [r for r in BY_GPU["NVIDIA H200"] if r["source"] == "speed_runs" and r["x"][0] > 300]
    assert len(rows) >= 5
    assert all(abs(e["tokens_error_pct"]) < 15 for e in S.error_rows(rows, S.solve(HOPPER, "NVIDIA H200")))


def test_an_architecture_that_is_a_gpus_only_one_is_left_out_of_its_loao():
    h100_llama = [r for r in BY_GPU["NVIDIA H100 80GB HBM3"] if r["model"] == "llama-3.2-1b"]
    rows = h100_llama + BY_GPU["NVIDIA H200"]
    held = S.loao_rows(rows)
    assert {e["gpu_name"] for e in held} == {"NVIDIA H200"} and len(held) == len(BY_GPU["NVIDIA H200"])
    assert S.loao_rows(h100_llama) == []


def test_the_fit_minimizes_the_relative_error_of_tokens_per_second():
    rows = BY_GPU["NVIDIA H200"]
    p = S.solve(rows)
    base = sum(e["tokens_error_pct"] ** 2 for e in S.error_rows(rows, p))
    for k in ("kernel_s", "step_s", "micro_batch_s", "matmul_tflops", "offload_gbs"):
        for f in (0.97, 1.03):  # a small move of any coefficient either way does no better
            moved = replace(p, **{k: getattr(p, k) * f})
            assert sum(e["tokens_error_pct"] ** 2 for e in S.error_rows(rows, moved)) >= base * 0.999


# The bounds the shipped records meet (bench/speed_accuracy.py prints the figures), solved as shipped (the
# Hopper GPUs together), held out by architecture on every GPU: a tokens/s LOAO MAE of 13.4% (H100) and 14.6%
# (H200), under the 15% goal; the runs of the different hosts differ by up to a third in their launch costs.
@pytest.mark.parametrize("gpu,loao_mae", [("NVIDIA H100 80GB HBM3", 14.0), ("NVIDIA H200", 15.0)])
def test_leave_one_architecture_out_error_on_the_real_records(gpu, loao_mae):
    rows = BY_GPU[gpu]
    held = [e for e in S.loao_rows(HOPPER) if e["gpu_name"] == gpu]
    fitted = S.summarize(S.error_rows(rows, S.solve_group(HOPPER)), "tokens_error_pct")
    held = S.summarize(held, "tokens_error_pct")
    assert held["n"] == len(rows)
    assert held["mae_pct"] <= loao_mae and fitted["mae_pct"] <= held["mae_pct"] + 0.5
    assert held["within_pct"] >= 50
    assert abs(held["worst_pct"]) < 70


def test_the_offload_rate_is_fitted_where_runs_offloaded_and_borrowed_elsewhere():
    from vramplan.profiles import find_gpu
    from vramplan.speed_fits import params_from_speed_fits
    h200 = S.solve(HOPPER, "NVIDIA H200")
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


def test_the_target_is_the_median_of_the_steady_steps():
    steps = [{"time_s": t} for t in (3.0, 0.4, 0.6)]
    assert S.steady_step_seconds({"torch": {"steps": steps}, "step_time_s": 0.6}) == pytest.approx(0.5)
    # where the record stopped its NVML poller, the steps after the polled ones
    polled = [{"time_s": t} for t in (3.0, 0.9, 0.8, 0.4, 0.5, 0.6)]
    assert S.steady_step_seconds({"torch": {"steps": polled}, "nvml_polled_steps": 3}) == pytest.approx(0.5)
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


def test_the_set_predicted_before_it_ran_meets_the_15_percent_bar_as_predicted():
    # validation2.json was committed by the fit of the first 27 steady-state runs, before these 14 ran: its step
    # times against the measured ones are the held-out figure, whatever the fit has become since
    predicted = json.loads((data_dir("calibration") / "speed_runs" / "validation2.json").read_text())
    runs = [r for r in BY_GPU["NVIDIA H200"] if r["source"] == "speed_runs" and r["run_key"] in predicted]
    assert len(runs) == len(predicted) == 14 and len({r["model"] for r in runs}) == 13
    errors = [r["measured_s"] / predicted[r["run_key"]]["step_s"] - 1 for r in runs]  # tokens/s: positive too fast
    assert sum(abs(e) for e in errors) / len(errors) < 0.10 and max(abs(e) for e in errors) < 0.25
