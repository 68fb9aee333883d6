"""The Textual app: a plan form on the left, the memory picture on the right."""
from __future__ import annotations

from pathlib import Path

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.suggester import SuggestFromList
from textual.widgets import DataTable, Footer, Header, Input, Label, Static

from .. import flags
from ..errors import VramplanError
from ..memory import LABELS
from ..plan import plan_flags
from ..profiles import gpu_catalog, model_catalog
from ..search import SAFETY_MARGIN, margin_limit
from ..units import GiB
from .screens import FitScreen, HelpScreen
from .state import PlanState
from .widgets import MemoryBar, table_rows

NUMBER_FIELDS = ("seq", "batch", "rank")
"""Typed into their own fields; their keys double (lower case) and halve (upper case) them."""


def plan_bindings() -> list[Binding]:
    """A key for each plan field that declares one (vramplan.plan): numbers scale, the others cycle."""
    out = []
    for key, name, label in flags.tui_keys():
        if name in NUMBER_FIELDS:
            out += [Binding(key, f"scale('{name}', 2)", f"{label} x2", show=False),
                    Binding(key.upper(), f"scale('{name}', 0.5)", f"{label} /2", show=False)]
        else:
            out.append(Binding(key, f"cycle('{name}')", label, show=False))
    return out


def toggle_rows(state: PlanState) -> list[tuple[str, str, str]]:
    """(key, label, value) of every plan field the form shows besides the typed numbers."""
    p, d = state.plan, state.plan.to_dict()
    rows = []
    for name, flag, _ in plan_flags():
        if not flag.tui_label or name in NUMBER_FIELDS or (flag.shown and not flag.shown(d)):
            continue
        text = _value_text(getattr(p, name))
        if name == "dtype" and p.dtype == "bf16" and not state.gpu.bf16:
            text += " (no bf16!)"
        rows.append((flag.tui, flag.tui_label, text))
    return rows


def _value_text(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return flags.targets_text(value) if isinstance(value, tuple) else str(value)


class VramplanApp(App):
    CSS_PATH = "vramplan.tcss"
    TITLE = "vramplan"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("f", "fit", "Fit"),
        Binding("e", "write", "Write plan"),
        Binding("c", "copy", "Copy cmd"),
        *plan_bindings(),
        Binding("escape", "leave_field", "leave field", show=False),
    ]

    def __init__(self, state: PlanState, output_dir: Path | None = None):
        super().__init__()
        self.state = state
        self.output_dir = output_dir or Path.cwd()

    # -- layout ---------------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with Horizontal(id="main"):
            with Vertical(id="form"):
                yield Label("model")
                yield Input(self.state.model.name, id="model", suggester=SuggestFromList(
                    [m.name for m in model_catalog()], case_sensitive=False))
                yield Label("gpu")
                yield Input(self.state.gpu.name, id="gpu", suggester=SuggestFromList(
                    [g.name for g in gpu_catalog()], case_sensitive=False))
                with Horizontal(id="numbers"):
                    for name, label in (("seq", "seq"), ("batch", "batch"), ("rank", "rank")):
                        with Vertical(classes="number"):
                            yield Label(label)
                            yield Input(str(getattr(self.state.plan, name)), id=name, type="integer")
                yield Static(id="toggles")
            with Vertical(id="result"):
                yield Static(id="title")
                yield MemoryBar(SAFETY_MARGIN, id="bar")
                yield Static(id="verdict")
                yield DataTable(id="table", show_cursor=False, zebra_stripes=True)
                yield Static(id="calibration")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#table", DataTable)
        table.add_column("component", key="component")
        table.add_column("GiB", key="gib")
        table.add_column("card", key="share")
        self.replan()
        self.set_focus(self.query_one("#table"))

    # -- re-plan: the one place the screen is redrawn from the state -------------------------------------------
    def replan(self) -> None:
        s = self.state
        b = s.breakdown()
        p = s.plan
        rows = toggle_rows(s)
        self.query_one("#toggles", Static).update(
            "\n".join(f"[b]{key or ' '}[/b] {label:6s} {value}" for key, label, value in rows))
        for name in NUMBER_FIELDS:
            field = self.query_one(f"#{name}", Input)
            if not field.has_focus and field.value != str(getattr(p, name)):
                field.value = str(getattr(p, name))
        self.query_one("#title", Static).update(
            f"[b]{s.model.name}[/b] ({s.model.total_params / 1e9:.2f}B) on [b]{s.gpu.name}[/b] "
            f"({b.capacity_bytes / GiB:.1f} GiB usable)")
        self.query_one("#bar", MemoryBar).show(b)
        dom, dom_bytes = b.dominant()
        limit = margin_limit(b.capacity_bytes)
        if b.required_bytes <= limit:
            verdict = f"[b green]FITS[/b green] with the {SAFETY_MARGIN:.0%} margin"
        elif b.fits:
            verdict = "[b yellow]FITS, inside the safety margin[/b yellow]"
        else:
            verdict = "[b red]DOES NOT FIT[/b red]"
        self.query_one("#verdict", Static).update(
            f"{verdict}: needs {b.required_bytes / GiB:.2f} of {b.capacity_bytes / GiB:.2f} GiB "
            f"(nvidia-smi peak {b.peak_bytes / GiB:.2f})\npeak phase [b]{b.peak_phase}[/b]; "
            f"largest: {LABELS.get(dom, dom)} {dom_bytes / GiB:.2f} GiB")
        table = self.query_one("#table", DataTable)
        table.clear()
        for row in table_rows(b):
            table.add_row(*row)
        self.query_one("#calibration", Static).update(f"[dim]{b.calibration['source']}[/dim]")

    # -- input ---------------------------------------------------------------------------------------------------
    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._apply_field(event.input)
        self.set_focus(self.query_one("#table"))

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id in NUMBER_FIELDS and event.value.isdigit() and int(event.value) > 0:
            self._apply_field(event.input, quiet=True)

    def _apply_field(self, field: Input, quiet: bool = False) -> None:
        try:
            if field.id == "model":
                self.state.set_model(field.value)
            elif field.id == "gpu":
                self.state.set_gpu(field.value)
            elif field.id in NUMBER_FIELDS:
                self.state.set_number(field.id, int(field.value or 0))
        except (VramplanError, ValueError) as exc:
            if not quiet:
                self.notify(str(exc), severity="error", timeout=6)
            return
        self.replan()

    # -- actions ---------------------------------------------------------------------------------------------------
    def action_leave_field(self) -> None:
        self.set_focus(self.query_one("#table"))

    def action_scale(self, name: str, factor: float) -> None:
        self._edit(self.state.scale, name, factor)

    def action_cycle(self, name: str) -> None:
        self._edit(self.state.cycle, name)

    def _edit(self, change, *args) -> None:
        try:
            change(*args)
        except VramplanError as exc:  # a combination the plan refuses: say why, keep the last valid plan
            self.notify(str(exc), severity="error", timeout=6)
            return
        self.replan()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_fit(self) -> None:
        def apply(plan) -> None:
            if plan is not None:
                self.state.apply(plan)
                self.replan()
                self.notify("applied the chosen plan")
        self.push_screen(FitScreen(self.state.fit()), apply)

    def action_write(self) -> None:
        json_path, sh_path = self.state.write(self.output_dir)
        self.notify(f"wrote {json_path.name} and {sh_path.name}")

    def action_copy(self) -> None:
        self.copy_to_clipboard(self.state.train_command())
        self.notify("copied the vramplan train command")


def create_app(model: str | None = None, gpu: str | None = None, output_dir: Path | None = None) -> VramplanApp:
    """The app for a model and GPU (defaults: llama-3.1-8b on an RTX-4090)."""
    return VramplanApp(PlanState.create(model, gpu), output_dir)
