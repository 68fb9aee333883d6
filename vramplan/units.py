"""Byte sizes: parse what users type, print what they read."""
import re

from .errors import VramplanError

GiB = 1024**3
MiB = 1024**2

_UNITS = {"": GiB, "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": MiB, "mb": 1000**2, "mib": MiB,
          "g": GiB, "gb": 1000**3, "gib": GiB, "t": 1024**4, "tb": 1000**4, "tib": 1024**4}


def parse_size(text: str, flag: str = "--vram") -> int:
    """'24GB' -> 24e9 bytes, '24GiB' or '24g' or '24' -> 24 GiB. Raises on nonsense."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    unit = m.group(2).lower() if m else None
    if not m or unit not in _UNITS:
        raise VramplanError(f"{flag}: cannot read {text!r} as a size", hint="write it like 24GB, 24GiB or 16384MiB")
    value = float(m.group(1)) * _UNITS[unit]
    if value < 256 * MiB or value > 64 * 1024 * GiB:
        raise VramplanError(f"{flag}: {text!r} is not a plausible GPU memory size", hint="give between 256MiB and 64TiB")
    return int(value)


def gib(n: int | float) -> float:
    return n / GiB


def fmt_gib(n: int | float, digits: int = 2) -> str:
    return f"{n / GiB:.{digits}f}"
