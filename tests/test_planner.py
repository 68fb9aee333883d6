"""Planner: built once from a GPU and the calibration it is handed."""
from functools import partial
import pytest

from vramplan.memory import estimate
from vramplan.memory.calibration import DEFAULT_CALIBRATION
from vramplan.plan import TrainPlan
HfPlan = partial(TrainPlan, trainer="hf")  # the plain Trainer: what these figures were measured on
from vramplan.planner import Planner
from vramplan.profiles import find_gpu, find_model
from vramplan.store.calibrations import Calibrations
from vramplan.units import GiB

MODEL = find_model("llama-3.1-8b")


def test_estimate_needs_calibration_parameters():
    with pytest.raises(TypeError):
        estimate(MODEL, find_gpu("T4"), HfPlan())  # no silent built-in defaults


def test_the_planner_uses_the_calibration_it_is_handed():
    gpu = find_gpu("T4")
    shipped, defaults = Planner(gpu, Calibrations.shipped()), Planner(gpu, Calibrations.defaults())
    assert defaults.calibration is DEFAULT_CALIBRATION and shipped.calibration is not DEFAULT_CALIBRATION
    plan = HfPlan(dtype="fp16")
    assert shipped.estimate(MODEL, plan).calibration["source"] != defaults.estimate(MODEL, plan).calibration["source"]
    assert shipped.estimate(MODEL, plan) == estimate(MODEL, gpu, plan, shipped.calibration)
    rec = shipped.fit(MODEL).recommended
    assert rec.breakdown == shipped.estimate(MODEL, rec.plan)  # fit and estimate agree: one calibration
    assert shipped.judge(MODEL, rec.plan).required_bytes == rec.breakdown.required_bytes


def test_vram_caps_every_answer():
    planner = Planner(find_gpu("H100-80GB"), Calibrations.shipped(), vram_bytes=18 * GiB)
    assert planner.capacity_bytes == 18 * GiB
    assert planner.estimate(MODEL, HfPlan()).capacity_bytes == 18 * GiB
    assert planner.fit(MODEL).capacity_bytes == 18 * GiB
    row = planner.table_row(MODEL, 2048, 16)
    assert row["fits"] and row["longest_seq"] == planner.longest_seq(MODEL, TrainPlan())


def test_biggest_saving_is_a_decision_with_the_changed_fields():
    from vramplan import decisions as D
    from vramplan.present import say
    planner = Planner(find_gpu("T4"), Calibrations.shipped())
    plan = HfPlan(dtype="fp16", batch=4, gradient_checkpointing=False)
    saving = planner.biggest_saving(MODEL, plan, planner.estimate(MODEL, plan))
    assert saving.code == D.BIGGEST_SAVING and saving["changes"] == {"gradient_checkpointing": True}
    assert saving["saves_bytes"] == (planner.estimate(MODEL, plan).peak_bytes
                                     - planner.estimate(MODEL, plan.with_(gradient_checkpointing=True)).peak_bytes)
    assert say(saving) == "gradient checkpointing on"
