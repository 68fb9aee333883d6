"""Text rendering of Breakdowns and plan lists for the terminal."""
from __future__ import annotations

from .. import flags
from ..memory import LABELS, Breakdown
from ..units import GiB

BAR = 40


def bar(used: int, capacity: int, limit: int | None = None, width: int = BAR) -> str:
    filled = min(width, round(width * used / capacity)) if capacity else width
    cells = ["#"] * filled + ["."] * (width - filled)
    if limit:
        mark = min(width - 1, round(width * limit / capacity))
        cells[mark] = "|"
    over = "!" if used > capacity else ""
    return "[" + "".join(cells) + "]" + over


def breakdown_table(b: Breakdown) -> list[str]:
    cap = b.capacity_bytes
    rows = sorted(b.components.items(), key=lambda kv: -kv[1])
    width = max(len(LABELS.get(k, k)) for k, _ in rows)
    lines = [f"  {'component':{width}s}  {'GiB':>7s}  {'of card':>7s}"]
    for key, value in rows:
        lines.append(f"  {LABELS.get(key, key):{width}s}  {value / GiB:7.2f}  {value / cap:7.1%}")
    lines.append(f"  {'peak (' + b.peak_phase + ')':{width}s}  {b.peak_bytes / GiB:7.2f}  {b.peak_bytes / cap:7.1%}")
    return lines


def plan_line(plan: dict) -> str:
    return flags.plan_line(plan)


def model_lines(model, asked: str) -> list[str]:
    """Where the architecture came from (when not the catalog name typed) and how it was read: said before any
    number."""
    out = []
    if model.source_kind != "catalog" or asked.lower() != model.name.lower():
        out.append(f"model: {asked} -> {model.source_line}")
    return out + [f"note: {n}" for n in model.notices]


def model_json(model) -> dict:
    return {"model_source": model.source_line, "model_notices": list(model.notices)}
