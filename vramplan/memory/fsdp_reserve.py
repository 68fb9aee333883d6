"""Per-rank reserve of FSDP QLoRA, stream by stream (allocation traces in calibration/traces/*-expandable).

PyTorch's caching allocator keeps one pool per CUDA stream, so each rank's reserve is the sum of two pools:

- the all-gather stream holds the gathered root unit (embeddings, lm_head) for the whole step and the two layer
  units in flight (the computing one and the prefetched next one);
- the compute stream first holds the whole 4-bit model (every rank loads it), then grows while FSDP wraps the
  root unit: the flat root, its shard and the bucket that broadcasts it. The wrap leaves two holes as large as
  the root (the original tensors and the flat copy) in front of the kept shard. Training then fills them: the
  step's logits and loss blocks are placed best-fit into the holes, and those that do not fit are appended to
  the segment. Whichever is larger sets the compute stream's reserve: the wrap plus the appended loss blocks,
  or the training peak plus its own fragmentation (fitted: `Calibration.fsdp_train_slack`).
"""
from __future__ import annotations

from ..plan import TrainPlan
from ..profiles.models import ModelArch
from .logits import C, fp32_block

# The loss of a transformers causal LM (logits in the compute dtype, float() copy, cross_entropy's log-softmax,
# then backward), block by block as the traces show it: "+" allocates a named block of size L (compute-dtype
# tokens x vocab) or F (fp32 tokens x vocab), "-" frees it. Identical in every traced run.
LOSS_SEQUENCE = (("+", "a", "L"), ("+", "b", "F"), ("+", "c", "F"), ("-", "b"), ("+", "d", "F"), ("-", "a"),
                 ("-", "d"), ("+", "e", "F"), ("+", "f", "F"), ("-", "e"), ("-", "c"), ("+", "g", "L"), ("-", "f"),
                 ("-", "g"))


def appended_bytes(holes: list[int], sizes: dict[str, int], sequence=LOSS_SEQUENCE) -> int:
    """Bytes the sequence appends to a segment whose free holes (in address order, each followed by a live
    block) are `holes`: best fit (smallest hole that fits, lowest address on ties), split, merge on free; a
    block that fits nowhere extends the segment's end, reusing a free tail."""
    blocks: list[list] = []  # [size, owner]; owner None = free, "" = a live block we do not track
    for h in holes:
        blocks += [[h, None], [0, ""]]
    grown = 0
    for op in sequence:
        if op[0] == "+":
            need = sizes[op[2]]
            fits = [i for i, (size, owner) in enumerate(blocks) if owner is None and size >= need]
            if fits:
                i = min(fits, key=lambda j: (blocks[j][0], j))
                rest = blocks[i][0] - need
                blocks[i] = [need, op[1]]
                if rest:
                    blocks.insert(i + 1, [rest, None])
            elif blocks and blocks[-1][1] is None:
                grown += need - blocks[-1][0]
                blocks[-1] = [need, op[1]]
            else:
                grown += need
                blocks.append([need, op[1]])
        else:
            i = next(j for j, b in enumerate(blocks) if b[1] == op[1])
            blocks[i][1] = None
            merged: list[list] = []
            for b in blocks:
                if merged and b[1] is None and merged[-1][1] is None:
                    merged[-1][0] += b[0]
                else:
                    merged.append(b)
            blocks = merged
    return grown


def root_bytes(phases: dict[str, dict[str, int]]) -> int:
    """The root unit as every rank loads and gathers it: embeddings + lm_head in the compute dtype."""
    return phases["load"].get("embeddings_lm_head", 0)


def gathered_bytes(comps: dict[str, int]) -> int:
    """What lives on the all-gather stream at a phase: the gathered root and the layer units in flight."""
    return comps.get("embeddings_lm_head", 0) + comps.get("fsdp_gathered_units", 0)


def all_gather_reserve(phases: dict[str, dict[str, int]]) -> int:
    return max(gathered_bytes(c) for name, c in phases.items() if name != "load")


def wrap_reserve(phases: dict[str, dict[str, int]], plan: TrainPlan) -> int:
    """Compute stream after the wrap: the loaded 4-bit model, the flat root and its kept shard (in CPU memory
    with offload)."""
    root = root_bytes(phases)
    return sum(phases["load"].values()) + root + (0 if plan.offload else root // plan.gpus)


def loss_appended(model: ModelArch, plan: TrainPlan, phases: dict[str, dict[str, int]]) -> int:
    """The loss blocks that do not fit the two root-sized holes the wrap leaves."""
    root = root_bytes(phases)
    sizes = {"L": C * plan.tokens * model.vocab, "F": fp32_block(plan.tokens, model.vocab)}
    return appended_bytes([root, root], sizes)


def compute_stream_after_wrap(model: ModelArch, plan: TrainPlan, phases: dict[str, dict[str, int]]) -> int:
    """The wrap's reserve plus what the loss appends to it, while training fits in the holes."""
    return wrap_reserve(phases, plan) + loss_appended(model, plan, phases)
