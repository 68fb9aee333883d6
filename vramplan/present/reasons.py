"""The English of each decision code (vramplan.decisions)."""
from __future__ import annotations

from .. import decisions as D
from ..decisions import Reason
from ..memory import LABELS
from ..units import GiB

RANK_WHY = ("r=16 on all linear layers: the QLoRA paper (Dettmers et al. 2023) found that adapting every linear "
            "layer matters and the rank much less; higher ranks cost memory and speed for little gain")
OPTIMIZER_WHY = {
    "paged_adamw_8bit": "the recipe's optimizer; 8-bit states, paged to CPU under pressure",
    "adamw_8bit": "8-bit states in ordinary device memory (no managed-memory paging)",
    "adamw_torch_fused": "fp32 states; the adapter is small enough that 8-bit saves little here",
}


def _gib(n: int, digits: int = 1) -> str:
    return f"{n / GiB:.{digits}f} GiB"


def _label(key: str) -> str:
    return LABELS.get(key, key)


def _gpus_make_it_possible(n: dict) -> str:
    return (f"{n['gpus']} GPUs make it possible: one {n['gpu']} needs at least {_gib(n['one_gpu_needs_bytes'])} "
            f"(limit {_gib(n['limit_bytes'])}); FSDP shards the 4-bit base, adapter and optimizer over "
            f"{n['gpus']} GPUs{' and offloads the shards to CPU memory' if n['offload'] else ''}: "
            f"{_gib(n['per_gpu_bytes'])} per GPU")


TEXT = {
    D.DTYPE_BF16: lambda n: "bf16: the GPU supports bf16 (wider range than fp16, no loss scaling)",
    D.DTYPE_FP16: lambda n: (f"fp16: {n['gpu']} has no bf16 (compute capability {n['compute_capability']}); fp16 "
                             "with loss scaling, same memory"),
    D.RANK_ASKED: lambda n: f"rank {n['rank']}: the one you asked for",
    D.RANK_DEFAULT: lambda n: RANK_WHY,
    D.RANK_FALLBACK: lambda n: f"r={n['rank']}: r={n['preferred']} does not fit with the margin",
    D.MICRO_BATCH_LARGEST: lambda n: (f"micro-batch {n['batch']} x accumulation {n['grad_accum']}: the largest "
                                      f"micro-batch that fits ({2 * n['batch']} does not); larger micro-batches "
                                      "amortize the 4-bit dequantization"),
    D.MICRO_BATCH_FASTEST: lambda n: (f"micro-batch {n['batch']} x accumulation {n['grad_accum']}: the fastest split "
                                      f"of the effective batch of {n['effective_batch']} that fits"),
    D.CHECKPOINTING_FOR_BATCH: lambda n: (f"gradient checkpointing on: it allows micro-batch {n['batch']}; without "
                                          f"it only {n['without']} fits, which the estimate puts slower"),
    D.CHECKPOINTING_NEEDED: lambda n: "gradient checkpointing on: without it the activations do not fit even at "
                                      "micro-batch 1",
    D.CHECKPOINTING_OFF: lambda n: "gradient checkpointing off: memory allows it, and it skips a forward recompute "
                                   "(faster)",
    D.OPTIMIZER: lambda n: f"{n['optim']}: " + OPTIMIZER_WHY.get(n["optim"], "as requested"),
    D.GPUS_MAKE_IT_POSSIBLE: _gpus_make_it_possible,
    D.GPUS_DDP_FASTER: lambda n: (f"{n['gpus']} GPUs beat one, ~{n['speedup']:.1f}x its tokens/s: the model fits one "
                                  f"{n['gpu']}, so data parallel runs a whole copy on each GPU "
                                  f"({_gib(n['per_gpu_bytes'])} per GPU) and only all-reduces the adapter's "
                                  "gradients; FSDP would save memory this plan does not need and pay all-gathers "
                                  "every micro-batch"),
    D.GPUS_FSDP_FASTER: lambda n: (f"{n['gpus']} GPUs beat one, ~{n['speedup']:.1f}x its tokens/s: FSDP's sharding "
                                   "frees enough memory per GPU for a faster plan than data parallel can hold "
                                   f"({_gib(n['per_gpu_bytes'])} per GPU)"),
    D.GPUS_NO_GAIN: lambda n: (f"{n['gpus']} GPUs do not beat one here (~{n['speedup']:.1f}x): FSDP's all-gathers of "
                               f"every layer cost more than the shards save; one {n['gpu']} runs micro-batch "
                               f"{n['one_gpu_batch']} at ~{n['one_gpu_tokens_per_s']:,.0f} tokens/s"),
    D.LEANEST_TOO_BIG: lambda n: (f"even the leanest plan (micro-batch 1, checkpointing, rank {n['rank']}) needs "
                                  f"{_gib(n['required_bytes'])}{' per GPU' if n['gpus'] > 1 else ''}; the limit is "
                                  f"{_gib(n['limit_bytes'])} ({n['gpu']} minus the {n['margin']:.0%} margin)"),
    D.LARGEST_PART: lambda n: f"largest part: {_label(n['component'])} ({_gib(n['bytes'])}) in the {n['phase']} phase",
    D.PART_PER_GPU: lambda n: "that part is per GPU: each GPU runs its own micro-batch, so more GPUs do not shrink it",
    D.LOAD_WHOLE_MODEL: lambda n: (f"every GPU first loads the whole 4-bit model ({_gib(n['load_bytes'])}: "
                                   "transformers quantizes onto each rank's GPU) before FSDP shards it; more GPUs do "
                                   "not lower that"),
    D.SHORTER_SEQ: lambda n: f"a shorter sequence fits: up to {n['seq']} tokens",
    D.SMALLER_MODELS: lambda n: "smaller models that fit at this sequence: " + ", ".join(n["models"]),
    D.BIGGER_GPUS: lambda n: ("smallest catalog GPUs that fit it" + (f" ({n['count']} of them)" if n["count"] > 1
                                                                     else "") + ": " + ", ".join(n["gpus"])),
    D.NEEDS: lambda n: (f"needs {_gib(n['required_bytes'], 2)} of {_gib(n['capacity_bytes'], 2)} "
                        f"({n['margin']:.0%} margin: limit {_gib(n['limit_bytes'], 2)}); largest part "
                        f"{_label(n['component'])} {_gib(n['bytes'], 2)} in the {n['phase']} phase"),
    D.FITS_INSTEAD: lambda n: (f"fits instead: rank {n['rank']}, micro-batch {n['batch']} x accumulation "
                               f"{n['grad_accum']}, checkpointing {'on' if n['gradient_checkpointing'] else 'off'}, "
                               f"{n['optim']} ({_gib(n['required_bytes'], 2)})"),
}


def say(r: Reason) -> str:
    """One decision in English."""
    return TEXT[r.code](r.numbers)


def said(reasons) -> list[str]:
    return [say(r) for r in reasons]


def fit_reasons(result) -> list[str]:
    """Why fit chose its plan (several GPUs: first, why they beat one or not), or why nothing fits."""
    return said(([result.versus_one_gpu] if result.versus_one_gpu else []) + list(result.reasons))


BRIEF = 3
"""How many of fit's reasons a compact view (the TUI's fit screen) shows: the most important come first."""


def brief_reasons(result) -> list[str]:
    return fit_reasons(result)[:BRIEF]


def reasons_json(reasons) -> list[dict]:
    """Each decision's code and numbers, with its English."""
    return [{**r.to_dict(), "text": say(r)} for r in reasons]
