"""resolve(plan, model, gpu) -> Layout: what the memory model, the speed model and the torch workers read.

A TrainPlan is what the user asked for; the Layout is how that plan runs: whether prepare_model_for_kbit_training
runs, how several GPUs share the work, the dtype the 4-bit weights are stored in. Pure: no I/O, no torch.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import VramplanError
from .plan import TrainPlan
from .stacks import loss_path, trainable_itemsize
from .profiles.gpus import GpuSpec
from .profiles.models import ModelArch

SINGLE = "single"


@dataclass(frozen=True)
class Layout:
    """A resolved plan. Fields a plan holds and the layout does not override read through to the plan."""

    plan: TrainPlan
    parallel: str
    """single (one GPU), fsdp (full shard of the base) or ddp (a whole copy per GPU)."""
    offload: bool
    """FSDP CPU offload of the shards, gradients and optimizer states."""
    kbit_prepare: bool
    """prepare_model_for_kbit_training runs: the one-GPU and DDP recipes; peft's sharded-QLoRA recipe skips it."""
    loss_path: str
    """The stack's loss path (vramplan.stacks): hf_full, trl_full, trl_full_copies, trl_chunked, trl_chunked_lowp,
    trl_fused."""
    trainable_itemsize: int
    """Bytes per LoRA parameter (and its gradient): 4 (peft's fp32), 2 where SFTTrainer casts it to bf16."""
    quant_storage: str
    """bnb_4bit_quant_storage: the compute dtype under FSDP (it flattens one dtype per unit: peft's sharded-QLoRA
    recipe), else uint8. The packed 4-bit bytes are the same either way."""

    def __getattr__(self, name: str):
        if name == "plan":  # not set yet (copying, unpickling)
            raise AttributeError(name)
        return getattr(self.plan, name)

    @property
    def fsdp(self) -> bool:
        return self.parallel == "fsdp"

    @property
    def ddp(self) -> bool:
        return self.parallel == "ddp"

    def to_dict(self) -> dict:
        """The plan's fields with the resolved ones in their place: what the torch workers are handed."""
        return {**self.plan.to_dict(), "kbit_prepare": self.kbit_prepare, "quant_storage": self.quant_storage,
                "layout": self.parallel, "loss_path": self.loss_path, "trainable_itemsize": self.trainable_itemsize}


def resolve(plan: TrainPlan, model: ModelArch | None = None, gpu: GpuSpec | None = None) -> Layout:
    """The layout of a plan (on this model and GPU: what a layout may come to depend on, such as a training
    stack's loss path per model family; none of today's fields does)."""
    parallel = SINGLE if plan.gpus == 1 else plan.parallel
    fsdp = parallel == "fsdp"
    return Layout(plan=plan, parallel=parallel, offload=fsdp and plan.offload,
                  kbit_prepare=plan.quantized and plan.kbit_prepare and not fsdp,
                  loss_path=loss_path(plan.trainer, plan.trl_version),
                  trainable_itemsize=trainable_itemsize(plan.trainer, plan.quantized, plan.fp32_adapters),
                  quant_storage=plan.dtype if fsdp and plan.quantized else "uint8")


FLASH_MIN_CAPABILITY = 8.0
"""flash-attn 2 runs on Ampere and newer (its README: 'Ampere, Ada, or Hopper GPUs')."""


def check_card(plan: TrainPlan, gpu: GpuSpec) -> None:
    """What the card cannot run, or the model does not account for, is refused before any number: bf16 without it,
    flash attention below Ampere, eager attention where its seq x seq buffers were measured above the estimate."""
    if plan.attn == "eager" and (plan.trainer == "trl" or plan.eval_batch):
        # seed 000's recipe (eager, evaluation on) through TRL 1.16 on an H200, llama-3.1-8b: its NVML peak was 13%
        # above the training estimate and 28% above the evaluation's (calibration/train/trl_comparison.jsonl)
        raise VramplanError(
            "--attn eager: eager attention's seq x seq buffers through TRL's SFTTrainer or in evaluation are not "
            "modelled (measured up to 28% above the estimate)",
            hint="use --attn sdpa (the default: it never materializes the scores); or --trainer hf without "
                 "--eval-batch")
    if plan.dtype == "bf16" and not gpu.bf16:
        raise VramplanError(f"--dtype bf16: {gpu.name} has no bf16 (compute capability {gpu.compute_capability:g})",
                            hint="leave --dtype out (fp16 then, with the adapters cast back to fp32 through TRL's "
                                 "SFTTrainer), or --dtype fp16 --fp32-adapters, or --dtype fp16 --trainer hf")
    if plan.attn == "flash_attention_2" and gpu.compute_capability < FLASH_MIN_CAPABILITY:
        raise VramplanError(f"--attn flash_attention_2: {gpu.name} (compute capability {gpu.compute_capability:g}) "
                            "is older than flash attention 2 supports (8.0, Ampere)", hint="use --attn sdpa")


def as_layout(plan: TrainPlan | Layout, model: ModelArch | None = None, gpu: GpuSpec | None = None) -> Layout:
    """A layout as is; a plan resolved."""
    return plan if isinstance(plan, Layout) else resolve(plan, model, gpu)


def layout_dict(plan: TrainPlan | dict) -> dict:
    """resolve(plan).to_dict() for a plan or a plan's dict (a record's, a spec's)."""
    return resolve(plan if isinstance(plan, TrainPlan) else TrainPlan.from_dict(plan)).to_dict()
