"""The plan vramplan chooses for an MoE model (dropout 0 where peft wraps the experts) and why nothing fits."""
import pytest

from vramplan import decisions as D
from vramplan.planner import Planner
from vramplan.plan import TrainPlan
from vramplan.profiles import find_gpu, find_model
from vramplan.search_moe import RECIPE_DROPOUT, experts_lora, for_model, plan_for_model, wrapped_experts
from vramplan.store.calibrations import Calibrations
from tests.profiles.moe_gate import moe_gate_open  # noqa: F401  (the fixture)

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")


def test_dropout_left_open_is_0_only_where_the_experts_are_paramwrapper_targets(moe_gate_open):
    olmoe, qwen2, llama = find_model("olmoe-1b-7b"), find_model("qwen1.5-moe-a2.7b"), find_model("llama-3.1-8b")
    assert RECIPE_DROPOUT == 0.05
    assert for_model(olmoe, {})["dropout"] == 0.0
    assert for_model(olmoe, {"dropout": 0.1}) == {"dropout": 0.1}  # typed: kept (and refused where estimated)
    assert "dropout" not in for_model(olmoe, {"targets": ATTENTION})  # the experts stay frozen
    assert for_model(olmoe, {"targets": ("gate_proj", "up_proj")})["dropout"] == 0.0  # names peft converts
    assert for_model(qwen2, {}) == {}  # peft has no conversion for qwen2_moe: all-linear misses its experts
    assert for_model(llama, {}) == {}
    assert plan_for_model(olmoe, TrainPlan()).dropout == 0.0
    assert plan_for_model(olmoe, TrainPlan(targets=ATTENTION)).dropout == RECIPE_DROPOUT
    assert plan_for_model(llama, TrainPlan()) == TrainPlan()
    assert wrapped_experts(olmoe, TrainPlan()) == ["router", "gate_up_proj", "down_proj"]


def test_experts_lora_says_what_the_experts_get(moe_gate_open):
    olmoe = find_model("olmoe-1b-7b")
    r = experts_lora(olmoe, TrainPlan(dropout=0.0))
    assert r.code == D.EXPERTS_LORA and r["wrapped"] == ["router", "gate_up_proj", "down_proj"] and r["dropout"] == 0
    assert experts_lora(olmoe, TrainPlan(targets=ATTENTION))["wrapped"] == []
    assert not experts_lora(find_model("qwen1.5-moe-a2.7b"), TrainPlan())["converted"]
    assert experts_lora(find_model("llama-3.1-8b"), TrainPlan()) is None


def test_fit_of_an_moe_model_that_fits_plans_dropout_0_and_says_why_first(moe_gate_open):
    result = Planner(find_gpu("A100-80GB"), Calibrations.shipped()).fit(find_model("olmoe-1b-7b"))
    assert result.recommended.plan.dropout == 0.0
    assert result.reasons[0].code == D.EXPERTS_LORA and result.reasons[0]["recipe_dropout"] == RECIPE_DROPOUT


def test_qwen3_30b_on_a_4090_does_not_fit_naming_the_fp32_experts_and_what_would(moe_gate_open):
    planner = Planner(find_gpu("RTX-4090"), Calibrations.shipped())
    result = planner.fit(find_model("qwen3-30b-a3b"))
    assert result.recommended is None
    by = {r.code: r for r in result.reasons}
    assert by[D.LARGEST_PART]["component"] == "moe_experts"
    kbit = by[D.EXPERTS_KBIT_PREPARE]
    assert kbit["expert_bytes"] == by[D.LARGEST_PART]["bytes"] == 2 * kbit["sixteen_bit_bytes"]
    assert by[D.BIGGER_GPUS]["gpus"] == ["H200"]
    assert D.EXPERTS_LORA in by


def test_an_fp32_checkpoint_gets_no_kbit_prepare_advice(moe_gate_open):
    """OLMoE ships fp32 weights: skipping the cast saves nothing, so nothing is said."""
    result = Planner(find_gpu("RTX-4090"), Calibrations.shipped()).fit(find_model("olmoe-1b-7b"))
    assert result.recommended is None
    assert D.EXPERTS_KBIT_PREPARE not in {r.code for r in result.reasons}


def test_a_dense_model_that_does_not_fit_is_compared_with_moe_models_on_their_own_recipe(moe_gate_open):
    result = Planner(find_gpu("T4"), Calibrations.shipped()).fit(find_model("llama-3.1-70b"))
    assert result.recommended is None  # the smaller-models advice estimated the MoE models without a Refusal
    assert {D.EXPERTS_LORA, D.EXPERTS_KBIT_PREPARE}.isdisjoint(r.code for r in result.reasons)


@pytest.mark.parametrize("gpu", ["RTX-4090", "H200"])
def test_table_rows_of_moe_models_are_memory_verdicts(moe_gate_open, gpu):
    planner = Planner(find_gpu(gpu), Calibrations.shipped())
    row = planner.table_row(find_model("qwen3-30b-a3b"), 2048, 16)
    assert row["fits"] == (gpu == "H200")
    assert row["experts_lora"]["code"] == D.EXPERTS_LORA
    if row["fits"]:
        assert row["plan"]["dropout"] == 0.0
    assert "experts_lora" not in planner.table_row(find_model("llama-3.2-1b"), 2048, 16)
