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


def card_words(memory_mib: int, capacity: int, gpus: int = 1) -> str:
    """How every output names a card's memory: nvidia-smi's total, the capacity a plan is judged against (what
    one process can allocate of it, --vram, or the free memory --gpu auto found) and the limit a recommended
    plan stays under."""
    from ..margin import SAFETY_MARGIN, margin_limit
    each = " each" if gpus > 1 else ""
    cap = (f"; judged against {capacity / GiB:.2f} GiB, more than the card has" if capacity > memory_mib * 2**20
           else f": {capacity / GiB:.2f} GiB usable")
    return (f"{memory_mib / 1024:.1f} GiB{each}{cap}, limit {margin_limit(capacity) / GiB:.2f} GiB with the "
            f"{SAFETY_MARGIN:.0%} safety margin")


def breakdown_table(b: Breakdown) -> list[str]:
    cap = b.capacity_bytes
    rows = sorted(b.components.items(), key=lambda kv: -kv[1])
    width = max(len(LABELS.get(k, k)) for k, _ in rows)
    lines = [f"  {'component':{width}s}  {'GiB':>7s}  {'of card':>7s}"]
    for key, value in rows:
        lines.append(f"  {LABELS.get(key, key):{width}s}  {value / GiB:7.2f}  {value / cap:7.1%}")
    lines.append(f"  {'peak (' + b.peak_phase + ')':{width}s}  {b.peak_bytes / GiB:7.2f}  {b.peak_bytes / cap:7.1%}")
    return lines


def checkpointing_cell(plan: dict) -> str:
    """A plan's checkpointing in a table cell: off, on (every layer), every K (layers), +cpu when offloaded."""
    if not plan["gradient_checkpointing"]:
        return "off"
    every = plan.get("checkpoint_every", 1)
    return (f"every {every}" if every > 1 else "on") + ("+cpu" if plan.get("checkpoint_offload") else "")


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


def estimate_lines(b: Breakdown, model, gpu, saving: dict | None, extra: list[str] = ()) -> list[str]:
    """`estimate`'s text: the plan, the component table, the bar, the verdict and the biggest saving (then
    `extra`, such as the time and cost lines, before the calibration line)."""
    n = b.plan.get("gpus", 1)
    lines = [f"{model.name} on {f'{n} x ' if n > 1 else ''}{gpu.name} ({card_words(gpu.memory_mib, b.capacity_bytes, n)})",
             f"plan: {plan_line(b.plan)}", ""]
    lines += breakdown_table(b)
    lines += ["", f"  {bar(b.required_bytes, b.capacity_bytes)}  needs {b.required_bytes / GiB:.2f} of "
                  f"{b.capacity_bytes / GiB:.2f} GiB"]
    from ..verdict import standing
    from .reasons import room_words, standing_words
    lines.append(f"\n{standing_words(standing(b))}: needs {b.required_bytes / GiB:.2f} GiB to run "
                 f"({room_words(b.peak_bytes)}); "
                 + (f"{b.headroom_bytes / GiB:.2f} GiB to spare" if b.within_capacity
                    else f"{-b.headroom_bytes / GiB:.2f} GiB short"))
    dom, dom_bytes = b.dominant()
    lines.append(f"dominant: {LABELS.get(dom, dom)} ({dom_bytes / GiB:.2f} GiB), peak in the {b.peak_phase} phase")
    if saving:
        lines.append(f"biggest saving: {saving['change']} (-{saving['saves_bytes'] / GiB:.2f} GiB)")
    if b.fragmentation_event_bytes:
        lines.append(f"upper bound: {(b.peak_bytes + b.fragmentation_event_bytes) / GiB:.2f} GiB if PyTorch's "
                     f"default allocator re-splits a logits segment (+{b.fragmentation_event_bytes / GiB:.2f} GiB; "
                     "measured in some runs, not predictable from the plan); --allocator expandable avoids it")
    lines += list(extra)
    lines.append(f"calibration: {b.calibration['source']}")
    return lines
