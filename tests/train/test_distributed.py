"""Multi-GPU: the per-rank model (FSDP, DDP, CPU offload), the accelerate configuration vramplan writes, the
launch command, and how `train --gpus` reads its ranks."""
from functools import partial
import sys

import pytest
import yaml

from vramplan.errors import VramplanError
from vramplan.layout import resolve
from vramplan.memory import estimate
from vramplan.memory.calibration import DEFAULT_CALIBRATION
from vramplan.plan import TrainPlan
HfPlan = partial(TrainPlan, trainer="hf")  # the plain Trainer: what these figures were measured on
from vramplan.profiles import find_gpu, find_model
from vramplan.train.distributed import (
    accelerate_config,
    launch_command,
    plan_accelerate_config,
    write_accelerate_config,
)
from vramplan.train.multi_gpu import measured_peak, trial_from_ranks, write_launch
from vramplan.train.verify import Trial
from vramplan.units import GiB
from vramplan.workers import WORKERS


def test_fsdp_shards_the_base_and_adapter_but_not_the_activations():
    model, gpu = find_model("llama-3.1-8b"), find_gpu("H200")
    one = estimate(model, gpu, HfPlan(seq=4096, kbit_prepare=False), DEFAULT_CALIBRATION)
    two = estimate(model, gpu, HfPlan(seq=4096, gpus=2), DEFAULT_CALIBRATION)
    four = estimate(model, gpu, HfPlan(seq=4096, gpus=4), DEFAULT_CALIBRATION)
    bwd1, bwd2, bwd4 = one.phases["backward"], two.phases["backward"], four.phases["backward"]
    assert bwd2["weights_4bit"] == -(-bwd1["weights_4bit"] // 2) and bwd4["lora_adapter"] < bwd2["lora_adapter"]
    assert bwd2["logits_loss"] == bwd1["logits_loss"]  # micro-batch per GPU: activations stay per rank
    assert two.components["nccl_communication"] > 0 and "fsdp_root_shard" in two.components
    assert four.peak_allocated_bytes < two.peak_allocated_bytes < one.peak_allocated_bytes
    assert two.phases["load"] == one.phases["load"]  # every rank loads the whole model before sharding


def test_ddp_keeps_a_whole_copy_plus_gradient_buckets():
    model, gpu = find_model("mistral-7b-v0.3"), find_gpu("H200")
    one = estimate(model, gpu, HfPlan(seq=2048), DEFAULT_CALIBRATION)
    ddp = estimate(model, gpu, HfPlan(seq=2048, gpus=2, parallel="ddp"), DEFAULT_CALIBRATION)
    assert ddp.plan["kbit_prepare"] is True  # the one-GPU recipe on every GPU
    assert ddp.components["ddp_gradient_buckets"] == one.components["lora_adapter"]
    assert ddp.peak_allocated_bytes == one.peak_allocated_bytes + one.components["lora_adapter"]


def test_cpu_offload_moves_the_shards_off_the_gpu():
    model, gpu = find_model("llama-3.1-8b"), find_gpu("H200")
    sharded = estimate(model, gpu, HfPlan(seq=4096, gpus=2, optim="adamw_torch"), DEFAULT_CALIBRATION)
    offload = estimate(model, gpu, HfPlan(seq=4096, gpus=2, optim="adamw_torch", offload=True), DEFAULT_CALIBRATION)
    assert "weights_4bit" not in offload.components and "optimizer_states" not in offload.components
    assert offload.peak_allocated_bytes < sharded.peak_allocated_bytes
    with pytest.raises(VramplanError, match="adamw_torch"):
        HfPlan(gpus=2, offload=True)  # bnb's paged 8-bit optimizer cannot step CPU parameters
    with pytest.raises(VramplanError, match="--gpus"):
        HfPlan(offload=True, optim="adamw_torch")


def test_the_measured_24gib_proof_is_what_the_planner_says():
    # calibration/multi_gpu: llama-3.1-8b at 8192 tokens ran out of memory on one H200 capped at 24 GiB, trained on two
    model, gpu = find_model("llama-3.1-8b"), find_gpu("H200")
    cap = 24 * GiB
    assert not estimate(model, gpu, HfPlan(seq=8192), DEFAULT_CALIBRATION, vram_bytes=cap).within_capacity
    assert estimate(model, gpu, HfPlan(seq=8192, gpus=2), DEFAULT_CALIBRATION, vram_bytes=cap).within_capacity


def test_multi_gpu_plans_use_the_sharded_recipe_and_refuse_int8():
    assert resolve(HfPlan(gpus=2)).kbit_prepare is False
    assert resolve(HfPlan(gpus=2, parallel="ddp", quant="int8")).kbit_prepare is True
    with pytest.raises(VramplanError, match="int8"):
        HfPlan(gpus=2, quant="int8")
    with pytest.raises(VramplanError, match="--gpus"):
        HfPlan(gpus=0)
    assert HfPlan(gpus=4, batch=2, grad_accum=2).effective_batch == 16


def test_accelerate_config_is_fsdp_full_shard_for_sharded_qlora(tmp_path):
    cfg = accelerate_config(2)
    assert cfg["distributed_type"] == "FSDP" and cfg["num_processes"] == 2
    fsdp = cfg["fsdp_config"]
    assert fsdp["fsdp_sharding_strategy"] == "FULL_SHARD" and fsdp["fsdp_cpu_ram_efficient_loading"]
    assert fsdp["fsdp_use_orig_params"] is False and fsdp["fsdp_offload_params"] is False
    assert accelerate_config(2, offload=True)["fsdp_config"]["fsdp_offload_params"] is True
    ddp = plan_accelerate_config(HfPlan(gpus=4, parallel="ddp").to_dict())
    assert ddp["distributed_type"] == "MULTI_GPU" and "fsdp_config" not in ddp and ddp["num_processes"] == 4
    plan = HfPlan(gpus=4).to_dict()
    path = write_accelerate_config(tmp_path / "accelerate.yaml", plan)
    assert yaml.safe_load(path.read_text()) == accelerate_config(4)


def test_launch_command_runs_accelerate_with_one_process_per_gpu(tmp_path):
    cmd = launch_command(tmp_path / "a.yaml", 2, WORKERS["rank_measure"], ["spec.json", "out"], port=1234)
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert cmd[cmd.index("--num_processes") + 1] == "2" and cmd[cmd.index("--config_file") + 1].endswith("a.yaml")
    assert cmd[cmd.index("--main_process_port") + 1] == "1234"
    assert cmd[-4:] == ["-m", WORKERS["rank_measure"], "spec.json", "out"]


def test_train_writes_its_configuration_and_launch_spec_into_the_output(tmp_path):
    import json
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "a b c"}\n')
    plan = HfPlan(gpus=2, seq=1024)
    spec_path, cmd = write_launch(tmp_path / "run", "/models/x", str(data), plan, max_steps=10, epochs=1.0,
                                  save_steps=None)
    spec = json.loads(spec_path.read_text())
    assert spec["plan"] == resolve(plan).to_dict() and spec["plan"]["kbit_prepare"] is False  # the layout
    assert spec["data"] == str(data.resolve()) and spec["command"] == cmd
    assert yaml.safe_load((tmp_path / "run" / "accelerate_config.yaml").read_text())["distributed_type"] == "FSDP"
    assert cmd[-2:] == [WORKERS["rank_train"], str(spec_path)]


def test_the_worst_rank_decides_verification():
    def rank(r, peak, status="ok"):
        return {"rank": r, "status": status, "nvml": {"before_init": 2**20, "peak": peak, "end": peak // 2},
                **({"error": "CUDA out of memory"} if status == "oom" else {})}
    trial = trial_from_ranks([rank(0, 10 * GiB), rank(1, 12 * GiB)], 2)
    assert trial.status == "ok" and trial.peak_bytes == 12 * GiB - 2**20 and len(trial.rank_peaks) == 2
    assert trial_from_ranks([rank(0, GiB), rank(1, GiB, "oom")], 2).status == "oom"
    assert trial_from_ranks([rank(0, GiB)], 2).status == "error"  # a rank that never reported
    assert measured_peak({"nvml": {"before_init": 5, "peak": 9}}) == 4
    one_gpu = {"status": "ok", "nvml": {"before_init": 5, "peak": 9, "after_train": 11, "end": 10}}
    assert Trial.from_record(one_gpu).peak_bytes == 6  # one function for every measured peak


def test_sharded_runs_checkpoint_reentrantly_and_ddp_skips_the_unused_parameter_search():
    from vramplan.train.arguments import training_kwargs
    assert training_kwargs(HfPlan(gpus=2).to_dict(), "o")["gradient_checkpointing_kwargs"] == {"use_reentrant": True}
    assert training_kwargs(HfPlan().to_dict(), "o")["gradient_checkpointing_kwargs"] == {"use_reentrant": False}
    ddp = training_kwargs(HfPlan(gpus=2, parallel="ddp").to_dict(), "o")
    assert ddp["gradient_checkpointing_kwargs"] == {"use_reentrant": False} and ddp["ddp_find_unused_parameters"] is False
