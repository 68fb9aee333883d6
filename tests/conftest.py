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
