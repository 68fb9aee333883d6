"""Which allocator `vramplan train` takes without --allocator: the default only where its plan needs less."""
from vramplan.allocator_choice import allocator_numbers, leaner_allocator
from vramplan.plan import TrainPlan
from vramplan.planner import Planner
from vramplan.profiles import find_gpu, find_model
from vramplan.store.calibrations import Calibrations

PLANNER = Planner(find_gpu("H100-80GB"), Calibrations.shipped())
MODEL = find_model("llama-3.1-8b")


def both(**plan):
    p = TrainPlan(**plan)
    return PLANNER.estimate(MODEL, p.with_(allocator="default")), PLANNER.estimate(MODEL, p.with_(allocator="expandable"))


def test_trls_fused_path_keeps_the_default_whose_measured_reserve_is_the_smaller():
    d, e = both(trainer="trl", batch=2)
    assert d.required_bytes < e.required_bytes and d.fragmentation_event_bytes == 0
    assert leaner_allocator(d, e) == "default" == allocator_numbers(d, e)["train_allocator"]


def test_a_default_plan_that_may_re_split_a_logits_segment_takes_expandable_segments():
    d, e = both(trainer="hf", batch=2)
    assert d.fragmentation_event_bytes > 0 and leaner_allocator(d, e) == "expandable"
    assert allocator_numbers(d, e)["resplit_bytes"] == d.fragmentation_event_bytes
