import pytest


@pytest.fixture(autouse=True)
def user_folder(tmp_path, monkeypatch):
    """Every test here reads and writes a user data folder of its own, never the real home's."""
    monkeypatch.setenv("VRAMPLAN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("VRAMPLAN_CALIBRATION", raising=False)
    return tmp_path / "data" / "calibration"
