"""Name lookup over the catalogs, case-insensitive, with close matches for typos."""
from __future__ import annotations

import difflib
import json
import re
from functools import lru_cache
from pathlib import Path

from ..errors import NotFoundError, VramplanError
from ..resources import data_dir
from .gpus import GpuSpec, load_gpu_file
from .models import ModelArch, load_local_config, load_model_file
from .unmodelled import UnmodelledError


def _key(name: str) -> str:
    """'NVIDIA GeForce RTX 4090' ~ 'rtx-4090' ~ 'RTX4090'."""
    k = name.lower().replace("nvidia", "").replace("geforce", "").replace("tesla", "")
    return re.sub(r"[^a-z0-9.]", "", k)


@lru_cache(maxsize=None)
def gpu_catalog() -> tuple[GpuSpec, ...]:
    return tuple(sorted((load_gpu_file(p) for p in (data_dir("profiles") / "gpus").glob("*.json")),
                        key=lambda g: (g.memory_mib, g.name)))


@lru_cache(maxsize=None)
def _model_files() -> tuple[tuple[ModelArch, ...], dict[str, UnmodelledError]]:
    """The catalog's models, and by name key the refusal of each MoE profile whose family is not measured yet
    (profiles/moe_families.json): named, it is refused with that reason; it is left out of every listing."""
    models, gated = [], {}
    for path in sorted((data_dir("profiles") / "models").glob("*.json")):
        try:
            models.append(load_model_file(path))
        except UnmodelledError as exc:
            if exc.part != "mixture-of-experts":
                raise
            d = json.loads(path.read_text())
            named = f"catalog model {d['name']}" + (f" ({d['hub_id']})" if d.get("hub_id") else "")
            exc = UnmodelledError(exc.part, exc.message.replace(str(path), named, 1), hint=exc.hint)
            for n in (d["name"], *d.get("aliases", ()), *([d["hub_id"]] if d.get("hub_id") else [])):
                gated.setdefault(_key(n), exc)
    return tuple(sorted(models, key=lambda m: (m.total_params, m.name))), gated


def model_catalog() -> tuple[ModelArch, ...]:
    return _model_files()[0]


def _index(items) -> dict[str, object]:
    idx = {}
    for item in items:
        for n in (item.name, *item.aliases, *( [item.hub_id] if getattr(item, "hub_id", None) else [])):
            idx.setdefault(_key(n), item)
    return idx


def _suggest(name: str, items) -> list[str]:
    names = {}
    for item in items:
        for n in (item.name, *item.aliases):
            names.setdefault(_key(n), item.name)
    key = _key(name)
    close = difflib.get_close_matches(key, list(names), n=8, cutoff=0.5)
    close += [k for k in names if len(key) >= 2 and (k.startswith(key) or key in k)]
    out = []
    for c in close:
        if names[c] not in out:
            out.append(names[c])
    return out[:4]


_COUNT = re.compile(r"\s*(\d+)\s*[x×*]\s*(.+)")


def gpu_count(name: str) -> int | None:
    """N of an `NxNAME` GPU name (`2xRTX-4090`: two of them on one host), else None."""
    m = _COUNT.fullmatch(name or "")
    return int(m.group(1)) if m else None


def find_gpu(name: str) -> GpuSpec:
    """A catalog GPU by name or alias; an `NxNAME` prefix names N of them (see gpu_count)."""
    if not name or not name.strip():
        raise VramplanError("--gpu: empty GPU name", hint="`vramplan gpus` lists the catalog")
    m = _COUNT.fullmatch(name)
    if m:
        if not 1 <= int(m.group(1)) <= 16:
            raise VramplanError(f"--gpu {name!r}: {m.group(1)} GPUs is out of range", hint="use 1..16 GPUs of one host")
        name = m.group(2)
    gpu = _index(gpu_catalog()).get(_key(name))
    if gpu is None:
        raise NotFoundError("GPU", name, _suggest(name, gpu_catalog()), "vramplan gpus")
    return gpu


def find_model(name: str) -> ModelArch:
    """A catalog model by name, alias or hub id (case-insensitive); a local config.json / model folder; or a
    hub id outside the catalog, read from the local Hugging Face cache (hub.py; ModelArch.source_kind says which)."""
    if not isinstance(name, str):
        raise VramplanError(f"MODEL must be a model name, got {name!r}", hint="`vramplan models` lists the catalog")
    if not name.strip():
        raise VramplanError("MODEL: empty model name", hint="`vramplan models` lists the catalog")
    path = Path(name).expanduser()
    if path.exists():
        return load_local_config(path)
    model = _index(model_catalog()).get(_key(name))
    if model is not None:
        return model
    if _key(name) in _model_files()[1]:
        raise _model_files()[1][_key(name)]
    looks_like_path = name.endswith(".json") or name.count("/") > 1 or name.startswith((".", "/", "~"))
    if looks_like_path:  # hub ids have exactly one slash
        raise VramplanError(f"{name}: no such file", hint="give a catalog name, a config.json, or a model folder")
    from .hub import is_hub_id, resolve_hub_id  # only off the catalog path: it must stay import-free
    if is_hub_id(name):
        return resolve_hub_id(name, _suggest(name.split("/", 1)[1], model_catalog()))
    raise NotFoundError("model", name, _suggest(name, model_catalog()), "vramplan models")


@lru_cache(maxsize=None)
def cited_driver_share_floor() -> float:
    """The smallest share of nvidia-smi's total that the driver keeps on the catalog's cards off Hopper whose
    profiles cite the total PyTorch reports (0 when none does)."""
    shares = [1 - g.torch_total_bytes / g.memory_bytes for g in gpu_catalog()
              if g.torch_total_gib and g.architecture != "hopper"]
    return min(shares, default=0.0)
