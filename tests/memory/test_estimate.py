from functools import partial
import pytest

from vramplan.memory import PHASES, estimate
from vramplan.memory.calibration import DEFAULT_CALIBRATION
from vramplan.plan import TrainPlan
HfPlan = partial(TrainPlan, trainer="hf")  # the plain Trainer: what these figures were measured on
from vramplan.profiles import find_gpu, find_model, model_catalog
from vramplan.units import GiB

GPU = find_gpu("H100-80GB")


@pytest.mark.parametrize("model", model_catalog(), ids=lambda m: m.name)
def test_components_sum_to_the_peak_and_phases_are_all_there(model):
    # peft's ParamWrapper refuses LoRA dropout on the experts
    b = estimate(model, GPU, HfPlan(dropout=0.0 if model.experts else 0.05), DEFAULT_CALIBRATION)
    assert sum(b.components.values()) == b.peak_bytes
    assert set(b.phases) == set(PHASES) and b.peak_phase in PHASES
    assert b.peak_allocated_bytes == max(b.phase_peaks().values())
    assert b.required_bytes <= b.peak_bytes + b.peak_allocated_bytes * DEFAULT_CALIBRATION.pressure_fragmentation


def test_peak_grows_with_tokens_and_checkpointing_saves_memory():
    m = find_model("llama-3.1-8b")
    small, long = (estimate(m, GPU, HfPlan(seq=s), DEFAULT_CALIBRATION).peak_bytes for s in (1024, 4096))
    assert long > small
    with_ckpt = estimate(m, GPU, HfPlan(seq=2048), DEFAULT_CALIBRATION).peak_allocated_bytes
    without = estimate(m, GPU, HfPlan(seq=2048, gradient_checkpointing=False), DEFAULT_CALIBRATION).peak_allocated_bytes
    assert without > with_ckpt


def test_bf16_and_fp16_need_the_same_memory():
    m = find_model("qwen2.5-7b")
    bf16, fp16 = (estimate(m, GPU, HfPlan(dtype=d), DEFAULT_CALIBRATION).peak_bytes for d in ("bf16", "fp16"))
    assert bf16 == fp16


def test_eager_attention_grows_with_the_square_of_the_sequence():
    m = find_model("llama-3.2-1b")
    sdpa = estimate(m, GPU, HfPlan(seq=4096, gradient_checkpointing=False), DEFAULT_CALIBRATION).peak_allocated_bytes
    eager = estimate(m, GPU, HfPlan(seq=4096, gradient_checkpointing=False, attn="eager"), DEFAULT_CALIBRATION).peak_allocated_bytes
    # 6 bytes per score, 32 heads, 16 layers, s^2 scores: > 40 GiB more
    assert eager - sdpa > 16 * 32 * 4096**2 * 6 * 0.9


def test_large_vocab_peaks_at_the_loss():
    assert estimate(find_model("gemma-2-2b"), GPU, HfPlan(seq=4096), DEFAULT_CALIBRATION).peak_phase == "loss"


def test_paged_optimizer_memory_is_counted_outside_the_allocator():
    m = find_model("llama-3.1-8b")
    b = estimate(m, GPU, HfPlan(rank=64, optim="paged_adamw_32bit"), DEFAULT_CALIBRATION)
    assert b.components["optimizer_states_paged"] == b.managed_bytes > 1.2e9
    assert b.peak_bytes - b.peak_reserved_bytes == DEFAULT_CALIBRATION.context_bytes + b.managed_bytes


def test_vram_override_changes_only_the_verdict():
    m = find_model("llama-3.1-8b")
    roomy = estimate(m, GPU, HfPlan(), DEFAULT_CALIBRATION)
    tight = estimate(m, GPU, HfPlan(), DEFAULT_CALIBRATION, vram_bytes=8 * GiB)
    assert roomy.peak_bytes == tight.peak_bytes and roomy.fits and not tight.fits


def test_h100_measurement_is_reproduced():
    # calibration/runs/nvidia-h100-80gb-hbm3.jsonl: llama-3.1-8b r16 seq 2048, max_memory_allocated 13,397,573,120
    b = estimate(find_model("llama-3.1-8b"), GPU, HfPlan(seq=2048), DEFAULT_CALIBRATION)
    assert b.peak_allocated_bytes == pytest.approx(13_397_573_120, rel=0.02)


def test_without_prepare_for_kbit_training_the_unquantized_parts_stay_16bit():
    m = find_model("llama-3.1-8b")
    prepared = estimate(m, GPU, HfPlan(), DEFAULT_CALIBRATION)
    raw = estimate(m, GPU, HfPlan(kbit_prepare=False), DEFAULT_CALIBRATION)
    assert raw.phases["load"]["embeddings_lm_head"] * 2 == prepared.phases["load"]["embeddings_lm_head"]
    assert "lm_head_cast" not in raw.components and raw.peak_allocated_bytes < prepared.peak_allocated_bytes
