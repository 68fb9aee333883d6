"""How a plan's checkpointing mode shows in fit's alternatives, table's best plan and the TUI's fit list."""
from vramplan.plan import TrainPlan
from vramplan.present.display import checkpointing_cell
from vramplan.present.table import _plan_text


def _cell(**fields) -> str:
    return checkpointing_cell(TrainPlan(**fields).to_dict())


def test_each_mode_has_its_own_cell():
    assert _cell(gradient_checkpointing=False) == "off"
    assert _cell() == "on"
    assert _cell(checkpoint_every=4) == "every 4"
    assert _cell(checkpoint_offload=True) == "on+cpu"
    assert _cell(checkpoint_every=2, checkpoint_offload=True) == "every 2+cpu"


def test_the_table_names_the_mode_in_the_plan():
    def text(**fields):
        return _plan_text({"plan": TrainPlan(batch=2, grad_accum=8, **fields).to_dict()})
    assert text(gradient_checkpointing=False) == "r16 2x8 no-ckpt paged_adamw_8bit bf16"
    assert text() == "r16 2x8 ckpt paged_adamw_8bit bf16"
    assert text(checkpoint_offload=True) == "r16 2x8 ckpt+cpu paged_adamw_8bit bf16"
    assert text(checkpoint_every=3, checkpoint_offload=True) == "r16 2x8 ckpt every 3+cpu paged_adamw_8bit bf16"
