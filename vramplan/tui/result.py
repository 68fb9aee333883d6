"""The memory picture (right side): title, bar, verdict, the component table, the calibration line."""
from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import DataTable, Static

from ..memory import LABELS, Breakdown
from ..profiles import GpuSpec, ModelArch
from ..present.display import card_words
from ..present.reasons import room_words, standing_words
from ..present.time_cost import brief_lines
from ..margin import DOES_NOT_FIT, FITS, INSIDE_MARGIN, SAFETY_MARGIN
from ..verdict import standing
from ..units import GiB
from .widgets import MemoryBar, table_rows


@dataclass(frozen=True)
class Picture:
    """What the panel draws: a model on a GPU and the Breakdown of the plan."""

    model: ModelArch
    gpu: GpuSpec
    breakdown: Breakdown
    time_cost: dict | None = None
    """vramplan.present.time_cost.figures of the plan and the job: speed, time, cost."""


class ResultPanel(Vertical):
    picture: reactive[Picture | None] = reactive(None, init=False)

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield MemoryBar(SAFETY_MARGIN, id="bar")
        yield Static(id="verdict")
        yield Static(id="speed", markup=False)
        yield DataTable(id="table", show_cursor=False, zebra_stripes=True)
        yield Static(id="calibration")

    def on_mount(self) -> None:
        table = self.query_one("#table", DataTable)
        table.add_column("component", key="component")
        table.add_column("GiB", key="gib")
        table.add_column("card", key="share")

    def watch_picture(self, picture: Picture) -> None:
        m, g, b = picture.model, picture.gpu, picture.breakdown
        n = b.plan.get("gpus", 1)
        self.query_one("#title", Static).update(
            f"[b]{m.name}[/b] ({m.total_params / 1e9:.2f}B) on [b]{f'{n} x ' if n > 1 else ''}{g.name}[/b]")
        self.query_one("#bar", MemoryBar).show(b)
        # the card's words on their own line: the title has one line, too narrow for them at 80 columns
        self.query_one("#verdict", Static).update(card_words(g.memory_mib, b.capacity_bytes, n) + "\n" + verdict_text(b))
        self.query_one("#speed", Static).update("\n".join(brief_lines(picture.time_cost)) if picture.time_cost else "")
        table = self.query_one("#table", DataTable)
        table.clear()
        for row in table_rows(b):
            table.add_row(*row)
        self.query_one("#calibration", Static).update(f"[dim]{b.calibration['source']}[/dim]")


def verdict_text(b: Breakdown) -> str:
    dom, dom_bytes = b.dominant()
    judged = standing(b)
    colour = {FITS: "green", INSIDE_MARGIN: "yellow", DOES_NOT_FIT: "red"}[judged]
    verdict = f"[b {colour}]{standing_words(judged)}[/b {colour}]"
    return (f"{verdict}: needs {b.required_bytes / GiB:.2f} of {b.capacity_bytes / GiB:.2f} GiB "
            f"({room_words(b.peak_bytes)})\npeak phase [b]{b.peak_phase}[/b]; "
            f"largest: {LABELS.get(dom, dom)} {dom_bytes / GiB:.2f} GiB")
