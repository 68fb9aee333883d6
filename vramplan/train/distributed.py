"""Several GPUs of one host: the accelerate configuration vramplan uses and the command that launches it.

FSDP follows the recipe peft documents for sharded QLoRA ("Use PEFT QLoRA and FSDP"): the 4-bit base stored in
the compute dtype (bnb_4bit_quant_storage) so FSDP can flatten and shard it, FULL_SHARD, transformer-layer
wrapping (the Trainer additionally wraps the LoRA layers), reentrant checkpointing, no
prepare_model_for_kbit_training; CPU offload of the shards as an option. DDP (MULTI_GPU) is the standard
one-GPU recipe on every GPU, for models that fit one card. Pure data: no torch, no accelerate import.
"""
from __future__ import annotations

import sys
from pathlib import Path


def accelerate_config(gpus: int, parallel: str = "fsdp", offload: bool = False) -> dict:
    config = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": "FSDP" if parallel == "fsdp" else "MULTI_GPU",
        "downcast_bf16": "no",
        "machine_rank": 0,
        "main_training_function": "main",
        "mixed_precision": "no",  # the Trainer's bf16/fp16 flags set autocast, as on one GPU
        "num_machines": 1,
        "num_processes": gpus,
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": False,
    }
    if parallel == "fsdp":
        config["fsdp_config"] = {
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_backward_prefetch": "BACKWARD_PRE",
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_forward_prefetch": False,
            "fsdp_offload_params": offload,
            "fsdp_sharding_strategy": "FULL_SHARD",
            "fsdp_state_dict_type": "SHARDED_STATE_DICT",
            "fsdp_sync_module_states": True,
            "fsdp_use_orig_params": False,
            "fsdp_version": 1,
        }
    return config


def plan_accelerate_config(plan: dict) -> dict:
    return accelerate_config(plan.get("gpus", 1), plan.get("parallel", "fsdp"), plan.get("offload", False))


def write_accelerate_config(path: Path, plan: dict) -> Path:
    import yaml
    path.parent.mkdir(parents=True, exist_ok=True)
    what = ("FSDP full shard of the 4-bit base" + (", CPU offload" if plan.get("offload") else "")
            if plan.get("parallel", "fsdp") == "fsdp" else "data parallel (DDP), a whole model per GPU")
    path.write_text(f"# written by vramplan: {what}, as `vramplan train --gpus {plan['gpus']}` runs it\n"
                    f"# run it yourself: accelerate launch --config_file {path.name} your_script.py\n"
                    + yaml.safe_dump(plan_accelerate_config(plan), sort_keys=True))
    return path


def launch_command(config_path: Path, gpus: int, module: str, args: list[str], port: int = 29517) -> list[str]:
    """`accelerate launch` of a python module, one process per GPU, through the same interpreter."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_path),
            "--num_processes", str(gpus), "--main_process_port", str(port), "-m", module, *args]


def free_port() -> int:
    """A TCP port nobody listens on, so two launches on one host do not collide."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
