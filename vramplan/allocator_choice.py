"""Which allocator `vramplan train` runs a plan with when --allocator is not given, and the numbers behind it.

Expandable segments remove the default allocator's step-2 re-split of a freed logits segment (allocation traces,
bench/segment_split.py), but their measured reserve on TRL's paths without full logits is larger
(Calibration.stack_expandable_slack_bytes against stack_slack_bytes): so train takes the default where it needs
less."""
from __future__ import annotations

from typing import Callable

from .memory import Breakdown
from .plan import TrainPlan


def leaner_allocator(default: Breakdown, expandable: Breakdown) -> str:
    """PyTorch's default allocator where the plan needs less with it and it may not re-split a logits segment
    (no upper bound above its peak); else expandable segments, which train's own measured runs used."""
    if default.fragmentation_event_bytes == 0 and default.required_bytes < expandable.required_bytes:
        return "default"
    return "expandable"


def allocator_numbers(default: Breakdown, expandable: Breakdown) -> dict:
    """A plan's need under each allocator and train's choice: the numbers of decisions.ALLOCATOR."""
    return {"default_required_bytes": default.required_bytes, "expandable_required_bytes": expandable.required_bytes,
            "resplit_bytes": default.fragmentation_event_bytes,
            "train_allocator": leaner_allocator(default, expandable)}


def plan_allocator_numbers(plan: TrainPlan, estimate: Callable[[TrainPlan], Breakdown],
                           own: Breakdown | None = None) -> dict:
    """allocator_numbers of one plan, estimated under each allocator; own: its breakdown under its own allocator,
    where the caller has it already."""
    b = {a: own if own is not None and a == plan.allocator else estimate(plan.with_(allocator=a))
         for a in ("default", "expandable")}
    return allocator_numbers(b["default"], b["expandable"])
