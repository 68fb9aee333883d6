"""Which calibration applies to a GPU: its own fit, else the nearest calibrated GPU's, said out loud."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from ..calibrate.records import gpu_slug
from ..memory.calibration import DEFAULT_CALIBRATION, Calibration
from ..profiles.gpus import GpuSpec
from ..resources import data_dir


@lru_cache(maxsize=None)
def load_fits(calib_dir: str | None = None) -> tuple[dict, ...]:
    folder = Path(calib_dir) if calib_dir else data_dir("calibration")
    return tuple(json.loads(p.read_text()) for p in sorted((folder / "fits").glob("*.json")))


def _matches(fit: dict, gpu: GpuSpec) -> bool:
    names = {gpu_slug(n) for n in (gpu.name, *gpu.aliases)}
    return fit.get("profile") == gpu.name or gpu_slug(fit.get("gpu_name", "")) in names


def _distance(fit: dict, gpu: GpuSpec) -> tuple:
    """Same architecture first, then closest compute capability, then closest memory size."""
    return (fit.get("architecture") != gpu.architecture,
            abs(float(fit.get("compute_capability", 0)) - gpu.compute_capability),
            abs(fit.get("memory_mib", 0) - gpu.memory_mib))


def params_from_fits(fits: tuple[dict, ...], gpu: GpuSpec) -> Calibration:
    """The parameters for a GPU from a set of fits: its own, else the nearest calibrated GPU's (said in source)."""
    if not fits:
        return DEFAULT_CALIBRATION
    own = [f for f in fits if _matches(f, gpu)]
    fit = own[0] if own else min(fits, key=lambda f: _distance(f, gpu))
    params = dict(fit["params"])
    if not own:
        # context and driver reserve belong to the card; the allocator's behaviour transfers
        params["source"] = (f"nearest calibrated GPU: {fit['gpu_name']} ({fit['runs']} runs, "
                            f"LOAO MAE {fit['error'].get('loao_mae_pct', float('nan')):.1f}%); "
                            f"{gpu.name} itself is not calibrated")
    else:
        params["source"] = (f"calibrated on {fit['gpu_name']} ({fit['runs']} runs, "
                            f"LOAO MAE {fit['error'].get('loao_mae_pct', float('nan')):.1f}%)")
    lent = [n for n in fit.get("multi_gpu_from") or [] if n != fit["gpu_name"]]
    if lent:
        params["source"] += f"; multi-GPU parameters measured on {', '.join(lent)}"
    params["runs"] = fit["runs"]
    params["error"] = fit["error"]
    return Calibration(**{k: v for k, v in params.items() if k in Calibration.__dataclass_fields__})


class Calibrations:
    """A set of fitted calibrations, asked per GPU. Built from a folder (shipped(): the package's calibration/),
    or explicitly none (defaults(): the built-in Calibration for every GPU)."""

    def __init__(self, fits: tuple[dict, ...], name: str):
        self.fits, self.name = fits, name
        self._params: dict[str, Calibration] = {}

    @classmethod
    def shipped(cls, calib_dir: str | Path | None = None) -> "Calibrations":
        return cls(load_fits(str(calib_dir) if calib_dir else None), str(calib_dir or "shipped"))

    @classmethod
    def defaults(cls) -> "Calibrations":
        return cls((), "built-in defaults")

    def params(self, gpu: GpuSpec) -> Calibration:
        if gpu.name not in self._params:
            self._params[gpu.name] = params_from_fits(self.fits, gpu)
        return self._params[gpu.name]


def calibration_for(gpu: GpuSpec, calib_dir: str | None = None) -> Calibration:
    """The shipped (or calib_dir's) calibration for one GPU."""
    return Calibrations.shipped(calib_dir).params(gpu)
