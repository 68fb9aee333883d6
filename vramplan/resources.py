"""Where the data files live: inside an installed wheel, or at the root of a checkout."""
from pathlib import Path

_PKG = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """profiles/ or calibration/. The wheel carries them under vramplan/_data (see pyproject.toml)."""
    packaged = _PKG / "_data" / name
    if packaged.is_dir():
        return packaged
    return _PKG.parent / name
