import pytest

from vramplan.errors import VramplanError
from vramplan.flags import plan_from_fields
from vramplan.plan import TrainPlan


def test_defaults_are_the_standard_recipe():
    p = TrainPlan()
    assert (p.quant, p.double_quant, p.dropout, p.optim, p.gradient_checkpointing, p.attn) == \
        ("nf4", True, 0.05, "paged_adamw_8bit", True, "sdpa")


@pytest.mark.parametrize("kwargs, flag", [
    ({"rank": 0}, "--rank"), ({"batch": -1}, "--batch"), ({"seq": 10**9}, "--seq"), ({"dropout": 1.5}, "--dropout"),
    ({"optim": "adamw_nonsense"}, "--optim"), ({"quant": "nf3"}, "--quant"), ({"attn": "flash3"}, "--attn"),
    ({"targets": ""}, "--targets"),
])
def test_bad_values_name_their_flag(kwargs, flag):
    with pytest.raises(VramplanError, match=flag):
        TrainPlan(**kwargs)


def test_optimizer_aliases_and_target_lists_are_parsed_at_the_boundary():
    assert plan_from_fields(optim="adamw_bnb_8bit").optim == "adamw_8bit"
    assert plan_from_fields(targets="q_proj, v_proj").targets == ("q_proj", "v_proj")
    with pytest.raises(VramplanError, match="spelled adamw_8bit"):
        TrainPlan(optim="adamw_bnb_8bit")  # the plan itself holds one spelling and is never rewritten


def test_unknown_target_module_lists_the_real_ones():
    with pytest.raises(VramplanError, match="gate_up_proj"):
        TrainPlan(targets=("gate_proj",)).target_names(("qkv_proj", "o_proj", "gate_up_proj", "down_proj"))


def test_round_trip_through_dict():
    p = TrainPlan(rank=8, targets=("q_proj", "v_proj"), batch=2, grad_accum=4)
    assert TrainPlan.from_dict(p.to_dict()) == p
