"""One calibration as one file to share: a GPU's fit with the raw records it was solved from, and its import
into the user folder.

The records travel with the fit so that whoever imports it can refit (`vramplan calibrate --refit`) with a
newer solver, or check the fit against the runs, rather than trust a list of numbers.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from ..calibrate.records import load_runs
from ..errors import VramplanError
from .calibrations import Origin, check_fit, fit_key

FORMAT = "vramplan-calibration"
VERSION = 1
RECORD_KINDS = ("runs", "multi_gpu")  # the folders of a calibration whose records are kept per GPU


def records_of(folder: Path, fit: dict) -> dict[str, list[dict]]:
    """The recorded runs of a fit's GPU in a calibration folder (runs/<slug>.jsonl, multi_gpu/<slug>.jsonl)."""
    out = {}
    for kind in RECORD_KINDS:
        try:
            out[kind] = load_runs(Path(folder) / kind / f"{fit_key(fit)}.jsonl")
        except (OSError, ValueError):
            out[kind] = []
    return out


def export_document(fit: dict, origin: Origin | None, records: dict[str, list[dict]]) -> dict:
    return {"format": FORMAT, "version": VERSION, "gpu_name": fit["gpu_name"],
            "exported_from": origin.where if origin else None, "fit": fit,
            "records": {kind: list(records.get(kind, [])) for kind in RECORD_KINDS}}


def write_export(path: Path, document: dict, force: bool) -> None:
    path = Path(path)
    if path.is_dir():
        raise VramplanError(f"-o {path}: is a folder", hint="name the file to write, e.g. -o h200.json")
    if path.exists() and not force:
        raise VramplanError(f"-o {path}: already exists; nothing was written", hint="--force replaces it")
    if not path.parent.is_dir():
        raise VramplanError(f"-o {path}: the folder {path.parent} does not exist")
    _write_atomic(path, json.dumps(document, indent=2) + "\n")


def read_export(path: Path) -> tuple[dict, dict[str, list[dict]]]:
    """An exported calibration (or a bare fits/*.json file, which has no records): its checked fit and records."""
    path = Path(path)
    if not path.is_file():
        raise VramplanError(f"{path}: no such file", hint="name a file written by `vramplan calibration export`")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise VramplanError(f"{path}: cannot be read as JSON ({type(exc).__name__})",
                            hint="name a file written by `vramplan calibration export`") from None
    if isinstance(data, dict) and "fit" in data and "params" not in data:
        if data.get("format") not in (None, FORMAT):
            raise VramplanError(f"{path}: format {data.get('format')!r} is not {FORMAT!r}")
        version = data.get("version", VERSION)
        if not isinstance(version, int) or version > VERSION:
            raise VramplanError(f"{path}: calibration file version {version!r} is newer than this vramplan reads "
                                f"({VERSION})", hint="upgrade vramplan")
        fit = check_fit(data["fit"], str(path))
        records = data.get("records", {})
        records = {} if records is None else records
        if not isinstance(records, dict):
            raise VramplanError(f"{path}: records is not an object")
        for kind in RECORD_KINDS:
            rows = records.get(kind, [])
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise VramplanError(f"{path}: records.{kind} is not a list of run records")
        return fit, {kind: records.get(kind, []) for kind in RECORD_KINDS}
    return check_fit(data, str(path)), {kind: [] for kind in RECORD_KINDS}


def import_into(folder: Path, fit: dict, records: dict[str, list[dict]], force: bool) -> list[Path]:
    """Write a fit and its records into a calibration folder; refuses to replace that GPU's fit or records
    unless force. Returns the files written."""
    folder, slug = Path(folder), fit_key(fit)
    targets = {"fit": folder / "fits" / f"{slug}.json"}
    targets.update({kind: folder / kind / f"{slug}.jsonl" for kind in RECORD_KINDS if records.get(kind)})
    existing = [p for p in targets.values() if p.exists()]
    if existing and not force:
        raise VramplanError(f"{folder} already holds a calibration of {fit['gpu_name']} ({existing[0]}); "
                            f"nothing was written", hint="--force replaces it and its records")
    if force:  # the records of the fit being replaced go with it, so fits and records keep agreeing
        for kind in RECORD_KINDS:
            stale = folder / kind / f"{slug}.jsonl"
            if kind not in targets and stale.exists():
                stale.unlink()
    written = []
    for kind, path in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        text = (json.dumps(fit, indent=2) + "\n" if kind == "fit"
                else "".join(json.dumps(r, sort_keys=True) + "\n" for r in records[kind]))
        _write_atomic(path, text)
        written.append(path)
    return written


def _write_atomic(path: Path, text: str) -> None:
    """Write through a temporary file in the same folder, so an interrupted write leaves no half file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
