import pytest

from vramplan.memory.adapter import lora_tensor_shapes, trainable_params
from vramplan.memory.optimizer import optimizer_memory
from vramplan.plan import TrainPlan
from vramplan.profiles import find_model

MIN = 128 * 2**20


def test_lora_params_match_peft_count():
    # peft print_trainable_parameters for llama-3.1-8b, r=16, all linear: 41,943,040
    assert trainable_params(find_model("llama-3.1-8b"), TrainPlan()) == 41_943_040
    assert trainable_params(find_model("llama-3.1-8b"), TrainPlan(rank=64)) == 167_772_160


def test_adamw_torch_keeps_two_fp32_states():
    mem = optimizer_memory([(16, 4096), (4096, 16)], "adamw_torch", MIN)
    assert mem.device == 2 * 2 * 4 * 16 * 4096 and mem.managed == 0


def test_8bit_states_and_fp32_below_4096_elements():
    big = optimizer_memory([(16, 4096)], "adamw_8bit", MIN)
    assert big.device == 2 * 65536 + 2 * 4 * (65536 // 256)
    small = optimizer_memory([(8, 256)], "adamw_8bit", MIN)
    assert small.device == 2 * 4 * 2048


def test_paged_states_go_to_managed_memory_from_1e5_elements():
    below = optimizer_memory([(16, 4096)], "paged_adamw_8bit", MIN)  # 65,536 elements: ordinary memory
    assert below.managed == 0
    above = optimizer_memory([(64, 4096)], "paged_adamw_8bit", MIN)  # 262,144 elements: managed
    assert above.managed == MIN  # measured floor of managed memory on the device
    large = optimizer_memory([(64, 4096)] * 200, "paged_adamw_32bit", MIN)
    assert large.managed == 200 * 2 * 4 * 64 * 4096


@pytest.mark.parametrize("optim", ["sgd", "adafactor"])
def test_lean_optimizers_cost_less_than_adamw(optim):
    shapes = lora_tensor_shapes(find_model("llama-3.2-1b"), TrainPlan())
    lean = optimizer_memory(shapes, optim, MIN)
    full = optimizer_memory(shapes, "adamw_torch", MIN)
    assert lean.device < full.device


def test_fused_adamw_trades_foreach_temporaries_for_device_step_counters():
    shapes = lora_tensor_shapes(find_model("llama-3.2-1b"), TrainPlan())
    fused = optimizer_memory(shapes, "adamw_torch_fused", MIN)
    foreach = optimizer_memory(shapes, "adamw_torch", MIN)
    assert fused.device == foreach.device + 512 * len(shapes)
    assert fused.step_temp == 0 < foreach.step_temp
