"""The per-stream FSDP reserve against what the allocation traces in calibration/traces show."""
from functools import partial
import pytest

from vramplan.memory import estimate
from vramplan.memory.calibration import DEFAULT_CALIBRATION
from vramplan.memory.fsdp_reserve import (
    all_gather_reserve,
    appended_bytes,
    compute_stream_after_wrap,
    loss_appended,
    wrap_reserve,
)
from vramplan.plan import TrainPlan
HfPlan = partial(TrainPlan, trainer="hf")  # the plain Trainer: what these figures were measured on
from vramplan.profiles import find_gpu, find_model
from vramplan.store.calibrations import calibration_for
from vramplan.units import GiB

GiB = GiB


def _appended(model_name, seq, batch=1):
    model = find_model(model_name)
    plan = HfPlan(seq=seq, batch=batch, gpus=2, allocator="expandable")
    b = estimate(model, find_gpu("H200"), plan, DEFAULT_CALIBRATION)
    return loss_appended(model, plan, b.phases), 4 * plan.tokens * model.vocab, 2 * plan.tokens * model.vocab


@pytest.mark.parametrize("model,seq,batch,blocks", [
    ("llama-3.1-8b", 2048, 1, (0, 0)),   # every loss block fits the two root-sized holes: no growth
    ("llama-3.1-8b", 4096, 1, (1, 0)),   # cross_entropy's fp32 block is appended (trace: +1.953 GiB)
    ("llama-3.1-8b", 8192, 1, (3, 0)),   # three fp32 blocks (reserve 22.62 GiB measured, 22.61 from the trace)
    ("qwen2.5-7b", 2048, 1, (1, 0)),     # 1.16 GiB blocks do not fit what is left of 2.03 GiB holes (+1.172)
    ("qwen2.5-7b", 4096, 2, (3, 1)),     # nothing fits: bf16 logits and three fp32 blocks (+2.32, +4.65 x 3)
    ("mistral-7b-v0.3", 2048, 1, (0, 0)),
])
def test_loss_blocks_appended_as_the_traces_show(model, seq, batch, blocks):
    appended, fp32, compute_dtype = _appended(model, seq, batch)
    assert appended == blocks[0] * fp32 + blocks[1] * compute_dtype


def test_best_fit_splits_merges_and_reuses_a_free_tail():
    seq = (("+", "a", "X"), ("+", "b", "X"), ("-", "a"), ("+", "c", "Y"))
    assert appended_bytes([10], {"X": 6, "Y": 4}, seq) == 6       # b does not fit the 4 left: appended
    assert appended_bytes([12], {"X": 6, "Y": 12}, seq) == 12     # a's hole (6) is too small for c
    assert appended_bytes([], {"X": 6, "Y": 6}, seq) == 12        # a's freed block is reused by c
    assert appended_bytes([4], {"X": 4, "Y": 8}, (("+", "a", "X"), ("-", "a"), ("+", "b", "Y"))) == 8


def test_the_reserve_is_the_sum_of_the_two_streams():
    # trace llama-3.1-8b-2048x1: the all-gather stream holds 2.17 GiB (root 1.96 + two layer units), the
    # compute stream 8.62 GiB (the wrap); 10.88 GiB reserved in all
    model, gpu = find_model("llama-3.1-8b"), find_gpu("H200")
    plan = HfPlan(seq=2048, gpus=2, allocator="expandable")
    b = estimate(model, gpu, plan, calibration_for(gpu))
    assert all_gather_reserve(b.phases) / GiB == pytest.approx(2.17, abs=0.05)
    assert wrap_reserve(b.phases, plan) / GiB == pytest.approx(8.62, abs=0.4)
    assert compute_stream_after_wrap(model, plan, b.phases) == wrap_reserve(b.phases, plan)
    assert b.peak_reserved_bytes / GiB == pytest.approx(10.88, rel=0.03)


def test_offload_keeps_no_root_shard_on_the_gpu():
    model = find_model("llama-3.1-8b")
    on, off = (HfPlan(seq=4096, gpus=2, optim="adamw_torch", offload=o) for o in (False, True))
    b_on, b_off = (estimate(model, find_gpu("H200"), p, DEFAULT_CALIBRATION) for p in (on, off))
    root = b_on.phases["load"]["embeddings_lm_head"]
    assert wrap_reserve(b_on.phases, on) - wrap_reserve(b_off.phases, off) == root // 2


def test_the_default_allocators_resplit_is_the_upper_bound_not_the_peak():
    # measured in 4 of 12 default-allocator FSDP runs (llama-3.1-8b r64: 17.33 GiB against 14.50 at r16), not
    # predictable from the plan (llama-3.2-3b at r64 and qwen3-8b at r32 did not have it)
    model, gpu = find_model("llama-3.1-8b"), find_gpu("H200")
    fp32 = 4 * 4096 * model.vocab
    default = estimate(model, gpu, HfPlan(seq=4096, rank=64, alpha=64, gpus=2), DEFAULT_CALIBRATION).to_dict()
    assert default["peak_upper_bytes"] - default["peak_bytes"] == fp32 and "logits_resplit" not in default["components"]
    plan = HfPlan(seq=4096, rank=64, alpha=64, gpus=2, allocator="expandable")
    expandable = estimate(model, gpu, plan, DEFAULT_CALIBRATION).to_dict()
    assert expandable["peak_upper_bytes"] == expandable["peak_bytes"]
