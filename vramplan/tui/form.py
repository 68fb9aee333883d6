"""The plan form (model, GPU, the typed numbers, the toggles): shows a PlanState and posts what the user edits."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, Static

from .. import flags
from ..plan import plan_flags
from ..profiles import gpu_catalog, model_catalog
from .state import PlanState

NUMBER_FIELDS = ("seq", "batch", "rank")
"""Typed into their own fields; their keys double (lower case) and halve (upper case) them."""
JOB_FIELDS = (("tokens", "tokens", "e.g. 20M"), ("epochs", "epochs", "1"), ("price", "USD/h", "none"))
"""The job beside the plan (name, label, placeholder): the data set's tokens, the epochs and the price per GPU
hour, for the time to train and its cost; empty: not asked for."""


class PlanForm(Vertical):
    """Left side. `state` is what it shows; edits go out as FieldEdited messages for the app to apply."""

    state: reactive[PlanState | None] = reactive(None, always_update=True, init=False)

    class FieldEdited(Message):
        """The user typed into a field: field is model, gpu, a number or a job field; quiet: as they type (no
        errors)."""

        def __init__(self, field: str, value: str, quiet: bool):
            super().__init__()
            self.field, self.value, self.quiet = field, value, quiet

    def __init__(self, state: PlanState, **kw):
        super().__init__(**kw)
        self._initial = state

    def compose(self) -> ComposeResult:
        s = self._initial
        yield Label("model")
        yield Input(s.model.name, id="model", suggester=SuggestFromList(
            [m.name for m in model_catalog()], case_sensitive=False))
        yield Label("gpu")
        yield Input(s.gpu.name, id="gpu", suggester=SuggestFromList(
            [g.name for g in gpu_catalog()], case_sensitive=False))
        with Horizontal(id="numbers"):
            for name in NUMBER_FIELDS:
                with Vertical(classes="number"):
                    yield Label(name)
                    yield Input(str(getattr(s.plan, name)), id=name, type="integer")
        with Horizontal(id="job"):
            for name, label, placeholder in JOB_FIELDS:
                with Vertical(classes="number"):
                    yield Label(label)
                    yield Input(id=name, placeholder=placeholder)
        yield Static(id="toggles")

    def watch_state(self, state: PlanState) -> None:
        self.query_one("#toggles", Static).update(
            "\n".join(f"[b]{key or ' '}[/b] {label:6s} {value}" for key, label, value in toggle_rows(state)))
        for name in NUMBER_FIELDS:
            field = self.query_one(f"#{name}", Input)
            if not field.has_focus and field.value != str(getattr(state.plan, name)):
                field.value = str(getattr(state.plan, name))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.FieldEdited(event.input.id, event.value, quiet=False))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if event.input.id in NUMBER_FIELDS and event.value.isdigit() and int(event.value) > 0 or \
                event.input.id in {name for name, _, _ in JOB_FIELDS}:
            self.post_message(self.FieldEdited(event.input.id, event.value, quiet=True))


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
