"""Decisions as data: what search and verdict conclude, as a code and the numbers behind it.

vramplan.present turns them into English (CLI, TUI, JSON); tests assert codes and numbers. Byte figures are ints
(bytes), speeds tokens/s, names strings.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import VramplanError


@dataclass(frozen=True)
class Reason:
    code: str
    numbers: dict = field(default_factory=dict)

    def __getitem__(self, key: str):
        return self.numbers[key]

    def to_dict(self) -> dict:
        return {"code": self.code, **self.numbers}


def reason(code: str, **numbers) -> Reason:
    return Reason(code, numbers)


# why the recommended plan is what it is
DTYPE_BF16 = "dtype_bf16"                      # gpu
DTYPE_FP16 = "dtype_fp16_no_bf16"              # gpu, compute_capability
STACK = "stack"                                # trainer, trl_version, loss_path
FP32_ADAPTERS = "fp32_adapters_for_fp16"       # trl_version
RANK_ASKED = "rank_asked"                      # rank
RANK_DEFAULT = "rank_default"                  # rank
RANK_FALLBACK = "rank_fallback"                # rank, preferred
MICRO_BATCH_LARGEST = "micro_batch_largest"    # batch, grad_accum, next_batch (the one that does not fit), gradient_checkpointing
MICRO_BATCH_FASTEST = "micro_batch_fastest"    # batch, grad_accum, effective_batch
CHECKPOINTING_FOR_BATCH = "checkpointing_for_batch"  # batch, without (the largest micro-batch without it)
CHECKPOINTING_NEEDED = "checkpointing_needed"
CHECKPOINTING_OFF = "checkpointing_off"
CHECKPOINTING_PARTIAL = "checkpointing_partial"  # every, checkpointed, layers, full_speedup (None: full does not fit)
CHECKPOINTS_OFFLOADED = "checkpoints_offloaded"  # on_gpu_fits (the same plan without offload fits), speedup
OPTIMIZER = "optimizer"                        # optim
ALLOCATOR = "allocator"  # allocator (the plan's), default_required_bytes, expandable_required_bytes, resplit_bytes,
#                          train_allocator (what train takes without --allocator), given (--allocator typed, in train)
# several GPUs against one
GPUS_MAKE_IT_POSSIBLE = "gpus_make_it_possible"  # gpus, gpu, one_gpu_needs_bytes, limit_bytes, per_gpu_bytes, offload
GPUS_DDP_FASTER = "gpus_ddp_faster"            # gpus, gpu, speedup, per_gpu_bytes
GPUS_FSDP_FASTER = "gpus_fsdp_faster"          # gpus, speedup, per_gpu_bytes
GPUS_NO_GAIN = "gpus_no_gain"                  # gpus, gpu, speedup, one_gpu_batch, one_gpu_tokens_per_s, parallel
ONE_GPU_CHEAPER = "one_gpu_cheaper"            # gpus, gpu, speedup (theirs over one), cost_ratio (theirs / one's)
GPUS = (GPUS_MAKE_IT_POSSIBLE, GPUS_DDP_FASTER, GPUS_FSDP_FASTER, GPUS_NO_GAIN, ONE_GPU_CHEAPER)
# why nothing fits, and what would
LEANEST_TOO_BIG = "leanest_too_big"            # required_bytes, limit_bytes, rank, gpus, gpu, margin
LARGEST_PART = "largest_part"                  # component, bytes, phase
PART_PER_GPU = "part_per_gpu"
LOAD_WHOLE_MODEL = "load_whole_model"          # load_bytes
SHORTER_SEQ = "shorter_seq"                    # seq
SMALLER_MODELS = "smaller_models"              # models
BIGGER_GPUS = "bigger_gpus"                    # gpus (names), count
# the verdict on one plan
NEEDS = "needs"  # required_bytes, capacity_bytes, limit_bytes, margin, component, bytes, phase
FITS_INSTEAD = "fits_instead"                  # rank, batch, grad_accum, gradient_checkpointing, optim, required_bytes
# what estimate suggests
BIGGEST_SAVING = "biggest_saving"              # changes (plan field -> value), saves_bytes
WHY_NOTHING_FITS_HEAD = (LEANEST_TOO_BIG, LARGEST_PART)
"""What a verdict's own NEEDS already says when it passes on why nothing fits."""
# Mixture-of-Experts plans
EXPERTS_LORA = "experts_lora"  # model_type, wrapped (expert parameters peft wraps), converted, dropout, recipe_dropout
EXPERTS_KBIT_PREPARE = "experts_kbit_prepare"  # model_type, expert_bytes, sixteen_bit_bytes
# plans the training stack refuses (raised as Refusal, exit 2; English in vramplan/present/refusals.py)
PARAMWRAPPER_DROPOUT = "paramwrapper_dropout"  # model_type, dropout, wrapped (the expert parameters peft wraps)
EXPERTS_HALF_TARGETED = "experts_half_targeted"  # model_type, have, missing
MOE_SEVERAL_GPUS = "moe_several_gpus"          # gpus
MOE_QUANT = "moe_quant"                        # quant
MOE_NO_KBIT_PREPARE = "moe_no_kbit_prepare"
MOE_CHECKPOINT_MODE = "moe_checkpoint_mode"


class Refusal(VramplanError):
    """A plan the stack would refuse or that was not measured: the decision (`reason`) and its English."""

    def __init__(self, why: Reason, message: str, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.reason = why
