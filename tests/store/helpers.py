"""User calibrations made from the shipped ones, changed where a test needs to see which one was used."""
import json
from pathlib import Path

from vramplan.resources import data_dir

GiB = 1024**3


def shipped_fit(slug: str = "nvidia-h200") -> dict:
    return json.loads((data_dir("calibration") / "fits" / f"{slug}.json").read_text())


def write_fit(folder: Path, fit: dict) -> Path:
    from vramplan.calibrate.records import gpu_slug
    path = Path(folder) / "fits" / f"{gpu_slug(fit['gpu_name'])}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fit))
    return path


def changed_fit(context_bytes: int = 3 * GiB, runs: int = 12, slug: str = "nvidia-h200") -> dict:
    fit = shipped_fit(slug)
    fit["params"]["context_bytes"] = context_bytes
    fit["runs"] = runs
    return fit
