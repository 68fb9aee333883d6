"""Partial (every_n_layers) and offloaded checkpointing: the plan fields, their TrainingArguments, the gate
(profiles/checkpointing_modes.json) and, with the gate open, the memory and speed model."""
import json

import pytest

from tests.profiles.checkpointing_gate import checkpointing_gate_closed, checkpointing_gate_open  # noqa: F401
from vramplan import flags
from vramplan.calibrate import partial_ckpt_accuracy as A
from vramplan.errors import VramplanError
from vramplan.memory import estimate
from vramplan.memory.activations import checkpointed_layers, layer_activations, rope_bytes
from vramplan.plan import TrainPlan
from vramplan.profiles import checkpointing, find_gpu, find_model
from vramplan.resources import data_dir
from vramplan.speed import FEATURES, features, offloaded_gb, predicted_step_seconds
from vramplan.speed_fits import speed_params
from vramplan.store.calibrations import Calibrations
from vramplan.train.arguments import training_kwargs

MODEL, GPU = find_model("llama-3.2-1b"), find_gpu("H100-80GB")
PLAN = TrainPlan(batch=2, seq=1024, trainer="hf")


def _estimate(plan: TrainPlan):
    return estimate(MODEL, GPU, plan, Calibrations.shipped().params(GPU))


def _recompute(plan: TrainPlan) -> dict:
    """What the backward phase that recomputes a layer holds beside the kept tensors."""
    from vramplan.layout import resolve
    from vramplan.memory.estimate import _saved_for_backward
    return _saved_for_backward(MODEL, resolve(plan, MODEL, GPU), Calibrations.shipped().params(GPU))[1]


def test_the_gate_lists_the_modes_whose_runs_meet_its_bound():
    """profiles/checkpointing_modes.json lists a mode exactly when its recorded runs' peaks, as predicted before
    them, keep to the bound (vramplan/calibrate/partial_ckpt_accuracy.py)."""
    data = json.loads((data_dir("profiles") / "checkpointing_modes.json").read_text())
    rows = A.accuracy_rows()
    meets = {m for m in checkpointing.MODES if A.within_gate(A.mode_summary(rows, m))}
    assert set(data["measured"]) == meets == {"partial", "offload"}
    assert checkpointing.measured_checkpointing_modes() == frozenset(meets)
    for mode in meets:  # each checked on more than one architecture and both trainers
        runs = [r for r in rows if mode in r["modes"]]
        assert len({r["model"] for r in runs}) >= 3 and {r["plan"].trainer for r in runs} == {"trl", "hf"}
        assert all(r["layers_measured"] == r["layers_predicted"] for r in runs)


def test_a_mode_outside_the_bound_stays_closed():
    rows = [{"modes": ("partial",), "model": "m", "before_bytes": p, "measured_bytes": 100} for p in (100, 92)]
    assert not A.within_gate(A.mode_summary(rows, "partial"))  # -8% under: the side that runs out of memory
    rows[1]["before_bytes"] = 105
    assert A.within_gate(A.mode_summary(rows, "partial"))
    assert not A.within_gate(A.mode_summary(rows, "offload"))  # no run, no listing


def test_the_closed_gate_refuses_each_mode_by_name(checkpointing_gate_closed):
    for plan, flag, words in ((PLAN.with_(checkpoint_every=2), "--checkpoint-every", "every 2 layers"),
                              (PLAN.with_(checkpoint_offload=True), "--checkpoint-offload", "offloaded")):
        with pytest.raises(VramplanError) as exc:
            _estimate(plan)
        assert flag in str(exc.value) and words in str(exc.value)
        assert "profiles/checkpointing_modes.json" in str(exc.value) and "full checkpointing" in exc.value.hint
    _estimate(PLAN)  # full checkpointing stays open


def test_the_fields_need_checkpointing_on():
    for extra in ({"checkpoint_every": 3}, {"checkpoint_offload": True}):
        with pytest.raises(VramplanError, match="turns off"):
            TrainPlan(gradient_checkpointing=False, **extra)
    with pytest.raises(VramplanError, match="--checkpoint-every"):
        TrainPlan(checkpoint_every=0)


def test_several_gpus_are_refused_with_the_gate_open(checkpointing_gate_open):
    with pytest.raises(VramplanError, match="several GPUs"):
        _estimate(PLAN.with_(checkpoint_every=2, gpus=2))


def test_the_training_arguments_carry_both_into_the_trainers_kwargs():
    assert training_kwargs(PLAN.to_dict(), "/tmp/x")["gradient_checkpointing_kwargs"] == {"use_reentrant": False}
    kw = training_kwargs(PLAN.with_(checkpoint_every=3, checkpoint_offload=True).to_dict(), "/tmp/x")
    assert kw["gradient_checkpointing_kwargs"] == {"use_reentrant": False, "every_n_layers": 3, "offload": True}
    assert kw["gradient_checkpointing"] is True
    assert training_kwargs(PLAN.with_(gradient_checkpointing=False).to_dict(), "/tmp/x")[
        "gradient_checkpointing_kwargs"] is None


def test_the_command_and_the_plan_line_name_them_only_when_set():
    assert "--checkpoint-every" not in flags.command_args(PLAN)
    args = flags.command_args(PLAN.with_(checkpoint_every=4, checkpoint_offload=True))
    assert args[args.index("--checkpoint-every") + 1] == "4" and "--checkpoint-offload" in args
    line = flags.plan_line(PLAN.with_(checkpoint_every=4, checkpoint_offload=True).to_dict())
    assert "checkpointing on every 4 layers" in line and "checkpoints offloaded to CPU" in line
    assert "every" not in flags.plan_line(PLAN.to_dict())


def test_layer_i_is_checkpointed_when_i_mod_n_is_0():
    assert MODEL.layers == 16
    assert [checkpointed_layers(MODEL, PLAN.with_(checkpoint_every=k)) for k in (1, 2, 3, 4, 16, 40)] == \
        [16, 8, 6, 4, 1, 1]
    assert checkpointed_layers(MODEL, PLAN.with_(gradient_checkpointing=False)) == 0


def test_every_n_equal_to_the_layers_keeps_one_input_and_the_rest_whole(checkpointing_gate_open):
    one = _estimate(PLAN.with_(checkpoint_every=MODEL.layers))
    full, none = _estimate(PLAN), _estimate(PLAN.with_(gradient_checkpointing=False))
    la, t = layer_activations(MODEL, PLAN), PLAN.tokens
    act = Calibrations.shipped().params(GPU).activation_scale
    kept = one.phases["forward"]
    assert kept["checkpointed_inputs"] == la.input_per_token * t + rope_bytes(MODEL, PLAN)
    assert kept["activations"] == int(act * (MODEL.layers - 1) * la.saved(PLAN))
    assert _recompute(PLAN.with_(checkpoint_every=MODEL.layers)) == _recompute(PLAN)
    assert full.required_bytes < one.required_bytes < none.required_bytes


def test_memory_falls_as_more_layers_are_checkpointed(checkpointing_gate_open):
    needs = [_estimate(PLAN.with_(checkpoint_every=k)).required_bytes for k in (1, 2, 4, 8)]
    assert needs == sorted(needs) and len(set(needs)) == 4


def test_offloaded_inputs_leave_the_gpu_but_the_copy_in_flight(checkpointing_gate_open):
    full, off = _estimate(PLAN), _estimate(PLAN.with_(checkpoint_offload=True))
    la, t = layer_activations(MODEL, PLAN), PLAN.tokens
    assert full.phases["forward"]["checkpointed_inputs"] == 16 * la.input_per_token * t + rope_bytes(MODEL, PLAN)
    assert off.phases["forward"]["checkpointed_inputs"] == 0
    assert _recompute(PLAN.with_(checkpoint_offload=True)) == {
        **_recompute(PLAN), "offloaded_input_copy": la.input_per_token * t + rope_bytes(MODEL, PLAN)}
    assert off.peak_allocated_bytes < full.peak_allocated_bytes
    # partial and offloaded: the layers left whole keep the cos/sin on the GPU
    both = _estimate(PLAN.with_(checkpoint_every=2, checkpoint_offload=True))
    assert both.phases["forward"]["checkpointed_inputs"] == rope_bytes(MODEL, PLAN)
    assert any("pinned host memory" in a for a in off.assumptions)


def test_recompute_is_paid_only_for_the_checkpointed_layers(checkpointing_gate_open):
    def step(plan):
        return predicted_step_seconds(MODEL, GPU, plan, _estimate(plan))
    seconds = [step(PLAN.with_(gradient_checkpointing=False))] + [
        step(PLAN.with_(checkpoint_every=k)) for k in (16, 4, 2, 1)]
    assert seconds == sorted(seconds) and len(set(seconds)) == 5


def test_offload_adds_the_pcie_copies_both_ways(checkpointing_gate_open):
    plan = PLAN.with_(checkpoint_every=2, checkpoint_offload=True)
    la = layer_activations(MODEL, plan)
    copied = 2 * 8 * (la.input_per_token * plan.tokens + rope_bytes(MODEL, plan))
    assert offloaded_gb(MODEL, plan) == pytest.approx(copied / 1e9)
    assert offloaded_gb(MODEL, PLAN) == 0
    b = _estimate(plan)
    column = features(MODEL, plan.with_(grad_accum=3), b)[FEATURES.index("offload_gb")]
    assert column == pytest.approx(3 * copied / 1e9)  # per micro-batch
    on_gpu = PLAN.with_(checkpoint_every=2)
    params = speed_params(GPU)
    extra = predicted_step_seconds(MODEL, GPU, plan, b) - predicted_step_seconds(MODEL, GPU, on_gpu, _estimate(on_gpu))
    assert params.offload_gbs > 0 and extra > copied / (params.offload_gbs * 1e9) * 0.9
