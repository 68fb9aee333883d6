"""`vramplan calibration list|show|export|import`: the calibrations a planning command reads (shipped and the
user's), one in detail, one as a single file to share, and a shared one into the user folder.

Also gives every planning command its --calibration DIR (see attach_calibration_flag).
"""
from __future__ import annotations

import argparse
import functools
import os
from pathlib import Path

from ..errors import VramplanError
from ..store import user
from ..store.calibrations import SHIPPED, Calibrations, Origin, accuracy_words, fit_key, same_gpu
from ..store.share import export_document, import_into, read_export, records_of, write_export
from ..calibrate.records import gpu_slug
from ..units import MiB
from .common import print_json

# The commands that plan, and so read calibrations: each takes --calibration DIR.
PLANNING_COMMANDS = ("estimate", "fit", "check", "table", "train", "tui")


def add_calibration_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calibration", metavar="DIR", default=None,
                   help="also read this calibration folder (with fits/) or exported calibration file; its fit for "
                        "a GPU replaces the shipped one and the user folder's (also: VRAMPLAN_CALIBRATION)")


def attach_calibration_flag(sub) -> None:
    """--calibration on every planning command already registered, and the command run with it selected.

    Done here so that where calibrations come from stays in one place; a command that declares its own
    --calibration (and passes it to Calibrations.for_user) is left as it is."""
    for name in PLANNING_COMMANDS:
        p = sub.choices.get(name)
        if p is None or "--calibration" in p._option_string_actions:
            continue
        add_calibration_arg(p)
        func = p.get_default("func")
        if func is not None:
            p.set_defaults(func=_with_calibration(func))


def _with_calibration(func):
    @functools.wraps(func)
    def run(args):
        with user.using_calibration(getattr(args, "calibration", None)):
            return func(args)
    return run


def register(sub) -> None:
    attach_calibration_flag(sub)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON object")
    add_calibration_arg(common)
    p = sub.add_parser("calibration", help="list, show, export and import calibrations",
                       description="The calibrations the planning commands read: the shipped ones, then the user "
                                   "folder's (where `vramplan calibrate` writes; VRAMPLAN_DATA_DIR moves it), "
                                   "VRAMPLAN_CALIBRATION's and --calibration's. A later one's fit for a GPU "
                                   "replaces an earlier one's.")
    # --json before the action too (`vramplan calibration --json list`); its own dest, since the action's
    # parser would reset a shared one to its default
    p.add_argument("--json", dest="json_before", action="store_true", help="print one JSON object")
    p.set_defaults(func=_no_action)
    what = p.add_subparsers(dest="calibration_command", metavar="ACTION")
    ls = what.add_parser("list", parents=[common], help="every known fit: GPU, runs, accuracy, where, in use")
    ls.set_defaults(func=run_list)
    show = what.add_parser("show", parents=[common], help="one GPU's fit: its parameters and accuracy")
    show.add_argument("gpu", metavar="GPU", help="a calibrated GPU's name (as in `list`) or a catalog GPU")
    show.set_defaults(func=run_show)
    export = what.add_parser("export", parents=[common], help="one GPU's fit and its records as one JSON file")
    export.add_argument("gpu", metavar="GPU")
    export.add_argument("-o", "--output", metavar="FILE", required=True, type=Path, help="file to write")
    export.add_argument("--force", action="store_true", help="replace FILE if it exists")
    export.set_defaults(func=run_export)
    imp = what.add_parser("import", parents=[common], help="an exported calibration into the user folder")
    imp.add_argument("file", metavar="FILE", type=Path)
    imp.add_argument("--force", action="store_true", help="replace the user folder's fit of that GPU")
    imp.set_defaults(func=run_import)


def _no_action(args) -> int:
    raise VramplanError("calibration: name an action: list, show GPU, export GPU -o FILE, import FILE",
                        hint="`vramplan calibration --help` says what each does")


def _json(args) -> bool:
    return bool(getattr(args, "json", False) or getattr(args, "json_before", False))


def _entries(cal: Calibrations) -> list[dict]:
    """Every fit of every layer, with whether it is the one in use for its GPU and, if not, what replaces it."""
    rows = []
    for layer in cal.layers:
        for fit in layer.fits:
            winner = next((o for f, o in zip(cal.fits, cal.origins) if same_gpu(f, fit)), None)
            in_use = any(f is fit for f in cal.fits)
            rows.append({"gpu_name": fit["gpu_name"], "profile": fit.get("profile"), "runs": fit.get("runs", 0),
                         "mae_pct": (fit.get("error") or {}).get("mae_pct"),
                         "loao_mae_pct": (fit.get("error") or {}).get("loao_mae_pct"),
                         "accuracy": accuracy_words(fit.get("error", {})),
                         "kind": layer.origin.kind, "where": layer.origin.where, "path": str(layer.origin.path),
                         "in_use": in_use, "replaced_by": None if in_use or winner is None else winner.where,
                         "_fit": fit, "_origin": layer.origin})
    return rows


def _public(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _user_folder() -> dict:
    folder = user.user_calibration_dir()
    return {"path": str(folder), "shown": user.display_path(folder),
            "set_by": user.DATA_ENV if os.environ.get(user.DATA_ENV, "").strip() else "platformdirs"}


def run_list(args) -> int:
    cal = Calibrations.for_user(args.calibration)
    rows = _entries(cal)
    folder = _user_folder()
    if _json(args):
        print_json({"calibrations": [_public(r) for r in rows], "user_folder": folder["path"]})
        return 0
    print(f"{'GPU':24s} {'profile':10s} {'runs':>5s}  {'accuracy':22s} {'in use':6s}  where")
    for r in rows:
        use = "yes" if r["in_use"] else "no"
        where = r["where"] + (f" (replaced by {r['replaced_by']})" if r["replaced_by"] else "")
        print(f"{r['gpu_name']:24s} {r['profile'] or '-':10s} {r['runs']:5d}  {r['accuracy']:22s} {use:6s}  {where}")
    print(f"\nyour calibrations: {folder['shown']}"
          + (f" (from {user.DATA_ENV})" if folder["set_by"] == user.DATA_ENV else "")
          + ("" if any(r["kind"] == "user" for r in rows) else "; none yet: `vramplan calibrate` writes there"))
    return 0


def _find(cal: Calibrations, name: str) -> tuple[dict, Origin | None, str | None]:
    """The fit in use for GPU `name` (a calibrated GPU's name, a profile or a catalog GPU). The third value
    says what stood in when the GPU has no fit of its own (the nearest calibrated GPU's), else None."""
    if not name.strip():
        raise VramplanError("GPU: empty name", hint="`vramplan calibration list` shows the calibrated GPUs")
    key = gpu_slug(name)
    for fit, origin in zip(reversed(cal.fits), reversed(cal.origins)):
        if fit_key(fit) == key or str(fit.get("profile", "")).lower() == name.strip().lower():
            return fit, origin, None
    from ..profiles import find_gpu
    try:
        gpu = find_gpu(name)
    except VramplanError:
        known = ", ".join(sorted({f["gpu_name"] for f in cal.fits})) or "none"
        raise VramplanError(f"no calibration of GPU {name!r}",
                            hint=f"calibrated: {known}; `vramplan calibration list` shows them") from None
    found = cal.fit_in_use(gpu)
    if found is None:
        raise VramplanError(f"{gpu.name} is not calibrated and no calibration is known")
    fit, origin, own = found
    return fit, origin, None if own else gpu.name


def _size(name: str, value) -> str:
    if name.endswith("_bytes") and isinstance(value, (int, float)):
        return f"{value:.0f} ({value / MiB:.0f} MiB)"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v / MiB:.0f} MiB" if isinstance(v, (int, float)) else f"{k} {v}"
                         for k, v in value.items())
    return f"{value}"


def _speed_words(profile: str | None) -> str | None:
    """Where the GPU's tokens/s come from (its speed fit, its datasheet, this machine's host fit)."""
    if not profile:
        return None
    from ..profiles import find_gpu
    from ..speed_fits import speed_source
    try:
        gpu = find_gpu(profile)
    except VramplanError:
        return None
    return speed_source(gpu)  # a broken host fit is an error here too


def run_show(args) -> int:
    cal = Calibrations.for_user(args.calibration)
    fit, origin, stands_in_for = _find(cal, args.gpu)
    where = origin.where if origin else "shipped"
    head = (origin.describe() if origin and origin.kind != SHIPPED else "shipped calibration")
    error = fit.get("error") or {}
    speed = _speed_words(stands_in_for or fit.get("profile"))
    if _json(args):
        print_json({"gpu_name": fit["gpu_name"], "profile": fit.get("profile"), "speed_source": speed,
                    "stands_in_for": stands_in_for, "kind": origin.kind if origin else SHIPPED, "where": where,
                    "path": str(origin.path) if origin else None, "runs": fit.get("runs", 0),
                    "accuracy": accuracy_words(error), "error": error, "params": fit["params"],
                    "fit": fit})
        return 0
    lines = []
    if stands_in_for:
        lines.append(f"{stands_in_for} is not calibrated; it plans with the nearest calibrated GPU's fit:")
    lines.append(f"{fit['gpu_name']}" + (f" (profile {fit['profile']})" if fit.get("profile") else "")
                 + f": {head}, {fit.get('runs', 0)} runs, {accuracy_words(error)}")
    if origin and origin.kind != SHIPPED:
        lines.append(f"  file: {Path(origin.path) / 'fits' / (fit_key(fit) + '.json')}"
                     if Path(origin.path).is_dir() else f"  file: {origin.path}")
    versions = fit.get("versions") or {}
    if versions or fit.get("driver"):
        lines.append("  measured with: " + ", ".join([f"{k} {v}" for k, v in sorted(versions.items())]
                                                    + ([f"driver {fit['driver']}"] if fit.get("driver") else [])))
    if fit.get("architectures"):
        lines.append("  architectures: " + ", ".join(fit["architectures"]))
    if error:
        lines.append("  accuracy: " + ", ".join(f"{k} {v}" for k, v in error.items()))
    if speed:
        lines.append(f"  speed: {speed}")
    lines.append("  parameters:")
    width = max((len(k) for k in fit["params"]), default=0)
    lines += [f"    {k:{width}s}  {_size(k, v)}" for k, v in fit["params"].items()]
    print("\n".join(lines))
    return 0


def run_export(args) -> int:
    cal = Calibrations.for_user(args.calibration)
    fit, origin, stands_in_for = _find(cal, args.gpu)
    if stands_in_for:
        raise VramplanError(f"{stands_in_for} has no calibration of its own; nothing was written",
                            hint=f"export {fit['gpu_name']} (the one it borrows), or run `vramplan calibrate` on it")
    folder = Path(origin.path) if origin else None
    records = records_of(folder, fit) if folder is not None and folder.is_dir() else {}
    if folder is not None and folder.is_file():  # a fit read from an exported file: its records are there
        try:
            _, records = read_export(folder)
        except VramplanError:
            records = {}
    document = export_document(fit, origin, records)
    try:
        write_export(args.output, document, args.force)
    except OSError as exc:
        raise VramplanError(f"-o {args.output}: cannot write ({exc.strerror or exc})") from None
    counts = {k: len(v) for k, v in document["records"].items()}
    if _json(args):
        print_json({"written": str(args.output), "gpu_name": fit["gpu_name"], "records": counts})
    else:
        print(f"wrote {args.output}: {fit['gpu_name']} ({origin.where if origin else 'shipped'}), "
              f"{counts.get('runs', 0)} run records, {counts.get('multi_gpu', 0)} multi-GPU records")
    return 0


def run_import(args) -> int:
    fit, records = read_export(args.file)
    folder = user.user_calibration_dir()
    if user.inside_package(folder):
        raise VramplanError(f"the user calibration folder {folder} is inside the installed package",
                            hint=f"set {user.DATA_ENV} to a folder of your own")
    try:
        written = import_into(folder, fit, records, args.force)
    except OSError as exc:
        raise VramplanError(f"cannot write into {folder} ({exc.strerror or exc}); nothing usable was written",
                            hint=f"set {user.DATA_ENV} to a writable folder") from None
    if _json(args):
        print_json({"imported": fit["gpu_name"], "folder": str(folder), "written": [str(p) for p in written]})
    else:
        print(f"imported {fit['gpu_name']} ({fit.get('runs', 0)} runs, {accuracy_words(fit.get('error', {}))}) "
              f"into {user.display_path(folder)}; planning on this GPU now uses it")
    return 0
