"""Which calibration applies to a GPU: its own fit, else the nearest calibrated GPU's, said out loud.

Fits come in layers: the ones shipped with the package, then the user's own: the user data folder (where
`vramplan calibrate` writes), VRAMPLAN_CALIBRATION, a command's --calibration. A later layer's fit for a GPU
replaces an earlier one's for that GPU, so a card measured by its owner is planned with its own numbers, and
the calibration line says which fit was used and where it came from.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import VramplanError
from ..memory.calibration import DEFAULT_CALIBRATION, Calibration
from ..profiles.gpus import GpuSpec
from ..resources import data_dir
from ..calibrate.records import gpu_slug
from . import user

SHIPPED, USER, ENV, FLAG, FOLDER = "shipped", "user", "env", "flag", "folder"


@dataclass(frozen=True)
class Origin:
    """Where a layer of fits was read: its kind (shipped, user, env, flag, folder) and its path."""

    kind: str
    path: Path

    @property
    def where(self) -> str:
        """Short words for tables: 'shipped', or the folder and what pointed at it."""
        if self.kind == SHIPPED:
            return "shipped"
        shown = user.display_path(self.path)
        return {ENV: f"{shown} (VRAMPLAN_CALIBRATION)", FLAG: f"{shown} (--calibration)"}.get(self.kind, shown)

    def describe(self) -> str:
        """The head of a calibration line for a fit of this layer."""
        shown = user.display_path(self.path)
        return {USER: f"your calibration in {shown}", ENV: f"{user.CALIBRATION_ENV}={shown}",
                FLAG: f"--calibration {shown}"}.get(self.kind, f"the calibration in {shown}")


def accuracy_words(error: dict) -> str:
    """'peak LOAO MAE 1.8%' (the memory peak's error, leave-one-architecture-out), else the in-sample MAE, else
    that none was measured: 'peak' so that it is not read as the speed line's."""
    loao, mae = (error or {}).get("loao_mae_pct"), (error or {}).get("mae_pct")
    if isinstance(loao, (int, float)) and not math.isnan(loao):
        return f"peak LOAO MAE {loao:.1f}%"
    if isinstance(mae, (int, float)) and not math.isnan(mae):
        return f"peak MAE {mae:.1f}% in-sample"
    return "accuracy not measured"


def fit_key(fit: dict) -> str:
    """The GPU a fit is for, as one key: the slug of the name the driver reports."""
    return gpu_slug(str(fit.get("gpu_name", "")))


def same_gpu(a: dict, b: dict) -> bool:
    return fit_key(a) == fit_key(b) or (bool(a.get("profile")) and a.get("profile") == b.get("profile"))


_NUMBER_FIELDS = {name for name, f in Calibration.__dataclass_fields__.items()
                  if isinstance(f.default, (int, float)) and name != "runs"}


def check_fit(fit, where: str) -> dict:
    """A fit read from a user's file, checked before any number is planned from it (one-line error if not)."""
    def bad(what: str):
        return VramplanError(f"{where}: not a vramplan calibration fit ({what})",
                             hint="`vramplan calibrate --refit --out DIR` rewrites fits from their records; "
                                  "or remove the file")
    if not isinstance(fit, dict):
        raise bad("not a JSON object")
    if not isinstance(fit.get("gpu_name"), str) or not fit["gpu_name"].strip() or not fit_key(fit):
        raise bad("no gpu_name")
    params = fit.get("params")
    if not isinstance(params, dict):
        raise bad("no params object")
    for name, value in params.items():
        if name in _NUMBER_FIELDS and (isinstance(value, bool) or not isinstance(value, (int, float))
                                       or not math.isfinite(value) or value < 0):
            raise bad(f"params.{name} is {value!r}, not a number >= 0")
    stack = params.get("stack_slack_bytes", {})
    if not isinstance(stack, dict) or any(isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0
                                          for v in stack.values()):
        raise bad("params.stack_slack_bytes is not an object of byte counts")
    fraction = params.get("driver_reserved_fraction", 0)
    if fraction >= 1:
        raise bad(f"params.driver_reserved_fraction is {fraction}, not below 1")
    runs = fit.get("runs", 0)
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 0:
        raise bad(f"runs is {runs!r}")
    if not isinstance(fit.get("error", {}), dict):
        raise bad("error is not an object")
    for key in ("memory_mib", "compute_capability"):
        if key in fit and (isinstance(fit[key], bool) or not isinstance(fit[key], (int, float))):
            raise bad(f"{key} is {fit[key]!r}")
    return fit


@lru_cache(maxsize=None)
def load_fits(calib_dir: str | None = None) -> tuple[dict, ...]:
    """The fits of a calibration folder (its fits/*.json); the package's when none is named. Cached: the
    shipped and explicitly named folders do not change while a process plans."""
    folder = Path(calib_dir) if calib_dir else data_dir("calibration")
    return tuple(json.loads(p.read_text()) for p in sorted((folder / "fits").glob("*.json")))


def read_fit_file(path: Path) -> dict:
    """One fit file, checked; an exported calibration (vramplan calibration export) gives its fit."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise VramplanError(f"{path}: cannot be read as JSON ({type(exc).__name__})",
                            hint="a calibration is a fits/*.json file or one written by `vramplan calibration "
                                 "export`") from None
    if isinstance(data, dict) and "fit" in data and "params" not in data:
        data = data["fit"]
    return check_fit(data, str(path))


def read_user_fits(path: Path, required: bool, what: str) -> tuple[dict, ...]:
    """The fits a user's folder (its fits/*.json) or single file holds, each checked. required: the path was
    asked for by name (flag, environment variable), so its absence is an error rather than nothing."""
    path = Path(path)
    if path.is_file():
        return (read_fit_file(path),)
    if not path.exists():
        if required:
            raise VramplanError(f"{what} {path}: no such file or folder",
                                hint="name a calibration folder (with fits/) or an exported calibration file")
        return ()
    fits = sorted((path / "fits").glob("*.json")) if path.is_dir() else []
    if required and not fits:
        raise VramplanError(f"{what} {path}: no fits/*.json in this folder",
                            hint="`vramplan calibrate --refit --out DIR` solves them from DIR/runs")
    return tuple(read_fit_file(p) for p in fits)


@dataclass(frozen=True)
class Layer:
    """One source of fits: where it was read and what it holds."""

    origin: Origin
    fits: tuple[dict, ...]


def user_layers(calibration: str | Path | None = None) -> list[Layer]:
    """The layers a planning command reads, lowest first: shipped, user folder, VRAMPLAN_CALIBRATION,
    --calibration (calibration, else the one the running command was given)."""
    layers = [Layer(Origin(SHIPPED, data_dir("calibration")), load_fits(None))]
    folder = user.user_calibration_dir()
    layers.append(Layer(Origin(USER, folder), read_user_fits(folder, False, "user calibration folder")))
    env = user.env_calibration()
    if env is not None:
        layers.append(Layer(Origin(ENV, env), read_user_fits(env, True, user.CALIBRATION_ENV)))
    flag = Path(calibration).expanduser() if calibration else user.selected_calibration()
    if flag is not None:
        layers.append(Layer(Origin(FLAG, flag), read_user_fits(flag, True, "--calibration")))
    return layers


def merge(layers: list[Layer]) -> tuple[tuple[dict, ...], tuple[Origin, ...]]:
    """One fit per GPU: a later layer's replaces an earlier one's."""
    fits: list[tuple[dict, Origin]] = []
    for layer in layers:
        for fit in layer.fits:
            fits = [(f, o) for f, o in fits if not same_gpu(f, fit)] + [(fit, layer.origin)]
    return tuple(f for f, _ in fits), tuple(o for _, o in fits)


def _matches(fit: dict, gpu: GpuSpec) -> bool:
    names = {gpu_slug(n) for n in (gpu.name, *gpu.aliases)}
    return fit.get("profile") == gpu.name or gpu_slug(fit.get("gpu_name", "")) in names


def _distance(fit: dict, gpu: GpuSpec) -> tuple:
    """Same architecture first, then closest compute capability, then closest memory size."""
    return (fit.get("architecture") != gpu.architecture,
            abs(float(fit.get("compute_capability", 0)) - gpu.compute_capability),
            abs(fit.get("memory_mib", 0) - gpu.memory_mib))


def pick(fits: tuple[dict, ...], gpu: GpuSpec) -> tuple[int, bool]:
    """Which of fits a GPU plans with (the last of its own: later layers come later), and whether it is its own
    rather than the nearest calibrated GPU's."""
    own = [i for i, f in enumerate(fits) if _matches(f, gpu)]
    if own:
        return own[-1], True
    return min(range(len(fits)), key=lambda i: _distance(fits[i], gpu)), False


def card_driver_share(gpu: GpuSpec, borrowed: float) -> float:
    """The driver's share of a card that is not calibrated itself (its own calibration measures it): from the total
    PyTorch reports where its profile cites one; else the borrowed share, and off Hopper at least the smallest
    share of the cited cards there (the Hopper share, 0.4-0.6%, is smaller than every one of them)."""
    from ..profiles.catalog import cited_driver_share_floor
    if gpu.torch_total_gib:
        return 1 - gpu.torch_total_bytes / gpu.memory_bytes
    return max(borrowed, cited_driver_share_floor()) if gpu.architecture != "hopper" else borrowed


def params_from_fits(fits: tuple[dict, ...], gpu: GpuSpec, origins: tuple[Origin, ...] | None = None) -> Calibration:
    """The parameters for a GPU from a set of fits: its own, else the nearest calibrated GPU's (said in source).
    origins (one per fit): where each came from; a user's fit says so in source, a shipped one reads as always."""
    if not fits:
        return DEFAULT_CALIBRATION
    origins = origins or (None,) * len(fits)
    index, own = pick(fits, gpu)
    fit, origin = fits[index], origins[index]
    params = dict(fit["params"])
    counted = f"{fit.get('runs', 0)} runs, {accuracy_words(fit.get('error', {}))}"
    if origin is None or origin.kind == SHIPPED:
        what = f"{fit['gpu_name']} ({counted})"
    else:
        what = f"{fit['gpu_name']}, {origin.describe()} ({counted})"
    if not own:
        # the allocator's behaviour transfers; the driver's share belongs to the card
        params["driver_reserved_fraction"] = card_driver_share(gpu, params.get("driver_reserved_fraction", 0.0))
        params["source"] = f"nearest calibrated GPU: {what}; {gpu.name} itself is not calibrated"
    elif origin is None or origin.kind == SHIPPED:
        params["source"] = f"calibrated on {what}"
    else:
        params["source"] = f"{origin.describe()} ({counted})"
    lent = [n for n in fit.get("multi_gpu_from") or [] if n != fit["gpu_name"]]
    if lent:
        params["source"] += f"; multi-GPU parameters measured on {', '.join(lent)}"
    params["runs"] = fit.get("runs", 0)
    params["error"] = fit.get("error", {})
    return Calibration(**{k: v for k, v in params.items() if k in Calibration.__dataclass_fields__})


class Calibrations:
    """A set of fitted calibrations, asked per GPU.

    shipped(): what every planning command builds: the package's fits with the user's on top (for_user);
    shipped(DIR): one folder's fits alone; package(): the package's alone; defaults(): the built-in Calibration
    for every GPU."""

    def __init__(self, fits: tuple[dict, ...], name: str, origins: tuple[Origin, ...] | None = None,
                 layers: tuple[Layer, ...] = ()):
        self.fits, self.name = fits, name
        self.origins = origins or (None,) * len(fits)
        self.layers = layers
        self._params: dict[str, Calibration] = {}

    @classmethod
    def shipped(cls, calib_dir: str | Path | None = None) -> "Calibrations":
        if calib_dir:
            return cls(load_fits(str(calib_dir)), str(calib_dir))
        return cls.for_user()

    @classmethod
    def package(cls) -> "Calibrations":
        layer = Layer(Origin(SHIPPED, data_dir("calibration")), load_fits(None))
        return cls(layer.fits, "shipped", (layer.origin,) * len(layer.fits), (layer,))

    @classmethod
    def for_user(cls, calibration: str | Path | None = None) -> "Calibrations":
        """Shipped fits, then the user folder's, VRAMPLAN_CALIBRATION's and --calibration's (calibration, else
        the running command's), each replacing the ones before for its GPU."""
        layers = user_layers(calibration)
        fits, origins = merge(layers)
        name = "shipped" if all(not layer.fits for layer in layers[1:]) else \
            "shipped + " + ", ".join(layer.origin.where for layer in layers[1:] if layer.fits)
        return cls(fits, name, origins, tuple(layers))

    @classmethod
    def defaults(cls) -> "Calibrations":
        return cls((), "built-in defaults")

    def params(self, gpu: GpuSpec) -> Calibration:
        if gpu.name not in self._params:
            self._params[gpu.name] = params_from_fits(self.fits, gpu, self.origins)
        return self._params[gpu.name]

    def fit_in_use(self, gpu: GpuSpec) -> tuple[dict, Origin | None, bool] | None:
        """The fit a GPU plans with, where it came from, and whether it is the GPU's own (else the nearest
        calibrated GPU's); None without any fit."""
        if not self.fits:
            return None
        index, own = pick(self.fits, gpu)
        return self.fits[index], self.origins[index], own


def calibration_for(gpu: GpuSpec, calib_dir: str | None = None) -> Calibration:
    """The calibration for one GPU: shipped with the user's on top, or calib_dir's alone."""
    return Calibrations.shipped(calib_dir).params(gpu)
