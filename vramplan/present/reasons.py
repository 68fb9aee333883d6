"""The English of each decision code (vramplan.decisions)."""
from __future__ import annotations

from .. import decisions as D
from ..decisions import Reason
from ..memory import LABELS
from ..units import GiB
from .refusals import TEXT as REFUSAL_TEXT

RANK_WHY = ("r=16 on all linear layers: the QLoRA paper (Dettmers et al. 2023) found that adapting every linear "
            "layer matters and the rank much less; higher ranks cost memory and speed for little gain")
OPTIMIZER_WHY = {
    "paged_adamw_8bit": "the recipe's optimizer; 8-bit states, paged to CPU under pressure",
    "adamw_8bit": "8-bit states in ordinary device memory (no managed-memory paging)",
    "adamw_torch_fused": "fp32 states; the adapter is small enough that 8-bit saves little here",
}


def _words(n: dict) -> dict:
    """The numbers with their printed forms: X_bytes -> X_gib (1 decimal) and X_gib2, component -> label,
    switches -> on/off, lists joined."""
    w = dict(n)
    for key, value in n.items():
        if key.endswith("bytes"):
            w[key[:-5] + "gib"], w[key[:-5] + "gib2"] = f"{value / GiB:.1f} GiB", f"{value / GiB:.2f} GiB"
        elif isinstance(value, bool):
            w[key + "_on"] = "on" if value else "off"
        elif isinstance(value, list):
            w[key + "_list"] = ", ".join(value)
    if "component" in n:
        w["label"] = LABELS.get(n["component"], n["component"])
    if "gpus" in n and isinstance(n["gpus"], int):
        w["each"] = " per GPU" if n["gpus"] > 1 else ""
    return w


def _gpus_make_it_possible(n: dict) -> str:
    offload = " and offloads the shards to CPU memory" if n["offload"] else ""
    return ("{gpus} GPUs make it possible: one {gpu} needs at least {one_gpu_needs_gib} (limit {limit_gib}); FSDP "
            "shards the 4-bit base, adapter and optimizer over {gpus} GPUs" + offload + ": {per_gpu_gib} per GPU")


def _bigger_gpus(n: dict) -> str:
    return "smallest catalog GPUs that fit it" + (" ({count} of them)" if n["count"] > 1 else "") + ": {gpus_list}"


def _more_or_less(gib: float) -> str:
    return "the same" if abs(gib) < 0.005 else f"{abs(gib):.2f} GiB {'more' if gib > 0 else 'less'}"


def _allocator(n: dict) -> str:
    """The plan's allocator against the other one, and what `vramplan train` takes when --allocator is not given."""
    more = (n["expandable_required_bytes"] - n["default_required_bytes"]) / GiB  # expandable's need over default's
    resplit = "step-2 re-split of a logits segment (up to {resplit_gib2} above the peak shown)"
    if n["allocator"] == "expandable":
        than = "the same as" if abs(more) < 0.005 else f"{_more_or_less(more)} than"
        return ("expandable segments (PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True; set it in your own launcher "
                f"too): this plan needs {than} with PyTorch's default allocator"
                + (f", and avoids its {resplit}" if n["resplit_bytes"] else
                   "; `vramplan train`'s measured runs used them" if abs(more) < 0.005 else ""))
    head = "PyTorch's default allocator (what a run gets without PYTORCH_CUDA_ALLOC_CONF)"
    if n.get("given"):
        return (f"{head}, as given; expandable segments would need {_more_or_less(more)} here"
                + (f", and avoid its {resplit}" if n["resplit_bytes"] else ""))
    if n["train_allocator"] == "default":
        return f"{head}; expandable segments would need {_more_or_less(more)} here, so `vramplan train` keeps it"
    why = (f"needs {_more_or_less(more)} here" if more <= -0.005 else f"avoids the default allocator's {resplit}"
           if n["resplit_bytes"] else "needs the same here and is what its measured runs used")
    return (f"{head}; `vramplan train` sets expandable_segments:True, which {why} (`fit --allocator expandable` "
            "plans with it)")


LOSS_PATH_WORDS = {
    "trl_full": "full logits, with entropy and token accuracy computed over them",
    "trl_full_copies": "full logits, plus copies of them for its metrics",
    "trl_chunked": "chunked_nll, 256-token chunks recomputed in backward, an fp32 lm_head copy per chunk",
    "trl_chunked_lowp": "chunked_nll, 256-token chunks recomputed in backward",
    "trl_fused": "its fused LM head never holds the tokens x vocab logits",
}


def _changes(n: dict) -> str:
    """A plan change as the flags that make it ('gradient checkpointing on' for the switch it turns back on)."""
    c = n["changes"]
    if set(c) == {"batch", "grad_accum"}:
        text = f"--batch {c['batch']} with --grad-accum {c['grad_accum']}"
    elif c == {"gradient_checkpointing": True}:
        text = "gradient checkpointing on"
    else:
        text = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in c.items())
    return text.replace("{", "{{").replace("}", "}}")


def _experts_lora(n: dict) -> str:
    if n["wrapped"]:
        return ("LoRA on {model_type}'s routed experts through peft's lora.ParamWrapper ({wrapped_list}) and lora "
                "dropout {dropout:g}: ParamWrapper does not work with lora_dropout != 0 (peft 0.21 "
                "tuners/lora/layer.py)" + (", so not the recipe's {recipe_dropout:g}"
                                           if n["dropout"] != n["recipe_dropout"] else ""))
    if not n["converted"]:
        return ("no LoRA on {model_type}'s routed experts: peft has no conversion of its fused experts, so the "
                "targets reach only its nn.Linear layers (attention, shared expert); the experts stay frozen")
    return "no LoRA on {model_type}'s routed experts: these targets leave them frozen"


TEXT = {
    D.DTYPE_BF16: "bf16: the GPU supports bf16 (wider range than fp16, no loss scaling)",
    D.DTYPE_FP16: "fp16: {gpu} has no bf16 (compute capability {compute_capability}); fp16 with loss scaling, same "
                  "memory",
    D.STACK: lambda n: (
        "TRL {trl_version} SFTTrainer: " + LOSS_PATH_WORDS[n["loss_path"]] if n["trainer"] == "trl" else
        "the plain transformers Trainer: full tokens x vocab logits and its fp32 loss"),
    D.FP32_ADAPTERS: "adapters cast back to fp32 after the SFTTrainer is built: TRL {trl_version} casts them to bf16 "
                     "on a quantized model and fp16's gradient scaler cannot step bf16 gradients (measured)",
    D.RANK_ASKED: "rank {rank}: the one you asked for",
    D.RANK_DEFAULT: RANK_WHY,
    D.RANK_FALLBACK: "r={rank}: r={preferred} does not fit with the margin",
    D.MICRO_BATCH_LARGEST: lambda n: (
        "micro-batch {batch} x accumulation {grad_accum}: the largest micro-batch that fits "
        + ("" if n.get("gradient_checkpointing", True) else "without checkpointing ")
        + "({next_batch} does not); larger micro-batches amortize the 4-bit dequantization"),
    D.MICRO_BATCH_FASTEST: "micro-batch {batch} x accumulation {grad_accum}: the fastest split of the effective "
                           "batch of {effective_batch} that fits",
    D.CHECKPOINTING_FOR_BATCH: "gradient checkpointing on: it allows micro-batch {batch}; without it only {without} "
                               "fits, which the estimate puts slower",
    D.CHECKPOINTING_NEEDED: "gradient checkpointing on: without it the activations do not fit even at micro-batch 1",
    D.CHECKPOINTING_OFF: "gradient checkpointing off: memory allows it, and it skips a forward recompute (faster)",
    D.CHECKPOINTING_PARTIAL: lambda n: (
        "checkpointing every {every} layers: {checkpointed} of {layers} decoder layers recomputed in backward, the "
        "others keep their activations; " + ("~{full_speedup:.2f}x the tokens/s of checkpointing every layer"
                                             if n["full_speedup"] else "checkpointing every layer does not fit")),
    D.CHECKPOINTS_OFFLOADED: lambda n: (
        "checkpoints offloaded to pinned CPU memory (a blocking copy out in forward, a copy back before the "
        "recompute): " + ("~{speedup:.2f}x the tokens/s of keeping them on the GPU" if n["on_gpu_fits"] else
                          "keeping them on the GPU does not fit")),
    D.OPTIMIZER: lambda n: "{optim}: " + OPTIMIZER_WHY.get(n["optim"], "as requested"),
    D.ALLOCATOR: _allocator,
    D.GPUS_MAKE_IT_POSSIBLE: _gpus_make_it_possible,
    D.GPUS_DDP_FASTER: "{gpus} GPUs beat one, ~{speedup:.1f}x its tokens/s: the model fits one {gpu}, so data "
                       "parallel runs a whole copy on each GPU ({per_gpu_gib} per GPU) and only all-reduces the "
                       "adapter's gradients; FSDP would save memory this plan does not need and pay all-gathers "
                       "every micro-batch",
    D.GPUS_FSDP_FASTER: "{gpus} GPUs beat one, ~{speedup:.1f}x its tokens/s: FSDP's sharding frees enough memory per "
                        "GPU for a faster plan than data parallel can hold ({per_gpu_gib} per GPU)",
    D.GPUS_NO_GAIN: lambda n: "{gpus} GPUs do not beat one here (~{speedup:.2f}x): " + (
        "DDP's per-step synchronization costs about what splitting the micro-batches saves"
        if n.get("parallel") == "ddp" else "FSDP's all-gathers of every layer cost more than the shards save")
        + "; one {gpu} runs micro-batch {one_gpu_batch} at ~{one_gpu_tokens_per_s:,.0f} tokens/s",
    D.ONE_GPU_CHEAPER: "one {gpu} costs least per token: {gpus} GPUs run ~{speedup:.1f}x its tokens/s at {gpus}x its "
                       "GPU hours, {cost_ratio:.2f}x its cost (ranked by cost; --objective time takes the {gpus} GPUs)",
    D.LEANEST_TOO_BIG: "even the leanest plan (micro-batch 1, checkpointing, rank {rank}) needs {required_gib2}{each}; "
                       "the limit is {limit_gib2}{each} (the usable memory less the {margin:.0%} margin)",
    D.LARGEST_PART: "largest part: {label} ({gib}) in the {phase} phase",
    D.PART_PER_GPU: "that part is per GPU: each GPU runs its own micro-batch, so more GPUs do not shrink it",
    D.LOAD_WHOLE_MODEL: "every GPU first loads the whole 4-bit model ({load_gib}: transformers quantizes onto each "
                        "rank's GPU) before FSDP shards it; more GPUs do not lower that",
    D.SHORTER_SEQ: "a shorter sequence fits: up to {seq} tokens",
    D.SMALLER_MODELS: "smaller models that fit at this sequence: {models_list}",
    D.BIGGER_GPUS: _bigger_gpus,
    D.NEEDS: "needs {required_gib2} of {capacity_gib2} ({margin:.0%} margin: limit {limit_gib2}); largest part "
             "{label} {gib2} in the {phase} phase",
    D.BIGGEST_SAVING: _changes,
    D.EXPERTS_LORA: _experts_lora,
    D.EXPERTS_KBIT_PREPARE: "{model_type}'s experts are plain Parameters bitsandbytes does not quantize, and "
                            "prepare_model_for_kbit_training casts them to fp32 ({expert_gib}); left in 16 bits "
                            "they would take {sixteen_bit_gib}, but that path was not measured, so vramplan does "
                            "not plan it",
    D.FITS_INSTEAD: "fits instead: rank {rank}, micro-batch {batch} x accumulation {grad_accum}, checkpointing "
                    "{gradient_checkpointing_on}, {optim} ({required_gib2})",
}
"""Each code's words: a format string over the decision's numbers and their printed forms (_words), or a
function of the numbers that returns one."""


TEXT.update({code: message for code, (message, _) in REFUSAL_TEXT.items()})  # a Refusal's reason, said alone


def say(r: Reason) -> str:
    """One decision in English."""
    text = TEXT[r.code]
    template = text(r.numbers) if callable(text) else text
    return template.format_map(_words(r.numbers))


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


STANDING_WORDS = {"fits": "FITS with the {margin:.0%} safety margin",
                  "fits_only_inside_margin": "FITS ONLY INSIDE the {margin:.0%} safety margin",
                  "does_not_fit": "DOES NOT FIT"}
"""vramplan.verdict.standing's judgements in words: the same in estimate, check, fit, table, the TUI, preflight."""


def standing_words(standing: str) -> str:
    from ..margin import SAFETY_MARGIN
    return STANDING_WORDS[standing].format(margin=SAFETY_MARGIN)


def room_words(peak_bytes: int) -> str:
    """The unconstrained peak, said as what it is."""
    from ..units import GiB
    return f"on a card with room nvidia-smi would show {peak_bytes / GiB:.2f} GiB"


def against_words(required: int, capacity: int) -> str:
    """What the run needs against the limit and the usable memory, the two lines its standing is drawn at."""
    from ..margin import margin_limit
    limit = margin_limit(capacity)
    need = f"needs {required / GiB:.2f} GiB"
    if required <= limit:
        return f"{need}, {(limit - required) / GiB:.2f} GiB under the {limit / GiB:.2f} GiB limit"
    if required <= capacity:
        return (f"{need}, {(required - limit) / GiB:.2f} GiB over the {limit / GiB:.2f} GiB limit and "
                f"{(capacity - required) / GiB:.2f} GiB under the {capacity / GiB:.2f} GiB usable: it may run out of "
                "memory")
    return f"{need}, {(required - capacity) / GiB:.2f} GiB over the {capacity / GiB:.2f} GiB usable"
