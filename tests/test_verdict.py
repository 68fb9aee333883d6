import sys

import pytest

import vramplan
from vramplan import decisions as D
from vramplan.errors import VramplanError
from vramplan.units import GiB


def test_preflight_api_fits_and_explains():
    v = vramplan.preflight("llama-3.1-8b", gpu="T4", seq=1024)
    assert v.fits and bool(v) and v.headroom_bytes > 0 and v.nearest_fit is None
    needs = v.advice[0]
    assert v.breakdown.peak_bytes == v.peak_bytes and needs.code == D.NEEDS and len(v.advice) == 1
    assert needs["required_bytes"] == v.required_bytes and needs["component"] == v.breakdown.dominant()[0]


def test_preflight_api_names_the_nearest_plan_that_fits():
    v = vramplan.preflight("llama-3.1-8b", gpu="T4", seq=2048, batch=4, grad_accum=4)
    assert not v.fits and v.headroom_bytes < 0
    instead = v.advice[1]
    assert v.nearest_fit["batch"] * v.nearest_fit["grad_accum"] == 16 and instead.code == D.FITS_INSTEAD
    assert (instead["batch"], instead["grad_accum"]) == (v.nearest_fit["batch"], v.nearest_fit["grad_accum"])
    assert v.to_dict()["nearest_fit"] == v.nearest_fit


def test_preflight_gpu_auto_without_a_gpu_is_a_clear_error(monkeypatch):
    import vramplan.verdict as verdict
    monkeypatch.setattr(verdict, "detect_free_memory", lambda count=1: None)
    with pytest.raises(VramplanError, match="no GPU detected"):
        vramplan.preflight("llama-3.1-8b")


def test_preflight_gpu_auto_uses_free_memory(monkeypatch):
    import vramplan.verdict as verdict
    monkeypatch.setattr(verdict, "detect_free_memory", lambda count=1: ("NVIDIA H100 80GB HBM3", 10 * GiB))
    v = vramplan.preflight("llama-3.1-8b")
    assert v.capacity_bytes == 10 * GiB and not v.fits


def test_the_api_imports_no_torch():
    import subprocess
    code = "import sys, vramplan; vramplan.preflight('qwen2.5-7b', gpu='T4'); assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
