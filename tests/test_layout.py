"""A plan is what was asked for; resolve() derives how it runs."""
from functools import partial
import pytest

from vramplan.layout import resolve
from vramplan.memory import estimate
from vramplan.plan import TrainPlan
HfPlan = partial(TrainPlan, trainer="hf")  # the plain Trainer: what these figures were measured on
from vramplan.profiles import find_gpu, find_model
from vramplan.store.calibrations import calibration_for
from vramplan.units import GiB


def test_a_plan_is_never_rewritten():
    two = HfPlan(gpus=2)
    assert two.kbit_prepare is True and two.parallel == "fsdp"  # what was asked; FSDP skips it in the layout
    assert resolve(two).kbit_prepare is False and resolve(two).fsdp
    back = two.with_(gpus=1)
    assert back == HfPlan() and resolve(back).kbit_prepare is True and resolve(back).parallel == "single"


def test_back_to_one_gpu_estimates_the_one_gpu_recipe():
    # the fault: HfPlan(gpus=2).with_(gpus=1) kept kbit_prepare=False and estimated 11.1 GiB, not 14.6
    model, gpu = find_model("llama-3.1-8b"), find_gpu("RTX-4090")
    calibration = calibration_for(gpu)
    back = estimate(model, gpu, HfPlan(gpus=2).with_(gpus=1), calibration)
    assert back.peak_bytes == estimate(model, gpu, HfPlan(), calibration).peak_bytes
    assert back.peak_bytes / GiB == pytest.approx(14.55, abs=0.1)


def test_layout_fields():
    ddp = resolve(HfPlan(gpus=2, parallel="ddp"))
    assert ddp.ddp and ddp.kbit_prepare and not ddp.offload and ddp.quant_storage == "uint8"  # the one-GPU recipe
    assert resolve(HfPlan(gpus=2)).quant_storage == "bf16"
    off = resolve(HfPlan(gpus=2, offload=True, optim="adamw_torch", dtype="fp16"))
    assert off.fsdp and off.offload and off.quant_storage == "fp16" and off.rank == 16  # the plan reads through
    one = resolve(HfPlan(parallel="ddp"))  # ignored on one GPU
    assert one.parallel == "single" and one.quant_storage == "uint8"
    assert resolve(HfPlan(quant="none")).kbit_prepare is False
    assert resolve(HfPlan(gpus=2)).to_dict()["kbit_prepare"] is False  # what the torch workers are handed
