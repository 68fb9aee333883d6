"""TrainPlan -> transformers TrainingArguments keyword arguments, as a plain dict (no torch, no transformers)."""
from __future__ import annotations


def training_kwargs(plan: dict, output_dir: str, *, max_steps: int = -1, epochs: float = 1.0,
                    use_cpu: bool = False, save_steps: int | None = None, logging_steps: int = 10_000) -> dict:
    ckpt = plan["gradient_checkpointing"]
    fsdp = plan.get("gpus", 1) > 1 and plan.get("parallel", "fsdp") == "fsdp"
    ddp = plan.get("gpus", 1) > 1 and not fsdp
    return {
        "output_dir": output_dir, "per_device_train_batch_size": plan["batch"],
        "gradient_accumulation_steps": plan.get("grad_accum", 1), "max_steps": max_steps,
        "num_train_epochs": epochs, "learning_rate": 2e-4, "bf16": plan["dtype"] == "bf16",
        "fp16": plan["dtype"] == "fp16", "optim": plan["optim"], "gradient_checkpointing": ckpt,
        # sharded QLoRA checkpoints reentrantly, as peft's FSDP recipe does
        "gradient_checkpointing_kwargs": {"use_reentrant": fsdp} if ckpt else None,
        # every LoRA weight gets a gradient every step: no search for unused parameters
        **({"ddp_find_unused_parameters": False} if ddp else {}),
        "logging_steps": logging_steps, "save_strategy": "steps" if save_steps else "no",
        **({"save_steps": save_steps} if save_steps else {}), "report_to": [], "dataloader_num_workers": 0,
        "remove_unused_columns": False, "disable_tqdm": True, "seed": 0, "use_cpu": use_cpu,
    }
