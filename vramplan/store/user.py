"""Where a user's own calibrations live: the user data folder (XDG through platformdirs), VRAMPLAN_DATA_DIR
instead of it, VRAMPLAN_CALIBRATION and a command's --calibration on top.

Never the installed package: site-packages is replaced on upgrade and often not writable, so measurements
written there are lost.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

DATA_ENV = "VRAMPLAN_DATA_DIR"
CALIBRATION_ENV = "VRAMPLAN_CALIBRATION"

# The --calibration of the command being run (set by cli.calibration around the command): a module value
# rather than an argument because the planning commands build their Calibrations without being handed one.
_selected: Path | None = None


def user_data_dir() -> Path:
    """VRAMPLAN_DATA_DIR, else the platform's user data folder for vramplan (~/.local/share/vramplan on Linux)."""
    given = os.environ.get(DATA_ENV, "").strip()
    if given:
        return Path(given).expanduser()
    from platformdirs import user_data_dir as platform_dir  # imported only here: the planning path rarely needs it
    return Path(platform_dir("vramplan", appauthor=False))


def user_calibration_dir() -> Path:
    """The folder `vramplan calibrate` writes to by default and every planning command reads."""
    return user_data_dir() / "calibration"


def env_calibration() -> Path | None:
    given = os.environ.get(CALIBRATION_ENV, "").strip()
    return Path(given).expanduser() if given else None


def selected_calibration() -> Path | None:
    return _selected


@contextmanager
def using_calibration(path: str | Path | None):
    """Within the block, Calibrations.for_user() also reads `path` (a command's --calibration)."""
    global _selected
    before, _selected = _selected, (Path(path).expanduser() if path else None)
    try:
        yield
    finally:
        _selected = before


def display_path(path: Path) -> str:
    """A path as a user would type it: ~ for the home folder."""
    path = Path(path)
    try:
        return "~/" + str(path.resolve().relative_to(Path.home().resolve()))
    except (ValueError, RuntimeError, OSError):
        return str(path)


def inside_package(path: Path) -> bool:
    """Whether path is inside the installed package (where a wheel keeps its data)."""
    package = Path(__file__).resolve().parent.parent
    try:
        Path(path).resolve().relative_to(package)
        return True
    except ValueError:
        return False
