from vramplan.memory.weights import base_components, lm_head_cast_bytes, quantized_linear_bytes
from vramplan.plan import TrainPlan
from vramplan.profiles import find_model

N = 4096 * 14336  # one llama-3.1-8b MLP projection


def test_nf4_packs_two_weights_per_byte_with_double_quant_constants():
    weight, consts = quantized_linear_bytes(N, 14336, TrainPlan())
    assert weight == N // 2
    blocks = N // 64
    # uint8 absmax per 64-block + fp32 absmax per 256 of those + offset + 16-entry code (512-byte blocks)
    assert consts == blocks + 4 * (blocks // 256) + 512 + 512


def test_without_double_quant_absmax_is_fp32():
    _, dq = quantized_linear_bytes(N, 14336, TrainPlan())
    _, plain = quantized_linear_bytes(N, 14336, TrainPlan(double_quant=False))
    assert plain == 4 * (N // 64) + 512
    assert plain > 3 * dq


def test_int8_and_16bit_weights():
    assert quantized_linear_bytes(N, 14336, TrainPlan(quant="int8")) == (N, 4 * 14336)
    assert quantized_linear_bytes(N, 14336, TrainPlan(quant="none"))[0] == 2 * N


def test_prepare_for_kbit_training_makes_embeddings_fp32():
    m = find_model("llama-3.1-8b")
    q = base_components(m, TrainPlan())["embeddings_lm_head"]
    assert q == 4 * 2 * m.vocab * m.hidden
    assert base_components(m, TrainPlan(quant="none"))["embeddings_lm_head"] == 2 * 2 * m.vocab * m.hidden


def test_tied_embeddings_count_once():
    m = find_model("llama-3.2-1b")
    assert m.tied_embeddings
    assert base_components(m, TrainPlan())["embeddings_lm_head"] == 4 * m.vocab * m.hidden


def test_lm_head_cast_only_when_the_head_is_fp32():
    m = find_model("llama-3.1-8b")
    assert lm_head_cast_bytes(m, TrainPlan()) == 2 * m.vocab * m.hidden
    assert lm_head_cast_bytes(m, TrainPlan(quant="none")) == 0
