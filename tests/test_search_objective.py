"""fit ranks plans by the speed model fitted to measured step times, by time or by cost per token."""
import pytest

from vramplan import decisions as D
from vramplan.errors import VramplanError
from vramplan.planner import Planner
from vramplan.present.reasons import say
from vramplan.profiles import find_gpu, find_model
from vramplan.search import GAIN
from vramplan.speed import predicted_tokens_per_second
from vramplan.store.calibrations import Calibrations

CAL = Calibrations.shipped()


def _ranked(result):
    return [result.recommended] + result.alternatives


def test_the_search_ranks_by_the_fitted_model():
    model, gpu = find_model("llama-3.1-8b"), find_gpu("H100-80GB")
    r = Planner(gpu, CAL).fit(model, seq=2048, effective_batch=16)
    for c in _ranked(r):
        assert c.tokens_per_s == pytest.approx(predicted_tokens_per_second(model, gpu, c.plan, c.breakdown))
        assert c.step_s == pytest.approx(c.plan.tokens * c.plan.grad_accum / c.tokens_per_s)
    assert all(c.tokens_per_s <= r.recommended.tokens_per_s for c in r.alternatives)


def test_by_cost_one_gpu_competes_and_wins_when_the_second_adds_less_speed_than_it_bills():
    model, gpu = find_model("llama-3.1-8b"), find_gpu("RTX-4090")
    by_time = Planner(gpu, CAL).fit(model, seq=2048, effective_batch=16, gpus=2)
    by_cost = Planner(gpu, CAL).fit(model, seq=2048, effective_batch=16, gpus=2, objective="cost")
    assert by_time.recommended.plan.gpus == 2 and by_time.objective == "time"
    best = by_cost.recommended
    several = min((c for c in _ranked(by_time)), key=lambda c: c.gpu_seconds_per_token)
    assert best.gpu_seconds_per_token <= several.gpu_seconds_per_token
    assert all(best.gpu_seconds_per_token <= c.gpu_seconds_per_token for c in by_cost.alternatives)
    # DDP's per-step synchronization makes two 4090s a little dearer per token than one
    assert best.plan.gpus == 1
    v = by_cost.versus_one_gpu
    assert v.code == D.ONE_GPU_CHEAPER and v["cost_ratio"] >= 1 and "costs least per token" in say(v)
    assert {c.plan.gpus for c in _ranked(by_cost)} == {1, 2}  # both layouts are shown to choose from


def test_by_cost_on_one_gpu_the_ranking_is_the_time_ranking():
    planner = Planner(find_gpu("A10G"), CAL)
    model = find_model("qwen2.5-7b")
    a, b = planner.fit(model, objective="time"), planner.fit(model, objective="cost")
    assert [c.plan for c in _ranked(a)] == [c.plan for c in _ranked(b)]


def test_several_gpus_that_gain_too_little_say_so_for_their_layout():
    r = Planner(find_gpu("T4"), CAL).fit(find_model("llama-3.2-1b"), seq=32, effective_batch=4, gpus=2)
    v = r.versus_one_gpu
    speedup = r.recommended.tokens_per_s / r.one_gpu.tokens_per_s
    # 32-token sequences of a 1B model: DDP's per-step cost eats what splitting the micro-batches saves
    assert speedup < GAIN and v.code == D.GPUS_NO_GAIN and v["speedup"] == pytest.approx(speedup)
    assert v["parallel"] == r.recommended.plan.parallel == "ddp" and "DDP's per-step" in say(v)


def test_an_unknown_objective_is_refused():
    with pytest.raises(VramplanError, match="--objective"):
        Planner(find_gpu("T4"), CAL).fit(find_model("llama-3.2-1b"), objective="fun")
