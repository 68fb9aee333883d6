"""The loss path of each training stack: the buffers of the lm_head and the loss, in training and in evaluation.

hf_full is transformers' ForCausalLMLoss (memory/logits.py). The TRL paths follow TRL's sources per release
(profiles/stacks/trl.json); their sizes were checked against allocator peaks measured on an H200
(calibration/stacks).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..profiles.models import ModelArch
from ..stacks import chunk_tile_bytes
from ._round import segment_bytes
from .logits import C, loss_backward_bytes, loss_forward_bytes
from .weights import unquantized_bytes_per_param

CHUNK_TOKENS = 256
"""chunked_nll's tokens per chunk (trl-1.4.0 sft_trainer.py, _chunked_nll)."""
FUSED_TOKENS, FUSED_VOCAB = 4096, 32768
"""The fused LM head's tile (trl-1.16.0 trl/kernels/chunked_logprob.py: TOKEN_CHUNK_SIZE, _CHUNKED_LOGPROB_CHUNK_SIZE)."""


@dataclass(frozen=True)
class LossBuffers:
    forward: int
    """Alive at the end of the forward pass, inside the loss."""
    backward: int
    """Alive at the start of backward."""
    lm_head_cast: bool
    """The 16-bit lm_head copy that autocast makes and the matmul keeps for backward (the path calls lm_head)."""
    largest_block: int
    """The largest single loss buffer: what fragments the allocator's cache."""


def full_logits_block(model: ModelArch, tokens: int) -> int:
    """One fp32 tokens x vocab buffer."""
    return 4 * tokens * model.vocab


def metrics_copy_strands_segment(model: ModelArch, batch: int, seq: int) -> bool:
    """Whether the full-logits metrics of TRL 1.0-1.6 leave the default allocator one more fp32 logits segment.

    With more than one sequence the metrics copy the shifted fp32 logits (`logits[..., :-1, :]`: batch x (seq - 1)
    x vocab, contiguous) into a fresh segment; in backward the nll gradient takes the freed logits' segment and the
    log-softmax gradient (tokens x vocab, fp32) fits the copy's segment only where the 2 MiB rounding of that
    segment covers the batch positions the shift dropped. Where it does not, it takes a segment of its own.
    Measured (H200, TRL 1.0-1.6): taken by gemma-3-1b, gemma-2-2b, qwen2.5-0.5b and qwen2.5-3b, and llama-3.2-1b at
    3 x 1024; not by llama-3.2-1b and llama-3.2-3b at 4,096 tokens, llama-3.2-1b at 2 x 1024, tinyllama-1.1b and
    smollm2-1.7b, whose copies round up to the full size."""
    full = full_logits_block(model, batch * seq)
    return batch > 1 and segment_bytes(full_logits_block(model, batch * (seq - 1))) < full


def loss_buffers(path: str, model: ModelArch, tokens: int, plan) -> LossBuffers:
    h, v = model.hidden, model.vocab
    if path in ("hf_full", "trl_full", "trl_full_copies"):
        fwd, bwd = loss_forward_bytes(model, plan), loss_backward_bytes(model, plan)
        if path == "trl_full_copies":  # shifted .contiguous() copies of the logits for the metrics (measured: the
            fwd += 3 * C * tokens * v  # allocated peak grows by 6 bytes per tokens x vocab element)
        return LossBuffers(fwd, bwd, True, full_logits_block(model, tokens))
    if path in ("trl_chunked", "trl_chunked_lowp"):
        tile = CHUNK_TOKENS * v
        hidden = 4 * tokens * h  # the sorted copy of the fp32 hidden states, a checkpoint input of every chunk
        weight = C * v * h  # the lm_head cast to the compute dtype, kept by the matmul for the chunk's backward
        if path == "trl_chunked" and unquantized_bytes_per_param(model, plan) == C:
            weight += 4 * v * h  # w.float() of a 16-bit lm_head is a real copy (1.4-1.12)
        fwd = hidden + weight + chunk_tile_bytes(plan.trl_version) * tile  # a chunk recomputed in backward
        return LossBuffers(fwd, hidden, False, max(4 * tile, weight))
    if path == "trl_fused":
        scored = tokens
        tile = min(scored, FUSED_TOKENS) * FUSED_VOCAB * C
        weight_slice = FUSED_VOCAB * h * C  # the fp32 lm_head slice cast to the compute dtype
        hidden = 4 * scored * h  # the compact copy of the scored fp32 hidden states, saved for backward
        fwd = tile + weight_slice + hidden + 7 * 4 * scored
        bwd = tile + weight_slice + hidden + 2 * 4 * scored * h  # fp32 hidden gradient and its cast
        return LossBuffers(fwd, bwd, False, tile)
    raise ValueError(path)


def eval_loss_bytes(path: str, model: ModelArch, tokens: int, per_logit_elem: float) -> int:
    """What one evaluation batch's loss holds without gradients: the full logits where the path makes them
    (per_logit_elem bytes per tokens x vocab element, measured), the fused or chunked transients otherwise."""
    if path in ("hf_full", "trl_full", "trl_full_copies"):
        return int(per_logit_elem * tokens * model.vocab)
    if path == "trl_fused":
        return min(tokens, FUSED_TOKENS) * FUSED_VOCAB * C + FUSED_VOCAB * model.hidden * C + 4 * tokens * model.hidden
    return 3 * 4 * CHUNK_TOKENS * model.vocab + 4 * model.vocab * model.hidden + 4 * tokens * model.hidden
