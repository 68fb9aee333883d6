"""The memory bar and the breakdown table, drawn from a Breakdown."""
from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from ..memory import LABELS, Breakdown
from ..units import GiB

# Components grouped into bar colours
GROUPS = (
    ("base", "dodger_blue2", ("weights_4bit", "weights_int8", "weights_16bit", "quant_constants",
                                    "embeddings_lm_head", "norms_biases", "load_transient")),
    ("lora+optim", "green3", ("lora_adapter", "lora_gradients", "optimizer_states", "optimizer_states_paged",
                                 "optimizer_step_temp")),
    ("activ.", "dark_orange", ("checkpointed_inputs", "activations", "layer_recompute", "layer_workspace",
                                    "dequant_buffer", "int8_kept_inputs")),
    ("logits", "magenta", ("lm_head_cast", "logits_loss")),
    ("runtime", "grey50", ("cuda_context", "cuda_workspaces", "allocator_slack", "logits_resplit",
                           "moe_allocator_cache")),
)


def grouped(b: Breakdown) -> list[tuple[str, str, int]]:
    out = []
    for label, colour, keys in GROUPS:
        total = sum(b.components.get(k, 0) for k in keys)
        if total:
            out.append((label, colour, total))
    return out


def bar_text(b: Breakdown, width: int, margin: float) -> Text:
    """Stacked bar of the peak against the card; '|' marks the safety margin, '!' an overflow."""
    width = max(10, width)
    scale = max(b.capacity_bytes, b.peak_bytes)
    text = Text()
    used = 0
    for _, colour, nbytes in grouped(b):
        cells = round(width * (used + nbytes) / scale) - round(width * used / scale)
        text.append("█" * cells, style=colour)
        used += nbytes
    free = width - text.cell_len
    limit_cell = round(width * b.capacity_bytes * (1 - margin) / scale)
    rest = Text("░" * max(0, free), style="grey35")
    text.append_text(rest)
    if 0 <= limit_cell < width:
        text = text[:limit_cell] + Text("|", style="bold white") + text[limit_cell + 1:]
    if b.peak_bytes > b.capacity_bytes:
        text.append("!", style="bold red")
    return text


def legend_text(b: Breakdown) -> Text:
    text = Text()
    for label, colour, nbytes in grouped(b):
        text.append("■ ", style=colour)
        text.append(f"{label} {nbytes / GiB:.1f} ")
    return text


class MemoryBar(Widget):
    """A one-line stacked bar plus its legend."""

    DEFAULT_CSS = "MemoryBar { height: 3; }"

    def __init__(self, margin: float, **kw):
        super().__init__(**kw)
        self.margin = margin
        self.breakdown: Breakdown | None = None

    def show(self, b: Breakdown) -> None:
        self.breakdown = b
        self.refresh()

    def render(self) -> Text:
        if self.breakdown is None:
            return Text("")
        bar = bar_text(self.breakdown, self.size.width - 1, self.margin)
        return Text.assemble(bar, "\n", legend_text(self.breakdown))


def table_rows(b: Breakdown) -> list[tuple[str, str, str]]:
    rows = sorted(b.components.items(), key=lambda kv: -kv[1])
    return [(LABELS.get(k, k), f"{v / GiB:.2f}", f"{v / b.capacity_bytes:.1%}") for k, v in rows]
