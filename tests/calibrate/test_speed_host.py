"""This machine's launch costs from its calibration runs: the factor, the file calibrate writes, and every
planning command reading it."""
import json

import pytest

pytest.importorskip("scipy")

from vramplan.calibrate import speed_host as H  # noqa: E402
from vramplan.calibrate import speed_solve as S  # noqa: E402
from vramplan.cli import main  # noqa: E402
from vramplan.profiles import find_gpu  # noqa: E402
from vramplan.resources import data_dir  # noqa: E402
from vramplan.speed_fits import load_speed_fits, params_from_speed_fits, speed_params  # noqa: E402

H100_RUNS = data_dir("calibration") / "runs" / "nvidia-h100-80gb-hbm3.jsonl"


def second_call_lines() -> list[str]:
    """The H100 runs of its second device call (a faster host: 45 us a launch against the fit's 60)."""
    return [line for line in H100_RUNS.read_text().splitlines() if json.loads(line).get("timestamp", "") >= "2026-11-22T14:3"]


@pytest.fixture
def user_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("VRAMPLAN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("VRAMPLAN_CALIBRATION", raising=False)
    return tmp_path / "data" / "calibration"


def test_a_faster_host_gets_a_factor_below_one_and_its_runs_err_less():
    lines = second_call_lines()
    assert len(lines) == 24
    rows = S.with_features([r for r in S.speed_rows(data_dir("calibration")) if r["source"] == "runs"
                            and r["gpu_name"] == "NVIDIA H100 80GB HBM3"
                            and r["run_key"] in {json.loads(line)["run_key"] for line in lines}])
    doc = H.host_fit_document(rows, "NVIDIA H100 80GB HBM3")
    assert 0.6 < doc["host_factor"] < 0.95
    err = doc["tokens_error"]
    assert err["calibrated"]["mae_pct"] < err["shipped"]["mae_pct"]
    # the factor fitted without an architecture predicts its runs better than the shipped figures did
    assert err["held_out"]["n"] == len(rows) and err["held_out"]["mae_pct"] < err["shipped"]["mae_pct"]
    base = params_from_speed_fits(load_speed_fits(), find_gpu("H100-80GB"))
    assert doc["params"]["kernel_s"] == pytest.approx(base.kernel_s * doc["host_factor"], rel=1e-4)
    assert doc["params"]["matmul_tflops"] == pytest.approx(base.matmul_tflops)  # the GPU's rates stay


def test_calibrate_refit_writes_the_host_fit_and_the_planning_commands_use_it(capsys, user_folder):
    pytest.importorskip("pandas")
    runs = user_folder / "runs" / H100_RUNS.name
    runs.parent.mkdir(parents=True)
    runs.write_text("\n".join(second_call_lines()) + "\n")
    assert main(["calibrate", "--refit"]) == 0
    out = capsys.readouterr().out
    speed_file = user_folder / "speed_host" / "nvidia-h100-80gb-hbm3.json"
    assert f"wrote {speed_file}" in out and speed_file.exists()
    doc = json.loads(speed_file.read_text())
    gpu = find_gpu("H100-80GB")
    shipped = params_from_speed_fits(load_speed_fits(), gpu)
    mine = speed_params(gpu)
    assert mine.kernel_s == pytest.approx(shipped.kernel_s * doc["host_factor"])
    assert mine.matmul_tflops == shipped.matmul_tflops and "for this machine" in mine.source
    assert speed_params(find_gpu("H200")).source == params_from_speed_fits(load_speed_fits(), find_gpu("H200")).source
    assert main(["estimate", "llama-3.2-1b", "--gpu", "H100-80GB", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert "launch costs x" in json.dumps(d) and str(user_folder) in json.dumps(d)
    assert main(["calibration", "show", "H100-80GB"]) == 0
    assert "for this machine" in capsys.readouterr().out


def test_a_broken_host_fit_is_a_clear_error(capsys, user_folder):
    path = user_folder / "speed_host" / "nvidia-h200.json"
    path.parent.mkdir(parents=True)
    good = json.loads(json.dumps({"kind": "host", "gpu_name": "NVIDIA H200", "host_factor": 1.1, "runs": 5,
                                  "tokens_error": {"shipped": {"mae_pct": 9.0}, "calibrated": {"mae_pct": 6.0}}}))
    for broken, what in (({**good, "host_factor": -1}, "host_factor"), ({**good, "host_factor": 50}, "host_factor"),
                         ({**good, "gpu_name": 3}, "gpu_name"), ({**good, "runs": "many"}, "runs"),
                         ({k: v for k, v in good.items() if k != "tokens_error"}, "tokens_error"),
                         ({**good, "tokens_error": {"shipped": {"mae_pct": "x"}, "calibrated": {}}}, "tokens_error")):
        path.write_text(json.dumps(broken))
        assert main(["fit", "llama-3.2-1b", "--gpu", "H200"]) == 2
        err = capsys.readouterr().err
        assert "nvidia-h200.json" in err and what in err and "Traceback" not in err
        assert main(["calibration", "show", "H200"]) == 2  # not a silent omission there either
        capsys.readouterr()
    path.write_text(json.dumps(good))
    assert main(["fit", "llama-3.2-1b", "--gpu", "H200"]) == 0
    assert "launch costs x1.10 for this machine" in capsys.readouterr().out
    path.write_text("{oops")
    assert main(["fit", "llama-3.2-1b", "--gpu", "H200", "--json"]) == 2
    assert "cannot be read as JSON" in json.loads(capsys.readouterr().out)["error"]


def test_too_few_runs_fit_no_factor(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / H100_RUNS.name).write_text("\n".join(second_call_lines()[:H.MIN_RUNS - 1]) + "\n")
    assert H.write_host_fits(tmp_path) == [] and not (tmp_path / "speed_host").exists()


def test_a_host_fit_written_while_a_process_plans_is_read_and_a_full_fit_beside_it_is_not_one(user_folder):
    gpu = find_gpu("H200")
    before = speed_params(gpu)
    full = user_folder / "speed" / "nvidia-h200.json"  # what speed_solve --calib writes: not a host fit
    full.parent.mkdir(parents=True)
    full.write_text((data_dir("calibration") / "speed" / "nvidia-h200.json").read_text())
    assert speed_params(gpu) == before
    host = user_folder / "speed_host" / "nvidia-h200.json"
    host.parent.mkdir(parents=True)
    host.write_text(json.dumps({"kind": "host", "gpu_name": "NVIDIA H200", "host_factor": 2.0, "runs": 4,
                                "tokens_error": {"shipped": {"mae_pct": 30.0}, "calibrated": {"mae_pct": 5.0}}}))
    assert speed_params(gpu).kernel_s == pytest.approx(2 * before.kernel_s)
    host.unlink()
    assert speed_params(gpu).kernel_s == pytest.approx(before.kernel_s)
