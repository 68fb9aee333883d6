"""Several GPUs of one host: the accelerate/FSDP configuration vramplan uses and the command that launches it.

The recipe is the one peft documents for sharded QLoRA ("Use PEFT QLoRA and FSDP"): the 4-bit base stored in the
compute dtype (bnb_4bit_quant_storage) so FSDP can flatten and shard it, FULL_SHARD, transformer-layer wrapping
(the Trainer additionally wraps the LoRA layers), rank 0 loads and broadcasts (cpu_ram_efficient_loading),
reentrant checkpointing, no prepare_model_for_kbit_training. Pure data: no torch, no accelerate import.
"""
from __future__ import annotations

import sys
from pathlib import Path


def fsdp_accelerate_config(gpus: int, offload: bool = False) -> dict:
    return {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": "FSDP",
        "downcast_bf16": "no",
        "fsdp_config": {
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
        },
        "machine_rank": 0,
        "main_training_function": "main",
        "mixed_precision": "no",
        "num_machines": 1,
        "num_processes": gpus,
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": False,
    }


def write_accelerate_config(path: Path, gpus: int, offload: bool = False) -> Path:
    import yaml
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# written by vramplan: FSDP full shard of the 4-bit base, as `vramplan train --gpus` runs it\n"
                    + yaml.safe_dump(fsdp_accelerate_config(gpus, offload), sort_keys=True))
    return path


def launch_command(config_path: Path, gpus: int, module: str, args: list[str], port: int = 29517) -> list[str]:
    """`accelerate launch` of a python module, one process per GPU, through the same interpreter."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_path),
            "--num_processes", str(gpus), "--main_process_port", str(port), "-m", module, *args]
