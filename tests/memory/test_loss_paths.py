import pytest

from vramplan.memory import estimate
from vramplan.memory.calibration import DEFAULT_CALIBRATION
from vramplan.memory.loss_paths import metrics_copy_strands_segment
from vramplan.plan import TrainPlan
from vramplan.profiles import find_gpu, find_model


@pytest.mark.parametrize("model, batch, seq, taken", [
    # measured on an H200 through TRL 1.0-1.6 (calibration/stacks, calibration/resplit)
    ("gemma-3-1b", 4, 1024, True), ("gemma-2-2b", 4, 1024, True), ("qwen2.5-0.5b", 4, 1024, True),
    ("qwen2.5-3b", 2, 1024, True), ("llama-3.2-1b", 3, 1024, True),
    ("llama-3.2-1b", 4, 1024, False), ("llama-3.2-1b", 2, 2048, False), ("llama-3.2-1b", 2, 1024, False),
    ("llama-3.2-3b", 4, 1024, False), ("tinyllama-1.1b", 4, 1024, False), ("smollm2-1.7b", 2, 1024, False)])
def test_the_shifted_copy_strands_a_segment_where_its_rounding_falls_short(model, batch, seq, taken):
    assert metrics_copy_strands_segment(find_model(model), batch, seq) is taken


def test_one_sequence_makes_no_shifted_copy():
    assert not metrics_copy_strands_segment(find_model("gemma-3-1b"), 1, 4096)


def _resplit(model, **plan):
    b = estimate(find_model(model), find_gpu("H200"), TrainPlan(trainer="trl", trl_version="1.0", **plan),
                 DEFAULT_CALIBRATION)
    return b.components.get("logits_resplit", 0)


def test_the_segment_is_charged_only_where_the_allocator_takes_it():
    fp32_logits = 4 * 3 * 1024 * find_model("llama-3.2-1b").vocab
    assert _resplit("llama-3.2-1b", batch=3, seq=1024) == fp32_logits
    assert _resplit("llama-3.2-1b", batch=4, seq=1024) == 0
    # expandable segments were not measured on these paths: still charged
    assert _resplit("llama-3.2-1b", batch=4, seq=1024, allocator="expandable") > 0
