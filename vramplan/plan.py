"""TrainPlan: everything about a QLoRA run that changes its memory, as the user asked for it.

Each field is declared once, here, with its flag: help, range or choices, the keys training configs spell it with
(transformers, peft, TRL, axolotl), how it prints and its TUI key. vramplan.flags generates argparse, --config
reading, the plan line, the TUI's keys and the exported `vramplan train` command from these declarations; a new
plan dimension is one field here plus its memory component.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable

from .errors import VramplanError
from .config_readers import ALL_LINEAR, parse_targets as _targets
from .config_readers import read_attn as _read_attn, read_dtype as _read_dtype, read_eval_batch as _read_eval_batch
from .config_readers import read_quant as _read_quant, read_targets as _read_targets
from .stacks import TRAINERS, default_trl_release, normalize_release

OPTIMIZERS = ("paged_adamw_8bit", "adamw_8bit", "adamw_torch_fused", "adamw_torch", "paged_adamw_32bit",
              "adafactor", "sgd")
"""The recipe's first, then the other 8-bit one, then the fp32 ones (the order the TUI cycles them in)."""
# transformers' other spellings of the same optimizers
OPTIMIZER_ALIASES = {"adamw_bnb_8bit": "adamw_8bit", "paged_adamw": "paged_adamw_32bit", "adamw_hf": "adamw_torch",
                     "adamw": "adamw_torch"}
QUANTS = ("nf4", "fp4", "int8", "none")
ATTENTIONS = ("sdpa", "eager", "flash_attention_2")
DTYPES = ("bf16", "fp16")
ALLOCATORS = ("default", "expandable")
ALLOC_CONF = {"default": None, "expandable": "expandable_segments:True"}
"""PYTORCH_CUDA_ALLOC_CONF for each allocator setting."""
PARALLELS = ("fsdp", "ddp")
"""How several GPUs share the work: FSDP full shard of the 4-bit base, or plain data parallel (a whole copy each)."""
# optimizers that step fp32 states on the CPU, where FSDP's offload leaves the parameters (bnb's 8-bit and paged
# optimizers and the fused AdamW are CUDA-only)
CPU_OPTIMIZERS = ("adamw_torch", "adafactor", "sgd")


@dataclass(frozen=True)
class Flag:
    """How one plan field is given, read, checked and shown (see vramplan.flags for what reads these)."""

    help: str
    choices: tuple[str, ...] = ()
    range: tuple[float, float] | None = None
    """Inclusive bounds beyond which a value is a typo, not a plan."""
    parse: Callable[[Any], Any] | None = None
    """A value as typed or as a config file holds it -> the field's value (aliases, comma lists)."""
    keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Config-file keys by tool: transformers, peft, trl, axolotl (axolotl's only read in axolotl files)."""
    read: Callable[[dict], Any] | None = None
    """Several config keys -> the value (None: not set); default: the last key found, through parse."""
    show: Callable[[dict], str] | None = None
    """Its words in the plan line, separator first, from the plan's dict ('' or None: not shown)."""
    cli: bool = True
    """Has a command-line flag (--name, or --no-name / --name for switches)."""
    cli_default: Any = "plan"
    """What the flag defaults to when not typed: 'plan' (the field's default) or a value such as None."""
    exported: Callable[[dict], bool] | None = None
    """Given in an exported `vramplan train` command only when this holds for the plan's dict (default: always)."""
    shown: Callable[[dict], bool] | None = None
    """Shown in the TUI's form only when this holds (default: always, where it has a tui_label)."""
    training_args: str | Callable[[Any], dict] | None = None
    """What it sets in transformers' TrainingArguments when `vramplan train` runs the plan: the argument's name, or
    a function of the value returning several."""
    tui: str = ""
    """Key in the TUI (cycles choices, toggles a switch, doubles a number; the upper case halves it)."""
    tui_label: str = ""


def plan_field(default, flag: Flag):
    return field(default=default, metadata={"flag": flag})


def _optim(value) -> str:
    value = str(getattr(value, "value", value))  # transformers' OptimizerNames enum
    return OPTIMIZER_ALIASES.get(value, value)


def _layout_words(p: dict) -> str:
    if p.get("gpus", 1) == 1:
        return ""
    words = ("data parallel (a whole copy each)" if p.get("parallel", "fsdp") == "ddp"
             else "FSDP full shard" + (" + CPU offload" if p.get("offload") else ""))
    return f"; {p['gpus']} GPUs, {words}, figures per GPU"


def _several(p: dict) -> bool:
    return p.get("gpus", 1) > 1


@dataclass(frozen=True)
class TrainPlan:
    """One QLoRA training configuration. Defaults are the standard recipe (see README: the seeds' recipes)."""

    rank: int = plan_field(16, Flag(
        "LoRA rank r (default 16)", range=(1, 4096), keys={"peft": ("r",), "axolotl": ("lora_r",)},
        show=lambda p: f"r={p['rank']}", tui="r", tui_label="rank"))
    alpha: float = plan_field(32, Flag(
        "LoRA alpha (default 32)", keys={"peft": ("lora_alpha",), "axolotl": ("lora_alpha",)}))
    dropout: float = plan_field(0.05, Flag(
        "LoRA dropout (default 0.05; 0 where peft wraps an MoE model's experts)", cli_default=None,
        keys={"peft": ("lora_dropout",), "axolotl": ("lora_dropout",)}))
    """> 0 keeps a dropped copy and a mask of every adapter input."""
    targets: tuple[str, ...] | str = plan_field(ALL_LINEAR, Flag(
        "all-linear or a comma list such as q_proj,v_proj", parse=_targets, read=_read_targets,
        keys={"peft": ("target_modules",), "axolotl": ("lora_target_modules", "lora_target_linear")},
        tui="t", tui_label="target"))
    """LoRA target modules, or 'all-linear' (every decoder nn.Linear, not lm_head)."""
    batch: int = plan_field(1, Flag(
        "micro-batch (default 1)", range=(1, 4096), show=lambda p: f" micro-batch {p['batch']}",
        training_args="per_device_train_batch_size",
        keys={"transformers": ("per_device_train_batch_size",), "axolotl": ("micro_batch_size",)},
        tui="b", tui_label="batch"))
    """Sequences per forward pass on each GPU."""
    grad_accum: int = plan_field(1, Flag(
        "gradient accumulation steps (default 1)", range=(1, 65536), show=lambda p: f" x accum {p['grad_accum']}",
        training_args="gradient_accumulation_steps",
        keys={"transformers": ("gradient_accumulation_steps",), "axolotl": ("gradient_accumulation_steps",)},
        tui_label="accum"))
    """Gradient accumulation steps (grads persist between micro-batches when > 1)."""
    seq: int = plan_field(2048, Flag(
        "sequence length (default 2048)", range=(1, 1 << 20), show=lambda p: f", seq {p['seq']}",
        keys={"transformers": ("model_max_length",), "trl": ("max_seq_length", "max_length"),
              "axolotl": ("sequence_len",)}, tui="s", tui_label="seq"))
    """Tokens per sequence (padded/packed length)."""
    dtype: str = plan_field("bf16", Flag(
        "compute dtype (default: bf16 where supported)", choices=DTYPES, cli_default=None, read=_read_dtype,
        keys={"transformers": ("bf16", "fp16", "bnb_4bit_compute_dtype"), "axolotl": ("bf16", "fp16")},
        show=lambda p: f", {p['dtype']}", training_args=lambda v: {"bf16": v == "bf16", "fp16": v == "fp16"},
        tui="d", tui_label="dtype"))
    """bnb_4bit_compute_dtype and the Trainer's autocast."""
    optim: str = plan_field("paged_adamw_8bit", Flag(
        "transformers optim name: " + ", ".join(OPTIMIZERS), choices=OPTIMIZERS, parse=_optim,
        keys={"transformers": ("optim",), "axolotl": ("optimizer",)}, show=lambda p: f", {p['optim']}",
        training_args="optim",
        tui="o", tui_label="optim"))
    """transformers TrainingArguments.optim name."""
    gradient_checkpointing: bool = plan_field(True, Flag(
        "turn gradient checkpointing off", parse=bool,
        keys={"transformers": ("gradient_checkpointing", "activation_checkpointing"),
              "axolotl": ("gradient_checkpointing",)},
        show=lambda p: f", checkpointing {'on' if p['gradient_checkpointing'] else 'off'}",
        training_args="gradient_checkpointing", tui="g", tui_label="ckpt"))
    checkpoint_every: int = plan_field(1, Flag(
        "with checkpointing: checkpoint every Nth decoder layer, the others keep their activations (transformers' "
        "every_n_layers; default 1: every layer)", range=(1, 1024),
        show=lambda p: f" every {p['checkpoint_every']} layers" if p.get("checkpoint_every", 1) > 1 else "",
        exported=lambda p: p.get("checkpoint_every", 1) > 1,
        training_args=lambda v: {"gradient_checkpointing_kwargs": {"every_n_layers": v}} if v > 1 else {}))
    """transformers checkpoints decoder layer i when i % every_n_layers == 0 (modeling_utils
    _set_gradient_checkpointing): ceil(layers / N) of them."""
    checkpoint_offload: bool = plan_field(False, Flag(
        "with checkpointing: keep the checkpointed layers' inputs in pinned CPU memory (transformers' offload)",
        parse=bool, show=lambda p: ", checkpoints offloaded to CPU" if p.get("checkpoint_offload") else "",
        training_args=lambda v: {"gradient_checkpointing_kwargs": {"offload": True}} if v else {}))
    """transformers wraps each checkpoint in torch.autograd.graph.save_on_cpu(pin_memory=True)."""
    attn: str = plan_field("sdpa", Flag(
        "attention implementation (default sdpa)", choices=ATTENTIONS, read=_read_attn,
        keys={"transformers": ("attn_implementation",), "axolotl": ("flash_attention", "sdp_attention")},
        show=lambda p: f", {p['attn']}", tui="a", tui_label="attn"))
    quant: str = plan_field("nf4", Flag(
        "base weights (default nf4)", choices=QUANTS, read=_read_quant,
        keys={"transformers": ("load_in_4bit", "load_in_8bit", "bnb_4bit_quant_type"),
              "axolotl": ("adapter", "load_in_4bit", "load_in_8bit")}, show=lambda p: f", {p['quant']}"))
    """nf4, fp4 (4-bit), int8 (LLM.int8) or none (plain 16-bit LoRA)."""
    double_quant: bool = plan_field(True, Flag(
        "turn bitsandbytes' double quantization off", parse=bool,
        keys={"transformers": ("bnb_4bit_use_double_quant",), "axolotl": ("bnb_4bit_use_double_quant",)},
        show=lambda p: " + double quant" if p["double_quant"] and p["quant"] in ("nf4", "fp4") else "",
        tui="u", tui_label="dquant"))
    kbit_prepare: bool = plan_field(True, Flag("skip prepare_model_for_kbit_training (embeddings, lm_head and "
                                               "norms stay 16-bit)", parse=bool))
    """Run prepare_model_for_kbit_training where the recipe does (embeddings, lm_head and norms become fp32); peft's
    sharded-QLoRA recipe skips it under FSDP whatever this says (vramplan.layout.resolve decides)."""
    gpus: int = plan_field(1, Flag(
        "GPUs of one host (or name them --gpu 2xRTX-4090); figures are per GPU", range=(1, 16), cli_default=None,
        show=_layout_words, exported=_several, tui="n", tui_label="gpus"))
    """GPUs of one host (micro-batch per GPU). How they share the work is the layout's."""
    parallel: str = plan_field("fsdp", Flag(
        "with --gpus: fsdp shards the 4-bit base (default), ddp keeps a whole copy per GPU", choices=PARALLELS,
        exported=_several, shown=_several, tui="p", tui_label="layout"))
    """With gpus > 1: fsdp (shard the base) or ddp (every GPU holds the whole model); ignored on one GPU."""
    offload: bool = plan_field(False, Flag(
        "with FSDP: shards, gradients and optimizer states in CPU memory (needs --optim adamw_torch)", parse=bool,
        shown=_several, tui_label="offload"))
    allocator: str = plan_field("default", Flag(
        "PyTorch's caching allocator as is (default) or with expandable_segments:True (expandable; `vramplan "
        "train` takes the one its plan needs less with)", choices=ALLOCATORS,
        show=lambda p: "; expandable segments" if p.get("allocator") == "expandable" else "; default allocator",
        tui_label="alloc"))

    trainer: str = plan_field("trl", Flag(
        "training stack: trl (TRL's SFTTrainer, default on one GPU) or hf (the plain transformers Trainer, "
        "default on several)", choices=TRAINERS, cli_default=None,
        show=lambda p: "; " + ("transformers Trainer" if p.get("trainer", "hf") == "hf"
                               else f"TRL {p.get('trl_version', default_trl_release())} SFTTrainer"),
        tui="T", tui_label="stack"))
    trl_version: str = plan_field(default_trl_release(), Flag(
        "TRL release the SFTTrainer is (X.Y; default: the newest modelled)", parse=normalize_release,
        exported=lambda p: p.get("trainer") == "trl", shown=lambda p: p.get("trainer") == "trl"))
    """Each release's loss path is in profiles/stacks/trl.json."""
    fp32_adapters: bool = plan_field(False, Flag(
        "with --trainer trl: cast the adapters back to fp32 after the trainer is built (what fp16 needs; the "
        "default where the GPU has no bf16)", parse=bool, cli_default=None, exported=lambda p: p.get("trainer") == "trl", shown=lambda p: p.get("trainer") == "trl",
        show=lambda p: ", adapters cast back to fp32" if p.get("trainer") == "trl" and p.get("fp32_adapters")
        else ""))
    eval_batch: int = plan_field(0, Flag(
        "evaluation micro-batch (per_device_eval_batch_size; 0: no evaluation)", range=(0, 4096),
        read=lambda found: _read_eval_batch(found),
        keys={"transformers": ("per_device_eval_batch_size", "eval_strategy", "evaluation_strategy", "do_eval"),
              "axolotl": ("eval_batch_size", "val_set_size")},
        show=lambda p: f", evaluation batch {p['eval_batch']}" if p.get("eval_batch") else "", tui="v",
        tui_label="eval"))
    """The evaluation loop runs without gradients after training grew the allocator's reserve."""

    def __post_init__(self):
        """Validation only: the plan stays exactly what was asked for (vramplan.layout derives the rest)."""
        for f in fields(self):
            check_value(f.name, f.metadata["flag"], getattr(self, f.name), f.default)
        if not 0 <= self.dropout < 1:
            raise VramplanError(f"--dropout: {self.dropout!r} is out of range", hint="use 0 <= dropout < 1")
        if not (self.alpha > 0 and math.isfinite(self.alpha)):
            raise VramplanError(f"--alpha: {self.alpha!r} must be positive")
        self._check_layout()
        self._check_checkpointing()
        self._check_targets()
        self._check_stack()

    def _check_layout(self) -> None:
        if self.gpus == 1:
            if self.offload:
                raise VramplanError("--offload: CPU offload is part of FSDP over several GPUs", hint="add --gpus N")
        elif self.parallel == "fsdp":
            if self.quant == "int8":
                raise VramplanError("--gpus: FSDP cannot shard LLM.int8 weights",
                                    hint="use --quant nf4, or --parallel ddp")
            if self.offload and self.optim not in CPU_OPTIMIZERS:
                raise VramplanError(f"--offload: {self.optim} cannot step parameters offloaded to the CPU",
                                    hint="use --optim " + " or ".join(CPU_OPTIMIZERS))
        elif self.offload:
            raise VramplanError("--offload: CPU offload needs FSDP", hint="use --parallel fsdp")

    def _check_checkpointing(self) -> None:
        if (self.checkpoint_every > 1 or self.checkpoint_offload) and not self.gradient_checkpointing:
            which = "--checkpoint-every" if self.checkpoint_every > 1 else "--checkpoint-offload"
            raise VramplanError(f"{which}: it shapes gradient checkpointing, which this plan turns off",
                                hint=f"drop {which}, or turn checkpointing on")

    def _check_stack(self) -> None:
        """A plan the stack cannot run is refused before any number: SFTTrainer casts a quantized model's adapters
        to bf16, and fp16's gradient scaler then stops at the first optimizer step (measured on an H200 with TRL
        1.16; every release casts them, profiles/stacks/trl.json)."""
        if self.trainer == "trl" and self.quantized and self.dtype == "fp16" and not self.fp32_adapters:
            raise VramplanError(
                "fp16 QLoRA does not run through TRL's SFTTrainer: it casts the adapters to bf16 and fp16's "
                "gradient scaler fails at the first optimizer step",
                hint="use --dtype bf16 where the GPU has it; or --fp32-adapters (cast the adapters back to fp32 "
                     "after the trainer is built, before train()); or --trainer hf")
        if self.eval_batch and self.gpus > 1:
            raise VramplanError("--eval-batch: evaluation over several GPUs is not measured",
                                hint="plan the evaluation on one GPU, or leave --eval-batch out")
        if self.fp32_adapters and not self.quantized:
            raise VramplanError("--fp32-adapters: without quantization SFTTrainer keeps the adapters in fp32",
                                hint="drop --fp32-adapters")
        if self.trainer == "trl" and normalize_release(self.trl_version) != self.trl_version:
            raise VramplanError(f"--trl-version: {self.trl_version!r} is not a release as vramplan spells it",
                                hint=f"use {normalize_release(self.trl_version)}")
        if self.trainer == "trl" and self.gpus > 1:
            raise VramplanError("--gpus: TRL's SFTTrainer over several GPUs is not measured",
                                hint="use --trainer hf (the plain Trainer, measured with FSDP and DDP), or one GPU")
        if self.trainer == "hf" and self.fp32_adapters:
            raise VramplanError("--fp32-adapters: the plain Trainer keeps peft's fp32 adapters already",
                                hint="drop --fp32-adapters, or use --trainer trl")

    def _check_targets(self) -> None:
        if isinstance(self.targets, str) and self.targets != ALL_LINEAR:
            raise VramplanError(f"--targets: {self.targets!r} is not {ALL_LINEAR!r} or a tuple of module names",
                                hint="vramplan.flags.plan_from_fields splits a comma list such as q_proj,v_proj")
        if not self.targets or not all(isinstance(t, str) and t for t in self.targets):
            raise VramplanError("--targets: no target modules given", hint="use all-linear or e.g. q_proj,v_proj")

    @property
    def tokens(self) -> int:
        """Tokens per micro-batch."""
        return self.batch * self.seq

    @property
    def effective_batch(self) -> int:
        """Sequences per optimizer step, over all GPUs."""
        return self.batch * self.grad_accum * self.gpus

    @property
    def quantized(self) -> bool:
        return self.quant != "none"

    def target_names(self, linear_names: tuple[str, ...]) -> tuple[str, ...]:
        """Resolve targets against a model's decoder linears; unknown names are an error."""
        if self.targets == ALL_LINEAR:
            return linear_names
        unknown = [t for t in self.targets if t not in linear_names]
        if unknown:
            shown = ", ".join(unknown[:8]) + (f" and {len(unknown) - 8} more" if len(unknown) > 8 else "")
            raise VramplanError(f"--targets: {shown} not in this model",
                                hint="its linear modules are " + ", ".join(linear_names))
        return tuple(t for t in linear_names if t in self.targets)

    def with_(self, **changes) -> "TrainPlan":
        """A plain replace: the other fields keep what was asked for."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}  # every field is a scalar or a tuple of str
        d["targets"] = self.targets if isinstance(self.targets, str) else list(self.targets)
        d["micro_batch"] = self.batch
        d["effective_batch"] = self.effective_batch
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainPlan":
        """A plan from to_dict()'s output (or a run record's plan): unknown keys are left out."""
        known = {f.name for f in fields(cls)}
        d = dict(d)
        if "micro_batch" in d and "batch" not in d:
            d["batch"] = d["micro_batch"]
        d.setdefault("trainer", "hf")  # plans recorded before the stack was a field ran the plain Trainer
        kw = {k: v for k, v in d.items() if k in known}
        if isinstance(kw.get("targets"), list):
            kw["targets"] = tuple(kw["targets"])
        return cls(**kw)


def check_value(name: str, flag: Flag, value, default) -> None:
    """A field's range and choices; the error names its flag."""
    dash = "--" + name.replace("_", "-")
    if flag.range:
        lo, hi = flag.range
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise VramplanError(f"{dash}: {value!r} is out of range", hint=f"use {lo}..{hi}")
    if flag.choices and value not in flag.choices:
        if name == "optim":
            hint = (f"{value} is spelled {OPTIMIZER_ALIASES[value]} here" if value in OPTIMIZER_ALIASES
                    else "use one of " + ", ".join(flag.choices))
            raise VramplanError(f"--optim: unknown optimizer {value!r}", hint=hint)
        raise VramplanError(f"{dash}: unknown value {value!r}", hint="use one of " + ", ".join(flag.choices))
    if isinstance(default, bool) and not isinstance(value, bool):
        raise VramplanError(f"{dash}: {value!r} is not true or false")


def plan_flags() -> list[tuple[str, Flag, Any]]:
    """(field name, flag, default) of every plan field, in declaration order."""
    return [(f.name, f.metadata["flag"], f.default) for f in fields(TrainPlan)]


DEFAULT_PLAN = TrainPlan()
