import pytest


def pytest_collection_modifyitems(config, items):
    """GPU tests run only where CUDA and the [train] extra are present."""
    try:
        import torch
        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if has_gpu:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def no_user_calibration(tmp_path_factory, monkeypatch):
    """Tests never read or write the real user data folder: a user's own calibration would move the figures."""
    monkeypatch.setenv("VRAMPLAN_DATA_DIR", str(tmp_path_factory.mktemp("vramplan-data")))
    monkeypatch.delenv("VRAMPLAN_CALIBRATION", raising=False)


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache that HF_HUB_CACHE points at; nothing of the user's own is read."""
    cache = tmp_path / "hub"
    cache.mkdir()
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME", "VRAMPLAN_DOWNLOAD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache
