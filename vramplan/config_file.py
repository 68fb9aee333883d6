"""Read an existing training setup (JSON or YAML) into plan fields.

Two shapes are read:
- transformers/peft style: TrainingArguments fields, a LoraConfig and a BitsAndBytesConfig, either flat or under
  keys such as `training_args`/`args`, `lora_config`/`peft_config`/`lora`, `bnb_config`/`quantization_config`;
- axolotl's QLoRA keys.
Every key is accounted for: `read` (changes the plan), `ignored` (known, no effect on memory), `unknown`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import VramplanError

# -- keys that change the plan --------------------------------------------------------------------------
HF_KEYS = {
    "per_device_train_batch_size": "batch", "gradient_accumulation_steps": "grad_accum", "optim": "optim",
    "bf16": "bf16", "fp16": "fp16", "gradient_checkpointing": "gradient_checkpointing",
    "max_seq_length": "seq", "max_length": "seq", "model_max_length": "seq",
    "r": "rank", "lora_alpha": "alpha", "lora_dropout": "dropout", "target_modules": "targets",
    "load_in_4bit": "load_in_4bit", "load_in_8bit": "load_in_8bit", "bnb_4bit_quant_type": "quant_type",
    "bnb_4bit_use_double_quant": "double_quant", "bnb_4bit_compute_dtype": "compute_dtype",
    "attn_implementation": "attn", "model_name_or_path": "model", "base_model_name_or_path": "model",
}
AXOLOTL_KEYS = {
    "base_model": "model", "adapter": "adapter", "load_in_4bit": "load_in_4bit", "load_in_8bit": "load_in_8bit",
    "lora_r": "rank", "lora_alpha": "alpha", "lora_dropout": "dropout", "lora_target_modules": "targets",
    "lora_target_linear": "target_linear", "micro_batch_size": "batch", "gradient_accumulation_steps": "grad_accum",
    "sequence_len": "seq", "optimizer": "optim", "bf16": "bf16", "fp16": "fp16",
    "gradient_checkpointing": "gradient_checkpointing", "flash_attention": "flash_attention",
    "sdp_attention": "sdp_attention", "bnb_4bit_use_double_quant": "double_quant",
}
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
    axolotl = "adapter" in flat or "base_model" in flat or "sequence_len" in flat or "micro_batch_size" in flat
    table = {**HF_KEYS, **AXOLOTL_KEYS} if axolotl else HF_KEYS
    raw: dict = {}
    for key, value in flat.items():
        if key in table:
            raw[table[key]] = value
            out.read.append(key)
        elif key in IGNORED:
            out.ignored.append(key)
        else:
            out.unknown.append(key)
    _to_plan(raw, out)
    return out


def _to_plan(raw: dict, out: ConfigPlan) -> None:
    p = out.plan
    for key in ("rank", "batch", "grad_accum", "seq"):
        if key in raw:
            p[key] = _int(raw[key], key)
    for key in ("alpha", "dropout"):
        if key in raw:
            p[key] = float(raw[key])
    if "optim" in raw:
        p["optim"] = str(raw["optim"])
    if "gradient_checkpointing" in raw:
        p["gradient_checkpointing"] = bool(raw["gradient_checkpointing"])
    if "double_quant" in raw:
        p["double_quant"] = bool(raw["double_quant"])
    if raw.get("bf16") == "auto":
        pass  # axolotl: bf16 where the GPU has it, which is vramplan's default too
    elif raw.get("bf16"):
        p["dtype"] = "bf16"
    elif raw.get("fp16"):
        p["dtype"] = "fp16"
    elif str(raw.get("compute_dtype", "")).endswith(("bfloat16", "bf16")):
        p["dtype"] = "bf16"
    elif str(raw.get("compute_dtype", "")).endswith(("float16", "fp16")):
        p["dtype"] = "fp16"
    if raw.get("load_in_4bit") or raw.get("adapter") == "qlora":
        p["quant"] = str(raw.get("quant_type", "nf4"))
    elif raw.get("load_in_8bit"):
        p["quant"] = "int8"
    elif raw.get("adapter") == "lora" or raw.get("load_in_4bit") is False:
        p["quant"] = "none"
    if raw.get("target_linear"):
        p["targets"] = "all-linear"
    elif "targets" in raw:
        t = raw["targets"]
        p["targets"] = t if t == "all-linear" else (tuple(t) if isinstance(t, list) else tuple(str(t).split(",")))
    if "attn" in raw:
        p["attn"] = str(raw["attn"])
    elif raw.get("flash_attention"):
        p["attn"] = "flash_attention_2"
    elif raw.get("sdp_attention"):
        p["attn"] = "sdpa"
    if raw.get("model"):
        out.model = str(raw["model"])


def _int(value, key: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise VramplanError(f"--config: {key} must be a whole number, got {value!r}") from None
