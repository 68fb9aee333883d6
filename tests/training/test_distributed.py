"""Multi-GPU: the per-rank FSDP model, the accelerate configuration vramplan writes, the launch command."""
import sys

import pytest
import yaml

from vramplan.errors import VramplanError
from vramplan.memory import estimate
from vramplan.plan import TrainPlan
from vramplan.profiles import find_gpu, find_model
from vramplan.training.distributed import fsdp_accelerate_config, launch_command, write_accelerate_config


def test_fsdp_shards_the_base_and_adapter_but_not_the_activations():
    model, gpu = find_model("llama-3.1-8b"), find_gpu("H200")
    one = estimate(model, gpu, TrainPlan(seq=4096, kbit_prepare=False))
    two = estimate(model, gpu, TrainPlan(seq=4096, gpus=2))
    four = estimate(model, gpu, TrainPlan(seq=4096, gpus=4))
    bwd1, bwd2, bwd4 = one.phases["backward"], two.phases["backward"], four.phases["backward"]
    assert bwd2["weights_4bit"] == -(-bwd1["weights_4bit"] // 2) and bwd4["lora_adapter"] < bwd2["lora_adapter"]
    assert bwd2["logits_loss"] == bwd1["logits_loss"]  # micro-batch per GPU: activations stay per rank
    assert two.components["fsdp_communication"] > 0 and "fsdp_root_shard" in two.components
    assert four.peak_allocated_bytes < two.peak_allocated_bytes < one.peak_allocated_bytes
    assert two.phases["load"] == one.phases["load"]  # every rank loads the whole model before sharding


def test_the_measured_24gib_proof_is_what_the_planner_says():
    # calibration/fsdp: llama-3.1-8b at 8192 tokens ran out of memory on one H200 capped at 24 GiB, trained on two
    model, gpu = find_model("llama-3.1-8b"), find_gpu("H200")
    cap = 24 * 2**30
    assert not estimate(model, gpu, TrainPlan(seq=8192), vram_bytes=cap).fits
    assert estimate(model, gpu, TrainPlan(seq=8192, gpus=2), vram_bytes=cap).fits


def test_multi_gpu_plans_use_the_sharded_recipe_and_refuse_int8():
    assert TrainPlan(gpus=2).kbit_prepare is False
    with pytest.raises(VramplanError, match="int8"):
        TrainPlan(gpus=2, quant="int8")
    with pytest.raises(VramplanError, match="--gpus"):
        TrainPlan(gpus=0)


def test_accelerate_config_is_fsdp_full_shard_for_sharded_qlora(tmp_path):
    cfg = fsdp_accelerate_config(2)
    assert cfg["distributed_type"] == "FSDP" and cfg["num_processes"] == 2
    fsdp = cfg["fsdp_config"]
    assert fsdp["fsdp_sharding_strategy"] == "FULL_SHARD" and fsdp["fsdp_cpu_ram_efficient_loading"]
    assert fsdp["fsdp_use_orig_params"] is False and fsdp["fsdp_offload_params"] is False
    assert fsdp_accelerate_config(2, offload=True)["fsdp_config"]["fsdp_offload_params"] is True
    path = write_accelerate_config(tmp_path / "accelerate.yaml", 4)
    assert yaml.safe_load(path.read_text()) == fsdp_accelerate_config(4)


def test_launch_command_runs_accelerate_with_one_process_per_gpu(tmp_path):
    cmd = launch_command(tmp_path / "a.yaml", 2, "vramplan.runtime.fsdp_measure", ["spec.json", "out"])
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert cmd[cmd.index("--num_processes") + 1] == "2" and cmd[cmd.index("--config_file") + 1].endswith("a.yaml")
    assert cmd[-4:] == ["-m", "vramplan.runtime.fsdp_measure", "spec.json", "out"]


def test_sharded_runs_checkpoint_reentrantly_and_feed_every_rank():
    from vramplan.training.arguments import training_kwargs
    plan = TrainPlan(gpus=2).to_dict()
    assert training_kwargs(plan, "o")["gradient_checkpointing_kwargs"] == {"use_reentrant": True}
    assert training_kwargs(TrainPlan().to_dict(), "o")["gradient_checkpointing_kwargs"] == {"use_reentrant": False}
