import sys

import pytest

import vramplan
from vramplan.errors import VramplanError


def test_preflight_api_fits_and_explains():
    v = vramplan.preflight("llama-3.1-8b", gpu="T4", seq=1024)
    assert v.fits and bool(v) and v.headroom_bytes > 0 and v.nearest_fit is None
    assert v.breakdown.peak_bytes == v.peak_bytes and "largest part" in v.advice[0]


def test_preflight_api_names_the_nearest_plan_that_fits():
    v = vramplan.preflight("llama-3.1-8b", gpu="T4", seq=2048, batch=4, grad_accum=4)
    assert not v.fits and v.headroom_bytes < 0
    assert v.nearest_fit["batch"] * v.nearest_fit["grad_accum"] == 16 and "fits instead" in v.advice[1]
    assert v.to_dict()["nearest_fit"] == v.nearest_fit


def test_preflight_gpu_auto_without_a_gpu_is_a_clear_error(monkeypatch):
    import vramplan.verdict as verdict
    monkeypatch.setattr(verdict, "detect_free_memory", lambda count=1: None)
    with pytest.raises(VramplanError, match="no GPU detected"):
        vramplan.preflight("llama-3.1-8b")


def test_preflight_gpu_auto_uses_free_memory(monkeypatch):
    import vramplan.verdict as verdict
    monkeypatch.setattr(verdict, "detect_free_memory", lambda count=1: ("NVIDIA H100 80GB HBM3", 10 * 2**30))
    v = vramplan.preflight("llama-3.1-8b")
    assert v.capacity_bytes == 10 * 2**30 and not v.fits


def test_the_api_imports_no_torch():
    import subprocess
    code = "import sys, vramplan; vramplan.preflight('qwen2.5-7b', gpu='T4'); assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
