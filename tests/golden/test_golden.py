"""The redesign keeps every prediction identical (except where a named fix changes it)."""
import json

from vramplan.errors import VramplanError
from vramplan.profiles import find_gpu, find_model

from .golden import cases, load, predict


def test_golden_predictions_unchanged():
    _, entries = load()
    assert len(entries) > 1000
    changed = []
    for e in entries:
        got = predict(find_model(e["model"]), find_gpu(e["gpu"]), e["plan"])
        want = {k: e[k] for k in got}
        if got != want:
            changed.append((e["model"], e["gpu"], e["gpus"], e["plan"], {k: (want[k], got[k]) for k in got
                                                                           if got[k] != want[k]}))
    assert not changed, f"{len(changed)} predictions moved; first: {changed[0]}"


def _dense_cases() -> list:
    return [(m.name, g.name, n, json.dumps(f, sort_keys=True)) for m, g, n, f in cases() if m.experts is None]


def test_with_the_moe_gate_open_the_grid_plans_every_moe_case_and_keeps_the_dense_ones(monkeypatch):
    """Once families are measured, `python -m tests.golden.golden` regenerates: the dense cases are the ones made
    with the gate closed, plan for plan, and each MoE case (one GPU, no int8) gets a prediction, with dropout 0
    where peft wraps its experts."""
    from vramplan.plan import TrainPlan
    from vramplan.profiles import catalog, experts
    from vramplan.search_moe import wrapped_experts
    monkeypatch.setattr(experts, "measured_families", lambda: frozenset())
    catalog._model_files.cache_clear()
    closed = _dense_cases()
    monkeypatch.setattr(experts, "measured_families", lambda: frozenset(experts.FAMILIES))
    catalog._model_files.cache_clear()
    try:
        assert _dense_cases() == closed
        moe = [(m, g, n, f) for m, g, n, f in cases() if m.experts is not None]
        assert {m.name for m, _, _, _ in moe} >= {"qwen3-30b-a3b", "mixtral-8x7b", "olmoe-1b-7b", "qwen1.5-moe-a2.7b"}
        assert {n for _, _, n, _ in moe} == {1} and all(f["quant"] != "int8" for _, _, _, f in moe)
        predicted = kept_recipe = 0
        for model, gpu, _, fields in moe:
            targets = fields["targets"] if isinstance(fields["targets"], str) else tuple(fields["targets"])
            try:
                plan = TrainPlan(**{**fields, "targets": targets})
            except VramplanError:  # a plan no stack runs (fp16 through SFTTrainer), for a dense model alike
                continue
            assert predict(model, gpu, fields)["components"]["moe_experts"] > 0  # no Refusal
            predicted += 1
            if wrapped_experts(model, plan):
                assert plan.dropout == 0
            else:
                kept_recipe += plan.dropout == TrainPlan().dropout
        assert predicted > 200
        assert kept_recipe  # experts left frozen (qwen2_moe, two attention targets): the recipe's dropout stays
    finally:
        monkeypatch.undo()
        catalog._model_files.cache_clear()
