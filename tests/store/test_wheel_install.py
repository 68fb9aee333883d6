"""From a non-editable wheel in a fresh venv, built and installed here without the network: the shipped fits
travel in the wheel, calibrate writes to the user folder (never site-packages), and the next fit reads it."""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from vramplan.store.user import display_path

ROOT = Path(__file__).resolve().parents[2]
GiB = 1024**3


def _run(cmd, env=None, cwd=None, timeout=120):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}: {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A venv holding only the wheel of this checkout; its dependencies come from this interpreter's
    site-packages, added as plain path entries so that no editable install of the checkout comes with them."""
    pytest.importorskip("hatchling", reason="building the wheel offline needs hatchling (the build backend)")
    tmp = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", tmp / "dist", ROOT])
    wheel, = (tmp / "dist").glob("vramplan-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())
    parents = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "zz_parent_site.pth").write_text("".join(f"{p}\n" for p in parents))
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "--ignore-installed", "-q", wheel])
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VRAMPLAN_CALIBRATION")}
    env.update(VRAMPLAN_DATA_DIR=str(tmp / "data"), PYTHONNOUSERSITE="1")
    return {"venv": venv, "python": python, "site": site, "tmp": tmp, "env": env,
            "vramplan": python.parent / "vramplan", "data": tmp / "data" / "calibration"}


def vramplan(inst, *args):
    return _run([inst["vramplan"], *args], env=inst["env"], cwd=inst["tmp"])


def test_the_wheel_install_is_not_the_checkout(installed):
    where = _run([installed["python"], "-c", "import vramplan, vramplan.resources as r; "
                  "print(vramplan.__file__); print(r.data_dir('calibration'))"], env=installed["env"],
                 cwd=installed["tmp"]).split()
    assert all(Path(w).is_relative_to(installed["site"]) for w in where), where
    d = json.loads(vramplan(installed, "calibration", "list", "--json"))
    assert {c["gpu_name"] for c in d["calibrations"] if c["kind"] == "shipped"} >= {"NVIDIA H200"}
    assert d["user_folder"] == str(installed["data"])


def test_a_calibration_made_from_the_wheel_is_used_by_the_next_fit(installed):
    pytest.importorskip("scipy")
    pytest.importorskip("pandas")
    packaged = installed["site"] / "vramplan" / "_data" / "calibration"
    before = sorted(p.name for p in (packaged / "fits").iterdir())
    shipped_line = json.loads(vramplan(installed, "fit", "llama-3.2-1b", "--gpu", "H200", "--json"))["calibration"]
    assert shipped_line.startswith("calibrated on NVIDIA H200")
    runs = installed["data"] / "runs"
    runs.mkdir(parents=True)
    shutil.copy(packaged / "runs" / "nvidia-h200.jsonl", runs)
    out = vramplan(installed, "calibrate", "--refit")
    assert f"wrote {installed['data'] / 'fits' / 'nvidia-h200.json'}" in out
    assert sorted(p.name for p in (packaged / "fits").iterdir()) == before  # nothing written into the package
    fit = json.loads((installed["data"] / "fits" / "nvidia-h200.json").read_text())
    assert fit == json.loads((packaged / "fits" / "nvidia-h200.json").read_text())
    d = json.loads(vramplan(installed, "fit", "llama-3.2-1b", "--gpu", "H200", "--json"))
    assert d["calibration"].startswith(f"your calibration in {display_path(installed['data'])} (60 runs")
    assert d["recommended"]["components"]["cuda_context"] == fit["params"]["context_bytes"]
    # a shared calibration imported into the user folder changes the next fit's numbers
    fit["params"]["context_bytes"] = 3 * GiB
    shared = installed["tmp"] / "shared.json"
    shared.write_text(json.dumps({"format": "vramplan-calibration", "version": 1, "fit": fit, "records": {}}))
    vramplan(installed, "calibration", "import", shared, "--force")
    d = json.loads(vramplan(installed, "fit", "llama-3.2-1b", "--gpu", "H200", "--json"))
    assert d["recommended"]["components"]["cuda_context"] == 3 * GiB
    listed = json.loads(vramplan(installed, "calibration", "list", "--json"))["calibrations"]
    assert any(c["kind"] == "user" and c["in_use"] and c["gpu_name"] == "NVIDIA H200" for c in listed)
