"""TrainPlan: everything about a QLoRA run that changes its memory."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from .errors import VramplanError

OPTIMIZERS = ("adamw_torch", "adamw_torch_fused", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit",
              "adafactor", "sgd")
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
ALL_LINEAR = "all-linear"

# Bounds beyond which a value is a typo, not a plan.
_LIMITS = {"rank": (1, 4096), "batch": (1, 4096), "seq": (1, 1 << 20), "grad_accum": (1, 65536)}


@dataclass(frozen=True)
class TrainPlan:
    """One QLoRA training configuration. Defaults are the standard recipe (see README: the seeds' recipes)."""

    rank: int = 16
    """LoRA rank r."""
    alpha: float = 32
    """LoRA alpha (scales the update; no effect on memory)."""
    dropout: float = 0.05
    """LoRA dropout; > 0 keeps a dropped copy and a mask of every adapter input."""
    targets: tuple[str, ...] | str = ALL_LINEAR
    """LoRA target modules, or 'all-linear' (every decoder nn.Linear, not lm_head)."""
    batch: int = 1
    """Micro-batch: sequences per forward pass (per_device_train_batch_size)."""
    seq: int = 2048
    """Tokens per sequence (padded/packed length)."""
    grad_accum: int = 1
    """Gradient accumulation steps (grads persist between micro-batches when > 1)."""
    optim: str = "paged_adamw_8bit"
    """transformers TrainingArguments.optim name."""
    dtype: str = "bf16"
    """Compute dtype: bf16 or fp16 (bnb_4bit_compute_dtype and the Trainer's autocast)."""
    gradient_checkpointing: bool = True
    double_quant: bool = True
    quant: str = "nf4"
    """nf4, fp4 (4-bit), int8 (LLM.int8) or none (plain 16-bit LoRA)."""
    attn: str = "sdpa"
    kbit_prepare: bool = True
    """prepare_model_for_kbit_training applied (the recipe): embeddings, lm_head and norms become fp32."""
    gpus: int = 1
    """GPUs of one host. Above 1: FSDP full shard of the 4-bit base stored in the compute dtype (peft's sharded
    QLoRA recipe, which does not run prepare_model_for_kbit_training), micro-batch per GPU."""
    allocator: str = "default"
    """PyTorch's caching allocator as users run it (default) or with expandable_segments:True (vramplan train)."""
    parallel: str = "fsdp"
    """With gpus > 1: fsdp (shard the base) or ddp (every GPU holds the whole model: for models that fit one)."""
    offload: bool = False
    """FSDP CPU offload: sharded parameters, gradients and optimizer states live in CPU memory."""

    def __post_init__(self):
        for name, (lo, hi) in _LIMITS.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise VramplanError(f"--{name.replace('_', '-')}: {value!r} is out of range", hint=f"use {lo}..{hi}")
        if not 0 <= self.dropout < 1:
            raise VramplanError(f"--dropout: {self.dropout!r} is out of range", hint="use 0 <= dropout < 1")
        if not self.alpha > 0:
            raise VramplanError(f"--alpha: {self.alpha!r} must be positive")
        optim = OPTIMIZER_ALIASES.get(self.optim, self.optim)
        if optim not in OPTIMIZERS:
            raise VramplanError(f"--optim: unknown optimizer {self.optim!r}", hint="use one of " + ", ".join(OPTIMIZERS))
        object.__setattr__(self, "optim", optim)
        for flag, value, allowed in (("--quant", self.quant, QUANTS), ("--attn", self.attn, ATTENTIONS),
                                     ("--dtype", self.dtype, DTYPES), ("--allocator", self.allocator, ALLOCATORS),
                                     ("--parallel", self.parallel, PARALLELS)):
            if value not in allowed:
                raise VramplanError(f"{flag}: unknown value {value!r}", hint="use one of " + ", ".join(allowed))
        if isinstance(self.gpus, bool) or not isinstance(self.gpus, int) or not 1 <= self.gpus <= 16:
            raise VramplanError(f"--gpus: {self.gpus!r} is out of range", hint="use 1..16 GPUs of one host")
        if self.gpus == 1:  # one GPU: nothing to shard or offload
            object.__setattr__(self, "parallel", "fsdp")
            if self.offload:
                raise VramplanError("--offload: CPU offload is part of FSDP over several GPUs", hint="add --gpus N")
        elif self.parallel == "fsdp":
            if self.quant == "int8":
                raise VramplanError("--gpus: FSDP cannot shard LLM.int8 weights",
                                    hint="use --quant nf4, or --parallel ddp")
            if self.offload and self.optim not in CPU_OPTIMIZERS:
                raise VramplanError(f"--offload: {self.optim} cannot step parameters offloaded to the CPU",
                                    hint="use --optim " + " or ".join(CPU_OPTIMIZERS))
            object.__setattr__(self, "kbit_prepare", False)  # peft's sharded-QLoRA recipe does not run it
        elif self.offload:
            raise VramplanError("--offload: CPU offload needs FSDP", hint="use --parallel fsdp")
        if isinstance(self.targets, str) and self.targets != ALL_LINEAR:
            object.__setattr__(self, "targets", tuple(t.strip() for t in self.targets.split(",") if t.strip()))
        if not self.targets:
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
    def fsdp(self) -> bool:
        return self.gpus > 1 and self.parallel == "fsdp"

    @property
    def quantized(self) -> bool:
        return self.quant != "none"

    def target_names(self, linear_names: tuple[str, ...]) -> tuple[str, ...]:
        """Resolve targets against a model's decoder linears; unknown names are an error."""
        if self.targets == ALL_LINEAR:
            return linear_names
        unknown = [t for t in self.targets if t not in linear_names]
        if unknown:
            raise VramplanError(f"--targets: {', '.join(unknown)} not in this model",
                                hint="its linear modules are " + ", ".join(linear_names))
        return tuple(t for t in linear_names if t in self.targets)

    def with_(self, **changes) -> "TrainPlan":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["targets"] = self.targets if isinstance(self.targets, str) else list(self.targets)
        d["micro_batch"] = self.batch
        d["effective_batch"] = self.effective_batch
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainPlan":
        known = {f for f in cls.__dataclass_fields__}
        d = dict(d)
        if "micro_batch" in d and "batch" not in d:
            d["batch"] = d["micro_batch"]
        kw = {k: v for k, v in d.items() if k in known}
        if isinstance(kw.get("targets"), list):
            kw["targets"] = tuple(kw["targets"])
        return cls(**kw)


DEFAULT_PLAN = TrainPlan()
