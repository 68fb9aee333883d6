"""`vramplan calibration list|show|export|import`, calibrate's user folder, and every planning command reading
the user's calibrations (user folder, VRAMPLAN_CALIBRATION, --calibration), as users run them."""
import json
import subprocess
import sys

import pytest

from vramplan.calibrate.records import gpu_slug
from vramplan.cli import build_parser, main
from vramplan.resources import data_dir
from vramplan.store.user import display_path as shown

GiB = 1024**3
PLANNING = ("estimate", "fit", "check", "table", "train", "tui")


@pytest.fixture(autouse=True)
def user_folder(tmp_path, monkeypatch):
    """Each test has a user data folder of its own (never the real home's)."""
    monkeypatch.setenv("VRAMPLAN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("VRAMPLAN_CALIBRATION", raising=False)
    return tmp_path / "data" / "calibration"


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def shipped_fit(slug="nvidia-h200"):
    return json.loads((data_dir("calibration") / "fits" / f"{slug}.json").read_text())


def write_fit(folder, context_bytes=3 * GiB, runs=12):
    fit = shipped_fit()
    fit["params"]["context_bytes"], fit["runs"] = context_bytes, runs
    path = folder / "fits" / f"{gpu_slug(fit['gpu_name'])}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fit))
    return path


def fit_json(capsys, *extra):
    code, out, _ = run(capsys, "fit", "llama-3.2-1b", "--gpu", "H200", "--json", *extra)
    assert code == 0
    d = json.loads(out)
    return d["calibration"], d["recommended"]["components"]["cuda_context"]


def test_list_shows_the_shipped_fits_and_the_empty_user_folder(capsys, user_folder):
    code, out, _ = run(capsys, "calibration", "list")
    assert code == 0
    assert "NVIDIA H200" in out and "NVIDIA H100 80GB HBM3" in out and "shipped" in out
    assert f"your calibrations: {shown(user_folder)} (from VRAMPLAN_DATA_DIR); none yet" in out
    code, out, _ = run(capsys, "calibration", "list", "--json")
    d = json.loads(out)
    assert d["user_folder"] == str(user_folder)
    assert {(c["gpu_name"], c["kind"], c["in_use"]) for c in d["calibrations"]} == {
        ("NVIDIA H200", "shipped", True), ("NVIDIA H100 80GB HBM3", "shipped", True)}


def test_a_calibration_in_the_user_folder_is_used_by_the_next_fit(capsys, user_folder):
    shipped_line, shipped_context = fit_json(capsys)
    assert shipped_line.startswith("calibrated on NVIDIA H200 (60 runs")
    write_fit(user_folder, context_bytes=3 * GiB, runs=12)
    line, context = fit_json(capsys)
    assert line == f"your calibration in {shown(user_folder)} (12 runs, peak LOAO MAE 1.8%)"
    assert context == 3 * GiB != shipped_context
    code, out, _ = run(capsys, "fit", "llama-3.2-1b", "--gpu", "H200")
    assert f"calibration: your calibration in {shown(user_folder)} (12 runs" in out
    d = json.loads(run(capsys, "calibration", "list", "--json")[1])
    h200 = {c["kind"]: c for c in d["calibrations"] if c["gpu_name"] == "NVIDIA H200"}
    assert h200["user"]["in_use"] and not h200["shipped"]["in_use"]
    assert h200["shipped"]["replaced_by"] == shown(user_folder)


@pytest.mark.parametrize("command", [
    ("estimate", "llama-3.2-1b", "--gpu", "H200"),
    ("check", "llama-3.2-1b", "--gpu", "H200"),
    ("fit", "llama-3.2-1b", "--gpu", "H200"),
])
def test_every_planning_command_says_the_calibration_it_used(capsys, tmp_path, command):
    folder = tmp_path / "shared"
    write_fit(folder, context_bytes=5 * GiB, runs=7)
    code, out, _ = run(capsys, *command, "--calibration", str(folder), "--json")
    assert code in (0, 1), out
    assert f"--calibration {shown(folder)} (7 runs" in out


def test_table_plans_with_the_calibration_given(capsys, tmp_path):
    def required(*extra):
        rows = json.loads(run(capsys, "table", "--model", "llama-3.2-1b", "--seq", "512", "--effective-batch", "4",
                              "--json", *extra)[1])["rows"]
        return {r["gpu"]: r["required_bytes"] for r in rows}
    folder = tmp_path / "shared"
    write_fit(folder, context_bytes=5 * GiB)
    shipped, given = required(), required("--calibration", str(folder))
    assert given["H200"] > shipped["H200"] and given["H100-80GB"] == shipped["H100-80GB"]


def test_the_calibration_flag_and_env_var_on_estimate(capsys, tmp_path, monkeypatch):
    flag, env = tmp_path / "flag", tmp_path / "env"
    write_fit(flag, context_bytes=5 * GiB)
    write_fit(env, context_bytes=4 * GiB)
    monkeypatch.setenv("VRAMPLAN_CALIBRATION", str(env))
    d = json.loads(run(capsys, "estimate", "llama-3.2-1b", "--gpu", "H200", "--json")[1])
    assert d["components"]["cuda_context"] == 4 * GiB
    assert d["calibration"]["source"].startswith(f"VRAMPLAN_CALIBRATION={shown(env)}")
    d = json.loads(run(capsys, "estimate", "llama-3.2-1b", "--gpu", "H200", "--json", "--calibration", str(flag))[1])
    assert d["components"]["cuda_context"] == 5 * GiB


def test_every_planning_command_takes_the_calibration_flag():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in PLANNING:
        assert "--calibration" in sub.choices[name]._option_string_actions, name


def test_show_gives_parameters_and_accuracy(capsys):
    code, out, _ = run(capsys, "calibration", "show", "H200")
    assert code == 0
    assert "NVIDIA H200 (profile H200): shipped calibration, 60 runs, peak LOAO MAE 1.8%" in out
    assert "context_bytes" in out and "767 MiB" in out and "loao_mae_pct" in out
    d = json.loads(run(capsys, "calibration", "show", "nvidia-h200", "--json")[1])
    assert d["params"] == shipped_fit()["params"] and d["kind"] == "shipped" and d["stands_in_for"] is None
    code, out, _ = run(capsys, "calibration", "show", "T4")
    assert code == 0 and out.startswith("T4 is not calibrated; it plans with the nearest calibrated GPU's fit:")


def test_export_import_round_trip_and_no_overwrite(capsys, tmp_path, user_folder):
    path = tmp_path / "h200.json"
    code, out, _ = run(capsys, "calibration", "export", "H200", "-o", str(path))
    assert code == 0 and "run records" in out
    doc = json.loads(path.read_text())
    assert doc["format"] == "vramplan-calibration" and doc["fit"] == shipped_fit() and doc["records"]["runs"]
    code, _, err = run(capsys, "calibration", "export", "H200", "-o", str(path))
    assert code == 2 and "already exists" in err and "--force" in err
    doc["fit"]["params"]["context_bytes"] = 2 * GiB
    path.write_text(json.dumps(doc))
    code, out, _ = run(capsys, "calibration", "import", str(path))
    assert code == 0 and f"into {shown(user_folder)}" in out
    assert fit_json(capsys)[1] == 2 * GiB
    assert len((user_folder / "runs" / "nvidia-h200.jsonl").read_text().splitlines()) == len(doc["records"]["runs"])
    doc["fit"]["params"]["context_bytes"] = 1 * GiB
    path.write_text(json.dumps(doc))
    code, out, _ = run(capsys, "calibration", "import", str(path), "--json")
    assert code == 2 and json.loads(out)["exit_code"] == 2 and "already holds" in json.loads(out)["error"]
    assert fit_json(capsys)[1] == 2 * GiB
    assert run(capsys, "calibration", "import", str(path), "--force")[0] == 0
    assert fit_json(capsys)[1] == 1 * GiB
    # the user's fit exports with its own records
    again = tmp_path / "again.json"
    assert run(capsys, "calibration", "export", "H200", "-o", str(again))[0] == 0
    assert json.loads(again.read_text())["exported_from"] == shown(user_folder)


@pytest.mark.parametrize("args, message", [
    (("calibration", "show", "no-such-gpu"), "no calibration of GPU 'no-such-gpu'"),
    (("calibration", "show", " "), "empty name"),
    (("calibration", "export", "T4", "-o", "{tmp}/t4.json"), "T4 has no calibration of its own"),
    (("calibration", "export", "H200", "-o", "{tmp}"), "is a folder"),
    (("calibration", "export", "H200", "-o", "{tmp}/missing/x.json"), "does not exist"),
    (("calibration", "import", "{tmp}/nothing.json"), "no such file"),
    (("calibration", "import", "{tmp}/garbage.json"), "cannot be read as JSON"),
    (("fit", "llama-3.2-1b", "--gpu", "H200", "--calibration", "{tmp}/nowhere"), "--calibration"),
    (("fit", "llama-3.2-1b", "--gpu", "H200", "--calibration", "{tmp}/garbage.json"), "cannot be read as JSON"),
    (("calibrate", "--refit"), "no recorded runs"),
    (("calibrate", "--refit", "--out", "{package}"), "inside the installed package"),
    (("calibrate", "--refit", "--out", "{tmp}/garbage.json"), "is a file"),
], ids=["show-unknown", "show-empty", "export-uncalibrated", "export-to-folder", "export-no-parent",
        "import-missing", "import-garbage", "flag-missing", "flag-garbage", "refit-no-runs", "out-in-package",
        "out-is-file"])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(capsys, tmp_path, user_folder, args, message):
    (tmp_path / "garbage.json").write_bytes(b"\x00\x01 not json")
    from vramplan import resources
    args = [a.format(tmp=tmp_path, package=resources._PKG / "_data" / "calibration") for a in args]
    before = sorted(p for p in tmp_path.rglob("*"))
    code, out, err = run(capsys, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and not out
    code, out, err = run(capsys, *args, "--json")
    assert code == 2 and json.loads(out)["exit_code"] == 2 and message in json.loads(out)["error"]
    assert sorted(p for p in tmp_path.rglob("*")) == before and not user_folder.exists()


def test_calibrate_writes_to_the_user_folder_and_the_next_fit_reads_it(capsys, user_folder):
    pytest.importorskip("scipy")
    pytest.importorskip("pandas")
    code, out, _ = run(capsys, "calibrate", "--dry-run", "--quick")
    assert code == 0 and f"would go to {user_folder}" in out
    runs = user_folder / "runs" / "nvidia-h200.jsonl"
    runs.parent.mkdir(parents=True)
    runs.write_text((data_dir("calibration") / "runs" / "nvidia-h200.jsonl").read_text())
    code, out, _ = run(capsys, "calibrate", "--refit")
    assert code == 0 and f"wrote {user_folder / 'fits' / 'nvidia-h200.json'}" in out
    assert "now plan this GPU with it" in out
    # solved as the shipped fits are (the other GPUs' records lent): the shipped runs give the shipped fit
    assert json.loads((user_folder / "fits" / "nvidia-h200.json").read_text()) == shipped_fit()
    assert not (user_folder / "fits" / "nvidia-h100-80gb-hbm3.json").exists()  # only the GPUs recorded here
    line, _ = fit_json(capsys)
    assert line.startswith(f"your calibration in {shown(user_folder)} (60 runs")


def test_through_the_real_entry_point_with_no_traceback(tmp_path, user_folder):
    env_dir = tmp_path / "data"
    write_fit(user_folder, context_bytes=3 * GiB, runs=12)
    proc = subprocess.run([sys.executable, "-m", "vramplan", "estimate", "llama-3.2-1b", "--gpu", "H200"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and f"calibration: your calibration in {shown(user_folder)} (12 runs" in proc.stdout
    (user_folder / "fits" / "nvidia-h200.json").write_text("{broken")
    proc = subprocess.run([sys.executable, "-m", "vramplan", "fit", "llama-3.2-1b", "--gpu", "H200"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "nvidia-h200.json" in proc.stderr
    assert env_dir.exists()


def test_json_before_the_action_and_no_action(capsys, user_folder):
    code, out, _ = run(capsys, "calibration", "--json", "list")
    assert code == 0 and json.loads(out)["user_folder"] == str(user_folder)
    code, out, _ = run(capsys, "calibration", "--json")
    assert code == 2 and "name an action" in json.loads(out)["error"]
    code, _, err = run(capsys, "calibration")
    assert code == 2 and "name an action" in err and len(err.strip().splitlines()) == 1
    code, out, _ = run(capsys, "calibrate", "--dry-run", "--quick", "--json")
    d = json.loads(out)
    assert code == 0 and d["out"] == str(user_folder) and d["runs"] and not user_folder.exists()


def test_a_refit_of_expandable_segments_runs_alone_lends_the_shipped_default_runs_or_says_what_to_run(capsys, user_folder):
    pytest.importorskip("scipy")
    pytest.importorskip("pandas")
    lines = [line for line in (data_dir("calibration") / "runs" / "nvidia-h100-80gb-hbm3.jsonl").read_text().splitlines()
             if json.loads(line)["plan"].get("allocator") == "expandable"]
    runs = user_folder / "runs" / "nvidia-h100-80gb-hbm3.jsonl"
    runs.parent.mkdir(parents=True)
    runs.write_text("\n".join(lines) + "\n")
    code, out, _ = run(capsys, "calibrate", "--refit")
    assert code == 0 and "fits/nvidia-h100-80gb-hbm3.json" in out  # with the H100's shipped default runs
    other = user_folder / "runs" / "nvidia-a100-sxm4-80gb.jsonl"
    other.write_text("\n".join(line.replace("NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB") for line in lines) + "\n")
    code, _, err = run(capsys, "calibrate", "--refit")
    assert code == 2 and "default allocator" in err and "Traceback" not in err
