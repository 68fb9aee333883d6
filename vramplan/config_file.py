"""Read an existing training setup (JSON or YAML) into plan fields.

Two shapes are read (the keys each plan field is read from are declared with the field, vramplan.plan):
- transformers/peft style: TrainingArguments fields, a LoraConfig and a BitsAndBytesConfig, either flat or under
  keys such as `training_args`/`args`, `lora_config`/`peft_config`/`lora`, `bnb_config`/`quantization_config`;
- axolotl's QLoRA keys.
Every key is accounted for: `read` (changes the plan), `ignored` (known, no effect on memory), `unknown`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from . import flags
from .errors import VramplanError

MODEL_KEYS = {"transformers": ("model_name_or_path", "base_model_name_or_path"), "axolotl": ("base_model",)}
AXOLOTL_MARKERS = ("adapter", "base_model", "sequence_len", "micro_batch_size")
# -- keys known to have no effect on memory -----------------------------------------------------------------
IGNORED = {
    "output_dir", "learning_rate", "lr_scheduler_type", "warmup_ratio", "warmup_steps", "num_train_epochs",
    "max_steps", "logging_steps", "save_steps", "save_strategy", "eval_steps", "eval_strategy", "evaluation_strategy",
    "report_to", "seed", "weight_decay", "max_grad_norm", "adam_beta1", "adam_beta2", "adam_epsilon",
    "dataset_text_field", "packing", "bias", "task_type", "inference_mode", "lora_fan_in_fan_out", "run_name",
    "datasets", "dataset_prepared_path", "val_set_size", "wandb_project", "wandb_entity", "wandb_name",
    "special_tokens", "tokenizer_type", "model_type", "strict", "sample_packing", "pad_to_sequence_len",
    "num_epochs", "lr_scheduler", "train_on_inputs", "group_by_length", "logging_dir", "evals_per_epoch",
    "saves_per_epoch", "warmup_ratio", "resume_from_checkpoint", "local_rank", "xformers_attention",
    "tf32", "deepspeed", "fsdp", "fsdp_config", "trust_remote_code", "hub_model_id", "push_to_hub",
    "dataloader_num_workers", "remove_unused_columns", "gradient_checkpointing_kwargs", "llm_int8_threshold",
    "bnb_4bit_quant_storage", "lora_model_dir", "chat_template", "torch_dtype", "quant_method",
}
SECTIONS = ("training_args", "args", "training_arguments", "lora_config", "peft_config", "lora", "bnb_config",
            "quantization_config", "bitsandbytes_config", "model")


@dataclass
class ConfigPlan:
    plan: dict = field(default_factory=dict)
    model: str | None = None
    read: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def load(path: str | Path) -> ConfigPlan:
    path = Path(path)
    if not path.is_file():
        raise VramplanError(f"--config {path}: no such file")
    text = path.read_text()
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # yaml.YAMLError, json.JSONDecodeError: one line, the file named
        raise VramplanError(f"--config {path}: malformed {'YAML' if path.suffix.lower() in ('.yaml', '.yml') else 'JSON'} "
                            f"({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise VramplanError(f"--config {path}: expected a mapping of settings at the top level")
    return parse(data)


def parse(data: dict) -> ConfigPlan:
    out = ConfigPlan()
    flat: dict = {}
    for key, value in data.items():
        if key in SECTIONS and isinstance(value, dict):
            for k, v in value.items():
                flat[k] = v
        else:
            flat[key] = value
    axolotl = any(k in flat for k in AXOLOTL_MARKERS)
    plan_keys = flags.config_keys(axolotl)
    model_keys = set(MODEL_KEYS["transformers"]) | (set(MODEL_KEYS["axolotl"]) if axolotl else set())
    found: dict[str, dict] = {}
    for key, value in flat.items():
        if key in plan_keys:
            found.setdefault(plan_keys[key], {})[key] = value
            out.read.append(key)
        elif key in model_keys:
            if value:
                out.model = str(value)
            out.read.append(key)
        elif key in IGNORED:
            out.ignored.append(key)
        else:
            out.unknown.append(key)
    out.plan = flags.from_config(found)
    return out
