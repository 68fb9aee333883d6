"""The Textual app: a plan form on the left, the memory picture on the right.

The app holds the PlanState; its reactive `shown` (model, GPU, plan) mirrors it, and its watcher redraws the form
and the picture. The form posts what the user types (PlanForm.FieldEdited); fit runs in a worker thread and comes
back as a FitReady message.
"""
from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Footer, Header

from .. import flags
from ..errors import VramplanError
from ..plan import TrainPlan
from ..present.time_cost import Job
from ..profiles import GpuSpec, ModelArch
from ..search import FitResult
from .form import JOB_FIELDS, NUMBER_FIELDS, PlanForm
from .result import Picture, ResultPanel
from .screens import FitScreen, HelpScreen
from .state import PlanState


def plan_bindings() -> list[Binding]:
    """A key for each plan field that declares one (vramplan.plan): numbers scale, the others cycle."""
    out = []
    for key, name, label in flags.tui_keys():
        if name in NUMBER_FIELDS or flags.flag(name).range:  # a number: doubled and halved
            out += [Binding(key, f"scale('{name}', 2)", f"{label} x2", show=False),
                    Binding(key.upper(), f"scale('{name}', 0.5)", f"{label} /2", show=False)]
        else:
            out.append(Binding(key, f"cycle('{name}')", label, show=False))
    return out


class FitReady(Message):
    """The fit worker's result."""

    def __init__(self, result: FitResult):
        super().__init__()
        self.result = result


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
    shown: reactive[tuple[ModelArch, GpuSpec, TrainPlan, Job] | None] = reactive(None, init=False)
    """The model, GPU, plan and job on screen; the state's after every edit. A change redraws (watch_shown)."""

    def __init__(self, state: PlanState, output_dir: Path | None = None):
        super().__init__()
        self.state = state
        self.output_dir = output_dir or Path.cwd()

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with Horizontal(id="main"):
            yield PlanForm(self.state, id="form")
            yield ResultPanel(id="result")
        yield Footer()

    def on_mount(self) -> None:
        self._sync()
        self.set_focus(self.query_one("#table"))

    # -- the state, mirrored in a reactive: a change redraws ----------------------------------------------------
    def _sync(self) -> None:
        self.shown = (self.state.model, self.state.gpu, self.state.plan, self.state.job)

    def watch_shown(self) -> None:
        s = self.state
        self.query_one(PlanForm).state = s
        b = s.breakdown()
        self.query_one(ResultPanel).picture = Picture(s.model, s.gpu, b, s.time_cost(b))

    def _edit(self, change, *args, quiet: bool = False) -> None:
        """Apply one edit to the state; a value or combination it refuses is said, and the last valid plan
        stays."""
        s = self.state
        before = (s.model, s.gpu, s.planner, s.plan)
        try:
            change(*args)
            s.breakdown()  # what the card cannot run is refused here too
        except (VramplanError, ValueError) as exc:
            s.model, s.gpu, s.planner, s.plan = before
            if not quiet:
                self.notify(str(exc), severity="error", timeout=6)
            return
        self._sync()

    # -- input ---------------------------------------------------------------------------------------------------
    def on_plan_form_field_edited(self, message: PlanForm.FieldEdited) -> None:
        s = self.state
        if message.field == "model":
            self._edit(s.set_model, message.value)
        elif message.field == "gpu":
            self._edit(s.set_gpu, message.value)
        elif message.field in {name for name, _, _ in JOB_FIELDS}:
            self._edit(s.set_job, message.field, message.value, quiet=message.quiet)
        else:
            self._edit(lambda v: s.set_number(message.field, int(v or 0)), message.value, quiet=message.quiet)
        if not message.quiet:
            self.set_focus(self.query_one("#table"))

    # -- actions ---------------------------------------------------------------------------------------------------
    def action_leave_field(self) -> None:
        self.set_focus(self.query_one("#table"))

    def action_scale(self, name: str, factor: float) -> None:
        self._edit(self.state.scale, name, factor)

    def action_cycle(self, name: str) -> None:
        self._edit(self.state.cycle, name)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_fit(self) -> None:
        self.fit_in_background()

    @work(thread=True, exclusive=True, group="fit")
    def fit_in_background(self) -> None:
        """The search takes longer than a keypress should block: it runs off the UI thread."""
        self.post_message(FitReady(self.state.fit()))

    def on_fit_ready(self, message: FitReady) -> None:
        def apply(plan) -> None:
            if plan is not None:
                self._edit(self.state.apply, plan)
                self.notify("applied the chosen plan")
        self.push_screen(FitScreen(message.result), apply)

    def action_write(self) -> None:
        json_path, sh_path = self.state.write(self.output_dir)
        self.notify(f"wrote {json_path.name} and {sh_path.name}")

    def action_copy(self) -> None:
        self.copy_to_clipboard(self.state.train_command())
        self.notify("copied the vramplan train command")


def create_app(model: str | None = None, gpu: str | None = None, output_dir: Path | None = None) -> VramplanApp:
    """The app for a model and GPU (defaults: llama-3.1-8b on an RTX-4090)."""
    return VramplanApp(PlanState.create(model, gpu), output_dir)
