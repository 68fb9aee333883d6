"""Modal screens: help, and the fit result with alternatives to apply."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from ..present.display import card_words, checkpointing_cell
from ..present.reasons import brief_reasons, fit_reasons
from ..search import FitResult
from ..units import GiB

HELP = """[b]vramplan[/b]: explore QLoRA memory plans. Every change re-plans at once.

[b]model / gpu[/b]  type to search (Tab accepts the suggestion), Enter applies
[b]seq, micro-batch, rank[/b]  type a number and Enter, or:
  s / S  sequence length x2 / /2     b / B  micro-batch x2 / /2
  r / R  rank x2 / /2
[b]toggles[/b]
  t  targets (all-linear, attention, q/v)   o  optimizer
  d  bf16 / fp16        g  gradient checkpointing
  a  attention kind     u  double quant
  n  GPUs of one host (1, 2, 4, 8; figures per GPU)   p  FSDP / data parallel
  T  training stack (TRL's SFTTrainer / the plain Trainer)
  v / V  evaluation batch x2 / /2 (from 0: no evaluation)
[b]tokens, epochs, USD/h[/b]  the job and its price: the time to train, the cost
[b]actions[/b]
  f  fit: recommended plan and alternatives (Enter applies one)
  e  write the plan as vramplan-plan.json and vramplan-train.sh (never overwrites)
  c  copy the `vramplan train` command to the clipboard
  Esc  leave a text field    ?  this help    q  quit
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Static(HELP, id="help-text")


class FitScreen(ModalScreen):
    """The recommended plan first, then alternatives; Enter applies the highlighted one."""

    BINDINGS = [Binding("escape,q", "dismiss", "Close")]

    def __init__(self, result: FitResult):
        super().__init__()
        self.result = result
        self.choices = ([result.recommended] + result.alternatives) if result.recommended else []

    def compose(self) -> ComposeResult:
        r = self.result
        with Vertical(id="fit-box"):
            on = f"{r.gpus} x {r.gpu.name}" if r.gpus > 1 else r.gpu.name
            head = f"[b]fit[/b] {r.model.name} on {on}\n{card_words(r.gpu.memory_mib, r.capacity_bytes, r.gpus)}"
            yield Static(head, id="fit-head")
            if not self.choices:
                yield Static("[b red]nothing fits[/b red]\n" + "\n".join(f"- {x}" for x in fit_reasons(r)), id="fit-why")
                return
            options = []
            for i, c in enumerate(self.choices):
                p = c.plan
                tag = "recommended" if i == 0 else "alternative"
                options.append(Option(
                    f"{tag:11s} {p.batch}x{p.grad_accum} ckpt {checkpointing_cell(p.to_dict()):11s} "
                    f"{p.optim:16s} r{p.rank:<3d} {c.breakdown.required_bytes / GiB:4.1f} GiB "
                    f"{c.tokens_per_s:6,.0f} tok/s", id=str(i)))
            yield OptionList(*options, id="fit-options")
            yield Static("\n".join(f"- {x}" for x in brief_reasons(r)), id="fit-why")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.choices[int(event.option.id)].plan)
