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
from .stacks import refused_trl_keys

MODEL_KEYS = {"transformers": ("model_name_or_path", "base_model_name_or_path"), "axolotl": ("base_model",)}
AXOLOTL_MARKERS = ("adapter", "base_model", "sequence_len", "micro_batch_size")
# -- keys known to have no effect on memory -----------------------------------------------------------------
IGNORED = {
    "output_dir", "learning_rate", "lr_scheduler_type", "warmup_ratio", "warmup_steps", "num_train_epochs",
    "disable_tqdm",
    "max_steps", "logging_steps", "save_steps", "save_strategy", "eval_steps",
    "report_to", "seed", "weight_decay", "max_grad_norm", "adam_beta1", "adam_beta2", "adam_epsilon",
    "dataset_text_field", "bias", "task_type", "inference_mode", "lora_fan_in_fan_out", "run_name",
    "datasets", "dataset_prepared_path", "wandb_project", "wandb_entity", "wandb_name",
    "special_tokens", "tokenizer_type", "model_type", "strict", "pad_to_sequence_len",
    "num_epochs", "lr_scheduler", "train_on_inputs", "group_by_length", "logging_dir", "evals_per_epoch",
    "saves_per_epoch", "warmup_ratio", "resume_from_checkpoint", "local_rank", "xformers_attention",
    "tf32", "trust_remote_code", "hub_model_id", "push_to_hub",
    "dataloader_num_workers", "remove_unused_columns", "llm_int8_threshold",
    "bnb_4bit_quant_storage", "lora_model_dir", "chat_template", "torch_dtype", "quant_method",
    # SFTConfig keys with no effect on memory (they mark the file as TRL's, below)
    "dataset_num_proc", "eos_token", "pad_token", "dataset_kwargs", "chat_template_path", "model_init_kwargs",
    "completion_only_loss", "assistant_only_loss", "shuffle_dataset", "pad_to_multiple_of",
    # without compute_metrics (which a file cannot hold) evaluation keeps no logits: these change nothing
    "prediction_loss_only", "eval_accumulation_steps",
}
TRL_MARKERS = ("max_length", "max_seq_length", "dataset_text_field", "packing", "loss_type", "completion_only_loss",
               "assistant_only_loss", "padding_free", "dataset_kwargs", "dataset_num_proc", "use_liger_kernel",
               "activation_offloading", "packing_strategy", "model_init_kwargs", "eos_token", "chat_template_path")
"""SFTConfig fields that TrainingArguments lacks: a file holding one is TRL's (axolotl files are TRL's too)."""
REFUSED = {  # memory-changing keys the model does not account for: a truthy value is refused by name
    "fsdp": "FSDP through a config file is not read (use --gpus N, which models peft's sharded QLoRA)",
    "fsdp_config": "FSDP through a config file is not read (use --gpus N)",
    "deepspeed": "DeepSpeed ZeRO partitions states and parameters in ways not modelled",
    "modules_to_save": "fully trained copies of modules (often embeddings or lm_head) are not modelled",
    "use_dora": "DoRA's magnitude vectors and its extra forward are not modelled",
    "lora_modules_to_save": "fully trained copies of modules are not modelled",
    "peft_use_dora": "DoRA is not modelled",
    "neftune_noise_alpha": "NEFTune's noisy embeddings are not measured",
    "torch_compile": "torch.compile changes what is saved for backward; not measured",
    "sample_packing": "packing several examples per sequence is not measured",
}
CONTRADICTIONS = (("bf16", "fp16"), ("load_in_4bit", "load_in_8bit"))


ALL_REFUSED = {**REFUSED, **refused_trl_keys()}
"""Every refused key with why: refused when set on, read as ignored when set off."""
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
    loss_type: str | None = None
    """SFTConfig.loss_type, checked against the TRL release once the release is known (vramplan.stacks)."""


def load(path: str | Path) -> ConfigPlan:
    path = Path(path)
    if not path.is_file():
        raise VramplanError(f"--config {path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise VramplanError(f"--config {path}: a binary file or not UTF-8 text",
                            hint="give the JSON or YAML file the training script reads") from None
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
    _refuse(flat)
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
        elif key in ("gradient_checkpointing_kwargs", "activation_checkpointing_kwargs"):
            out.read.append(key)  # every_n_layers and offload: _checkpointing_modes
        elif key == "loss_type":  # checked against the release once it is known (cli/check.py)
            out.loss_type = str(value)
            out.read.append(key)
        elif key in IGNORED or key in ALL_REFUSED:  # a refused key set off (_refuse let it through) changes nothing
            out.ignored.append(key)
        else:
            out.unknown.append(key)
    _refuse_misspelled(out.unknown, [*plan_keys, *model_keys])
    out.plan = {**flags.from_config(found), **_checkpointing_modes(flat)}
    if axolotl:  # AxolotlTrainer subclasses transformers' Trainer (axolotl/core/trainers/base.py): full logits
        out.plan.setdefault("trainer", "hf")
        out.notes.append("the plain Trainer's loss: an axolotl config found")
    elif any(k in flat for k in TRL_MARKERS):
        out.plan.setdefault("trainer", "trl")
        out.notes.append("TRL's SFTTrainer: SFTConfig keys found")
    return out


def _refuse_misspelled(unknown: list[str], known: list[str]) -> None:
    """An unknown key one typo away from a key that changes the plan would silently plan the default: exit 2."""
    import difflib
    for key in unknown:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.9)
        if close:
            raise VramplanError(f"--config: unknown key {key!r}; did you mean {close[0]!r}?",
                                hint=f"spell it {close[0]} (as it is, it would be left out and its default planned)")


def _truthy(value) -> bool:
    return bool(value) and str(value).lower() not in ("false", "no", "0", "none", "null")


def _refuse(flat: dict) -> None:
    """Contradictory keys, and keys that change memory in ways the model does not account for: exit 2, by name."""
    for a, b in CONTRADICTIONS:
        if _truthy(flat.get(a)) and _truthy(flat.get(b)):
            raise VramplanError(f"--config: {a} and {b} are both set; transformers rejects that",
                                hint=f"keep one of {a} / {b}")
    for key, why in ALL_REFUSED.items():
        if key in flat and _truthy(flat[key]):
            raise VramplanError(f"--config: {key} = {flat[key]!r}: {why}",
                                hint=f"remove {key} (or set it off) to plan without it")
    kwargs = _checkpointing_kwargs(flat)
    if set(kwargs) - CHECKPOINTING_KWARGS:
        extra = ", ".join(sorted(set(kwargs) - CHECKPOINTING_KWARGS))
        raise VramplanError(f"--config: gradient_checkpointing_kwargs {extra}: not modelled",
                            hint="vramplan reads use_reentrant, every_n_layers and offload; remove the others")


CHECKPOINTING_KWARGS = {"use_reentrant", "every_n_layers", "offload"}
"""What transformers 5.17's Trainer passes on to gradient_checkpointing_enable that vramplan reads."""


def _checkpointing_kwargs(flat: dict) -> dict:
    """gradient_checkpointing_kwargs, or transformers 5.2x's activation_checkpointing_kwargs."""
    kwargs = flat.get("gradient_checkpointing_kwargs") or flat.get("activation_checkpointing_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise VramplanError(f"--config: gradient_checkpointing_kwargs must be a mapping, got {kwargs!r}")
    return kwargs


def _checkpointing_modes(flat: dict) -> dict:
    """every_n_layers and offload of the checkpointing kwargs, as plan fields (range-checked by the plan)."""
    kwargs, out = _checkpointing_kwargs(flat), {}
    if "every_n_layers" in kwargs:
        every = kwargs["every_n_layers"]
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise VramplanError(f"--config: every_n_layers must be a whole number >= 1, got {every!r}")
        out["checkpoint_every"] = every
    if "offload" in kwargs:
        out["checkpoint_offload"] = _truthy(kwargs["offload"])
    return out
