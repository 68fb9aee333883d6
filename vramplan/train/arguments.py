"""TrainPlan -> transformers TrainingArguments keyword arguments, as a plain dict (no torch, no transformers)."""
from __future__ import annotations

from .. import flags
from ..layout import resolve
from ..plan import TrainPlan


def training_kwargs(plan: dict, output_dir: str, *, max_steps: int = -1, epochs: float = 1.0,
                    use_cpu: bool = False, save_steps: int | None = None, logging_steps: int = 10_000) -> dict:
    """plan: a plan's (or a layout's) dict. What the plan's fields set (vramplan.plan: training_args), what its
    layout implies, and the run's own settings."""
    lay = resolve(TrainPlan.from_dict(plan))
    ckpt = lay.gradient_checkpointing
    planned = flags.training_arguments(lay.plan)
    # every_n_layers and offload: the Trainer pops them before the rest reaches torch's checkpoint (transformers
    # 5.x trainer.py); gradient_checkpointing_kwargs is 5.2x's alias of activation_checkpointing_kwargs
    ckpt_kwargs = planned.pop("gradient_checkpointing_kwargs", {})
    return {
        "output_dir": output_dir, **planned, "max_steps": max_steps,
        "num_train_epochs": epochs, "learning_rate": 2e-4,
        # sharded QLoRA checkpoints reentrantly, as peft's FSDP recipe does
        "gradient_checkpointing_kwargs": {"use_reentrant": lay.fsdp, **ckpt_kwargs} if ckpt else None,
        # every LoRA weight gets a gradient every step: no search for unused parameters
        **({"ddp_find_unused_parameters": False} if lay.ddp else {}),
        "logging_steps": logging_steps, "save_strategy": "steps" if save_steps else "no",
        **({"save_steps": save_steps} if save_steps else {}), "report_to": [], "dataloader_num_workers": 0,
        "remove_unused_columns": False, "disable_tqdm": True, "seed": 0, "use_cpu": use_cpu,
    }
