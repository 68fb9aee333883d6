"""The evaluation phase against the Llama-3.1-8B runs of calibration/train (TRL 1.16 on an H200)."""
import json

import pytest

from vramplan.calibrate.stack_accuracy import record_plan
from vramplan.errors import VramplanError
from vramplan.memory.activations import eval_attention_bytes
from vramplan.memory.estimate import estimate
from vramplan.planner import Planner
from vramplan.plan import TrainPlan
from vramplan.profiles import find_gpu, find_model
from vramplan.resources import data_dir
from vramplan.store.calibrations import Calibrations


def _runs(item: str) -> list[dict]:
    path = data_dir("calibration") / "train" / "trl_comparison.jsonl"
    runs = [json.loads(line) for line in path.read_text().splitlines()]
    return [r for r in runs if r["bench"]["item"] == item and r["status"] == "ok"]


def _estimate(record: dict):
    planner = Planner(find_gpu("H200"), Calibrations.package())
    return estimate(find_model(record["model"]), planner.gpu, record_plan(record), planner.calibration)


def test_eager_evaluation_allocates_its_scores_softmax_and_cast():
    record = _runs("seed recipe")[0]
    b = _estimate(record)
    measured = max(e["max_allocated"] for e in record["evals"])
    assert abs(sum(b.phases["evaluation"].values()) - measured) / measured < 0.03
    sdpa = TrainPlan(attn="sdpa", eval_batch=8)
    assert eval_attention_bytes(find_model("llama-3.1-8b"), sdpa, 8) == 0


def test_with_expandable_segments_evaluation_reuses_the_training_reserve():
    record = _runs("vramplan")[0]
    assert record["plan"]["allocator"] == "expandable"
    b = _estimate(record)
    assert b.peak_phase != "evaluation"  # measured: the reserve did not grow in evaluation
    assert abs(b.peak_bytes - record["nvml"]["peak"]) / record["nvml"]["peak"] < 0.05


@pytest.mark.parametrize("kw", [dict(trainer="trl"), dict(trainer="hf", eval_batch=8)])
def test_eager_attention_is_refused_where_it_measured_above_the_estimate(kw):
    planner = Planner(find_gpu("H200"), Calibrations.package())
    with pytest.raises(VramplanError, match="eager"):
        planner.estimate(find_model("llama-3.1-8b"), TrainPlan(attn="eager", **kw))
    planner.estimate(find_model("llama-3.1-8b"), TrainPlan(attn="eager", trainer="hf"))  # measured within 2%
