"""fit's search and partial / offloaded checkpointing: left out while the gate is closed; with it open (as it
ships), the fastest mode that fits between checkpointing every layer and none."""
import pytest

from tests.profiles.checkpointing_gate import checkpointing_gate_closed, checkpointing_gate_open  # noqa: F401
from vramplan.errors import VramplanError
from vramplan.plan import TrainPlan
from vramplan.profiles import find_gpu, find_model
from vramplan.profiles.checkpointing import search_modes
from vramplan.search import candidates, fit, margin_limit
from vramplan.store.calibrations import Calibrations

CAL = Calibrations.shipped()
# a consumer card where no checkpointing does not fit and full checkpointing leaves memory idle
MODEL, GPU, JOB = find_model("llama-3.1-8b"), find_gpu("RTX-4090"), dict(seq=2048, effective_batch=1)


def test_the_closed_gate_leaves_the_modes_out_of_the_search(checkpointing_gate_closed):
    assert search_modes(32, TrainPlan()) == [(False, 1, False), (True, 1, False)]
    result = fit(MODEL, GPU, cal=CAL, **JOB)
    assert result.recommended.plan.checkpoint_every == 1 and not result.recommended.plan.checkpoint_offload
    cands = candidates(CAL, MODEL, GPU, TrainPlan(seq=2048), 1, result.capacity_bytes, (16,), ("paged_adamw_8bit",))
    assert {(c.plan.checkpoint_every, c.plan.checkpoint_offload) for c in cands} == {(1, False)}


def test_a_mode_the_base_asks_for_is_checked_against_the_gate(checkpointing_gate_closed):
    with pytest.raises(VramplanError, match="--checkpoint-every"):
        fit(MODEL, GPU, cal=CAL, base=TrainPlan(checkpoint_every=2), **JOB)


def test_the_open_gate_tries_every_n_between_on_and_off(checkpointing_gate_open):
    modes = search_modes(32, TrainPlan())
    assert (True, 2, False) in modes and (True, 4, True) in modes and (True, 1, True) in modes
    assert search_modes(3, TrainPlan()) == [(False, 1, False), (True, 1, False), (True, 2, False), (True, 1, True),
                                            (True, 2, True)]  # every_n below the layer count only
    assert search_modes(32, TrainPlan(gpus=2, trainer="hf")) == [(False, 1, False), (True, 1, False)]
    assert search_modes(32, TrainPlan(checkpoint_every=3)) == [(True, 3, False)]


def test_the_open_gate_picks_the_fastest_mode_that_fits(checkpointing_gate_open):
    result = fit(MODEL, GPU, cal=CAL, **JOB)
    rec = result.recommended
    assert rec.plan.gradient_checkpointing and rec.plan.checkpoint_every > 1
    cands = candidates(CAL, MODEL, GPU, TrainPlan(seq=2048), 1, result.capacity_bytes, (16,),
                       (rec.plan.optim,))
    same_batch = [c for c in cands if c.plan.batch == rec.plan.batch and c.plan.rank == rec.plan.rank]
    none = next(c for c in same_batch if not c.plan.gradient_checkpointing)
    full = next(c for c in same_batch if c.plan.gradient_checkpointing and c.plan.checkpoint_every == 1
                and not c.plan.checkpoint_offload)
    assert not none.fits and full.fits
    assert full.breakdown.required_bytes < 0.85 * margin_limit(result.capacity_bytes)  # memory left idle
    assert rec.tokens_per_s > full.tokens_per_s
    assert rec.tokens_per_s == max(c.tokens_per_s for c in cands if c.fits and c.plan.rank == rec.plan.rank)


def test_the_shipped_gate_picks_partial_checkpointing_where_the_runs_measured_it():
    """llama-3.2-1b at micro-batch 4 x 1024 on an H200 capped at 13 GiB: no checkpointing (14.6 GiB measured) does
    not fit, full checkpointing (4.2 GiB) leaves most of the card idle; fit checkpoints every 4th layer, which the
    speed model puts faster than full checkpointing, as the H200 runs of those plans measured it."""
    from vramplan.calibrate import partial_ckpt_accuracy as A
    from vramplan.planner import Planner
    from vramplan.units import GiB
    model, gpu = find_model("llama-3.2-1b"), find_gpu("H200")
    result = Planner(gpu, CAL, 13 * GiB).fit(model, seq=1024, effective_batch=4)
    rec = result.recommended
    assert (rec.plan.batch, rec.plan.checkpoint_every, rec.plan.checkpoint_offload) == (4, 4, False)
    cands = candidates(CAL, model, gpu, TrainPlan(seq=1024), 4, result.capacity_bytes, (16,), (rec.plan.optim,))
    at_4 = [c for c in cands if c.plan.batch == 4]
    none = next(c for c in at_4 if not c.plan.gradient_checkpointing)
    full = next(c for c in at_4 if c.plan.checkpoint_every == 1 and c.plan.gradient_checkpointing
                and not c.plan.checkpoint_offload)
    assert not none.fits and full.fits and full.breakdown.required_bytes < 0.5 * margin_limit(result.capacity_bytes)
    assert rec.tokens_per_s > full.tokens_per_s
    assert rec.tokens_per_s == max(c.tokens_per_s for c in cands if c.fits)
    measured = {r["why"]: r["measured_s"] for r in A.accuracy_rows() if r["model"] == "llama-3.2-1b"}
    every_4, full_s = measured["partial ckpt: trl b4x1024 checkpointing every 4"], \
        measured["partial ckpt: trl b4x1024 full checkpointing"]
    assert every_4 < 0.8 * full_s  # measured: 0.20 s against 0.30 s a step


def test_the_reasons_name_the_mode_and_what_it_buys():
    from vramplan import decisions as D
    from vramplan.planner import Planner
    from vramplan.present.reasons import say
    from vramplan.units import GiB
    result = Planner(find_gpu("H200"), CAL, 13 * GiB).fit(find_model("llama-3.2-1b"), seq=1024, effective_batch=4)
    partial = next(r for r in result.reasons if r.code == D.CHECKPOINTING_PARTIAL)
    assert (partial["every"], partial["checkpointed"], partial["layers"]) == (4, 4, 16)
    assert partial["full_speedup"] > 1 and "every 4 layers: 4 of 16" in say(partial)
    assert not any(r.code == D.CHECKPOINTS_OFFLOADED for r in result.reasons)
    # an 11 GiB card: llama-3.1-8b at 2048 fits only with its checkpoints in host memory
    result = fit(MODEL, find_gpu("RTX-2080Ti"), cal=CAL, seq=2048, effective_batch=16)
    assert result.recommended.plan.checkpoint_offload
    offloaded = next(r for r in result.reasons if r.code == D.CHECKPOINTS_OFFLOADED)
    assert offloaded["on_gpu_fits"] is False and "does not fit" in say(offloaded)


def test_the_longest_sequence_takes_the_leanest_measured_mode(monkeypatch):
    from vramplan.profiles import checkpointing
    from vramplan.search import longest_seq
    gpu = find_gpu("RTX-2080Ti")
    monkeypatch.setattr(checkpointing, "measured_checkpointing_modes", lambda: frozenset())
    closed = longest_seq(CAL, MODEL, gpu, TrainPlan(), gpu.memory_bytes)
    monkeypatch.setattr(checkpointing, "measured_checkpointing_modes", lambda: frozenset(checkpointing.MODES))
    assert longest_seq(CAL, MODEL, gpu, TrainPlan(), gpu.memory_bytes) > closed
    assert longest_seq(CAL, MODEL, gpu, TrainPlan(checkpoint_every=2), gpu.memory_bytes) < closed  # as asked
