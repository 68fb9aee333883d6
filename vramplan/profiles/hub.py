"""Hub ids outside the catalog: their config.json from the local Hugging Face cache, or (with consent) the hub.

Read offline by default, from the cache layout huggingface_hub writes
(`<cache>/models--ORG--NAME/refs/main` holds the revision, `snapshots/<revision>/config.json` the file), with
plain file reads: importing huggingface_hub or transformers costs more than a whole plan, and a catalog name
must not pay for it. The cache is `HF_HUB_CACHE`, else `HUGGINGFACE_HUB_CACHE`, else `HF_HOME/hub`, else
`XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub` (huggingface_hub's own order).

`VRAMPLAN_DOWNLOAD=1` lets vramplan download that one config.json (no weights) through huggingface_hub, which is
then imported; gated repositories need a token (`hf auth login` or `HF_TOKEN`) and an accepted licence.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..errors import VramplanError
from .models import ModelArch, arch_from_config

HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+")
DOWNLOAD_ENV = "VRAMPLAN_DOWNLOAD"


def is_hub_id(name: str) -> bool:
    return bool(HUB_ID.fullmatch(name)) and ".." not in name and not name.endswith(".json")


def cache_dir() -> Path:
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.path.expandvars(os.environ[var])).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def _repo_folder(cache: Path, repo_id: str) -> Path | None:
    """models--ORG--NAME; the hub treats repo ids case-insensitively, the cache keeps the spelling used."""
    exact = cache / ("models--" + repo_id.replace("/", "--"))
    if exact.is_dir():
        return exact
    want = exact.name.lower()
    try:
        return next((p for p in cache.iterdir() if p.name.lower() == want and p.is_dir()), None)
    except OSError:
        return None


def cached_config(repo_id: str, cache: Path | None = None) -> tuple[Path, str] | None:
    """(config.json path, revision) from the cache, or None."""
    return cached_file(repo_id, "config.json", cache)


def cached_file(repo_id: str, filename: str, cache: Path | None = None) -> tuple[Path, str] | None:
    """(path of one file of the repository, revision) from the cache, or None (config.json, tokenizer.json).
    refs/main decides; else the newest snapshot that holds the file."""
    folder = _repo_folder(cache or cache_dir(), repo_id)
    if folder is None:
        return None
    ref = folder / "refs" / "main"
    try:
        revision = ref.read_text().strip() if ref.is_file() else ""
    except OSError:
        revision = ""
    if revision and (folder / "snapshots" / revision / filename).is_file():
        return folder / "snapshots" / revision / filename, revision
    snaps = [p for p in (folder / "snapshots").glob(f"*/{filename}") if p.is_file()]
    if not snaps:
        return None
    newest = max(snaps, key=lambda p: p.stat().st_mtime)
    return newest, newest.parent.name


def _read(path: Path, repo_id: str, kind: str, revision: str) -> ModelArch:
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VramplanError(f"{path}: the cached config.json of {repo_id} cannot be read ({exc})",
                            hint=f"download it again: `hf download {repo_id} config.json --force-download`") from None
    source = f"{path}, revision {revision[:12]}" if revision else str(path)
    return arch_from_config(config, name=repo_id, origin=f"{repo_id} ({path})", checkpoint=True, hub_id=repo_id,
                            source=source, source_kind=kind)


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise VramplanError(f"{repo_id}: {DOWNLOAD_ENV}=1 needs huggingface_hub, which is not installed",
                            hint=f"`pip install huggingface_hub`, or: {_how(repo_id, False)}") from None
    try:
        return Path(hf_hub_download(repo_id, "config.json"))
    except Exception as exc:  # huggingface_hub's error classes differ between releases: told apart by name
        names = {c.__name__ for c in type(exc).__mro__}
        if "GatedRepoError" in names:
            why, hint = "the repository is gated", (f"accept its licence on https://huggingface.co/{repo_id}, then "
                                                    "log in (`hf auth login`) or set HF_TOKEN, and run again")
        elif "RepositoryNotFoundError" in names:
            why, hint = ("no such repository on the hub (or it is private)",
                         "check the id; a private repository needs a token (`hf auth login` or HF_TOKEN)")
        elif names & {"LocalEntryNotFoundError", "OfflineModeIsEnabled"} or isinstance(exc, ConnectionError):
            # LocalEntryNotFoundError subclasses EntryNotFoundError: it means offline, not a missing file
            why = "its config.json could not be downloaded: offline (HF_HUB_OFFLINE is set or the hub is unreachable)"
            hint = "connect and unset HF_HUB_OFFLINE, or: " + _how(repo_id, False)
        elif "EntryNotFoundError" in names:
            why, hint = "the repository has no config.json", "pass a local config.json of the model instead"
        else:
            why = f"its config.json could not be downloaded ({type(exc).__name__}: {exc})".replace("\n", " ")
            hint = _how(repo_id, False)
        raise VramplanError(f"{repo_id}: {why}", hint=hint) from None


def _how(repo_id: str, offer_download: bool = True) -> str:
    consent = f"; or set {DOWNLOAD_ENV}=1 to let vramplan download only config.json" if offer_download else ""
    return (f"`hf download {repo_id} config.json` (older huggingface_hub: `huggingface-cli download {repo_id} "
            "config.json`) puts it in the cache where vramplan looks; or pass a local config.json or model folder"
            f"{consent}. Gated models (Llama, Gemma, ...) need a token first: accept the licence on the model page, "
            "then `hf auth login` or set HF_TOKEN")


def resolve_hub_id(repo_id: str, suggestions: list[str] = ()) -> ModelArch:
    """A hub id that is not in the catalog: from the cache, else downloaded with consent, else how to get it."""
    found = cached_config(repo_id)
    if found:
        return _read(found[0], repo_id, "hub-cache", found[1])
    if os.environ.get(DOWNLOAD_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        path = _download(repo_id)
        revision = path.parent.name if path.parent.parent.name == "snapshots" else ""
        return _read(path, repo_id, "hub-download", revision)
    near = f"; catalog models with close names: {', '.join(suggestions)}" if suggestions else ""
    raise VramplanError(f"{repo_id}: not in the catalog, and no config.json for it in the local Hugging Face cache "
                        f"({cache_dir()}){near}", hint=_how(repo_id))
