"""The measured-checkpointing gate: partial (every_n_layers > 1) and offloaded checkpoints are planned only once
GPU runs have checked their model (profiles/checkpointing_modes.json lists the modes that were)."""
from __future__ import annotations

import json
from functools import lru_cache

from ..errors import VramplanError
from ..resources import data_dir

MODES = ("partial", "offload")


@lru_cache(maxsize=None)
def measured_checkpointing_modes() -> frozenset[str]:
    """The checkpointing modes whose model was checked against GPU runs."""
    data = json.loads((data_dir("profiles") / "checkpointing_modes.json").read_text())
    return frozenset(data["measured"])


def plan_modes(plan) -> tuple[str, ...]:
    """The modes beyond full checkpointing a plan (or a layout) uses."""
    return (("partial",) if plan.checkpoint_every > 1 else ()) + (("offload",) if plan.checkpoint_offload else ())


def check_checkpointing(plan) -> None:
    """A plan in a mode no GPU run measured is refused by name, with the way out; so is one on several GPUs
    (the runs are one-GPU runs, and FSDP checkpoints reentrantly)."""
    modes = plan_modes(plan)
    if not modes:
        return
    flag = "--checkpoint-every" if "partial" in modes else "--checkpoint-offload"
    if plan.gpus > 1:
        raise VramplanError(f"{flag}: partial or offloaded checkpointing over several GPUs is not measured",
                            hint=f"drop {flag} (full checkpointing), or plan one GPU")
    unmeasured = [m for m in modes if m not in measured_checkpointing_modes()]
    if unmeasured:
        what = {"partial": f"checkpointing every {plan.checkpoint_every} layers",
                "offload": "checkpoints offloaded to CPU memory"}
        raise VramplanError(
            f"{flag}: {' and '.join(what[m] for m in unmeasured)} has not been checked against GPU runs yet "
            "(profiles/checkpointing_modes.json lists the measured modes), so it gives no number",
            hint="drop --checkpoint-every / --checkpoint-offload: full checkpointing (the default) or --no-gradient-"
                 "checkpointing are measured")


def usable_modes(base, experts: bool) -> frozenset[str]:
    """The measured modes a plan vramplan makes may take: one GPU and a dense model (the MoE runs checkpointed
    every layer or none)."""
    return measured_checkpointing_modes() if base.gpus == 1 and not experts else frozenset()


PARTIAL_EVERY = (2, 3, 4, 6, 8)
"""The every_n_layers fit tries between checkpointing every layer and none (those below the layer count)."""


def search_modes(layers: int, base, experts: bool = False) -> list[tuple[bool, int, bool]]:
    """(gradient_checkpointing, checkpoint_every, checkpoint_offload) of each mode fit's search tries: the one the
    base plan asks for (checked against the gate), else off and every layer, and the measured modes on one GPU
    of a dense model (none while profiles/checkpointing_modes.json lists none; the MoE runs measured neither)."""
    if plan_modes(base):
        check_checkpointing(base)
        return [(True, base.checkpoint_every, base.checkpoint_offload)]
    measured = usable_modes(base, experts)
    everies = [1] + ([k for k in PARTIAL_EVERY if k < layers] if "partial" in measured else [])
    modes = [(False, 1, False)] + [(True, k, False) for k in everies]
    if "offload" in measured:
        modes += [(True, k, True) for k in everies]
    return modes
