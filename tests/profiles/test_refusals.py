"""Configs whose memory is not modelled, and malformed ones: each is refused by name, never answered."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from vramplan.errors import VramplanError
from vramplan.profiles import UnmodelledError, arch_from_config, find_model, model_catalog
from tests.profiles.moe_gate import moe_gate_closed  # noqa: F401  (the fixture)

CORPUS = Path(__file__).parent / "corpus"
MOE = ["Mixture-of-Experts", "fused 3-D parameters", "bitsandbytes 4-bit does not quantize",
       "prepare_model_for_kbit_training casts them to fp32", "does not model Mixture-of-Experts of this family"]
# a family memory/experts.py models, while profiles/moe_families.json does not list it as measured
UNMEASURED = MOE[:-1] + ["has not been checked against GPU runs yet", "profiles/moe_families.json"]
# a family measured but not within 5% (profiles/moe_families.json "refused"), whatever the gate lists
MISSED = MOE[:-1] + ["missed its GPU runs by more than 5% (-9.2%, +10.8%", "calibration/moe/nvidia-h200.jsonl"]

# file -> (UnmodelledError.part, or None for a plain field error; fragments the message must hold)
EXPECTED = {
    "moe-qwen3_moe-30b-a3b": ("mixture-of-experts", UNMEASURED + ["qwen3_moe", "128 experts, 8 per token",
                                                           "54.0 GiB of expert weights in bf16, 108.0 GiB in fp32"]),
    "moe-mixtral-8x7b": ("mixture-of-experts", UNMEASURED + ["mixtral", "8 experts, 2 per token", "84.0 GiB"]),
    "moe-olmoe-1b-7b": ("mixture-of-experts", UNMEASURED + ["olmoe", "64 experts"]),
    "moe-qwen2_moe-a2.7b": ("mixture-of-experts", MISSED + ["qwen2_moe", "60 experts"]),
    "moe-deepseek_v2-lite": ("mixture-of-experts", MOE + ["deepseek_v2", "64 experts, 6 per token"]),
    "moe-deepseek_v3": ("mixture-of-experts", MOE + ["deepseek_v3", "256 experts"]),
    "moe-qwen2_moe-57b-gptq": ("mixture-of-experts", MISSED + ["qwen2_moe"]),
    "moe-phimoe": ("mixture-of-experts", MOE + ["phimoe", "16 experts"]),
    "moe-no-family-only-expert-fields": ("mixture-of-experts", MOE + ["moe_intermediate_size, num_experts_per_tok"]),
    "moe-dbrx-ffn-config": ("mixture-of-experts", MOE + ["dbrx", "ffn_config.moe_num_experts"]),
    "gpt_oss-20b-mxfp4": ("gpt-oss", ["gpt_oss ships MXFP4-quantized experts", "BitsAndBytesConfig",
                                      "Mxfp4Config(dequantize=True)"]),
    "vision-qwen2_vl-7b": ("vision tower", ["qwen2_vl has a vision tower (vision_config)", "text decoders only"]),
    "vision-llava-1.5-7b": ("vision tower", ["llava has a vision tower (vision_config)"]),
    "vision-gemma3-4b-it": ("vision tower", ["gemma3 has a vision tower", "text-only load", "gemma-3"]),
    "vision-mllama-11b": ("vision tower", ["mllama has a vision tower"]),
    "audio-qwen2_audio-7b": ("audio tower", ["qwen2_audio has an audio tower (audio_config)"]),
    "audio-config-on-llama-like": ("audio tower", ["speechllama has an audio tower (audio_config)"]),
    "encdec-bart-large": ("encoder-decoder", ["bart is an encoder-decoder model", "cross-attention"]),
    "encdec-t5-base": ("encoder-decoder", ["t5 is an encoder-decoder model"]),
    "encdec-whisper-small": ("encoder-decoder", ["whisper is an encoder-decoder model"]),
    "encdec-flag-on-llama-fields": ("encoder-decoder", ["custom_seq2seq is an encoder-decoder model"]),
    "encdec-cross-attention-decoder": ("encoder-decoder", ["my_decoder_with_encoder is an encoder-decoder model"]),
    "encoder-only-bert": ("encoder-only", ["bert is an encoder-only model"]),
    "ssm-mamba-130m": ("state-space layers", ["mamba has state-space", "state_size"]),
    "ssm-mamba2-2.7b": ("state-space layers", ["mamba2 has state-space"]),
    "ssm-jamba-v0.1": ("state-space layers", ["jamba has state-space", "attn_layer_period"]),
    "ssm-rwkv-4": ("state-space layers", ["rwkv has state-space", "its model_type"]),
    "hybrid-layer-types": ("state-space layers", ["my_hybrid", "layer_types linear_attention, mamba"]),
    "hybrid-qwen3_next": ("state-space layers", ["qwen3_next", "layer_types linear_attention"]),
    "prequant-gptq-llama-2-7b": ("pre-quantized", ["pre-quantized GPTQ checkpoint", "unquantized base model"]),
    "prequant-awq-mistral-7b": ("pre-quantized", ["pre-quantized AWQ checkpoint"]),
    "prequant-bnb-4bit-unsloth": ("pre-quantized", ["pre-quantized bitsandbytes 4-bit nf4 checkpoint",
                                                    "16-bit base model", "--quant"]),
    "prequant-bnb-8bit-no-method": ("pre-quantized", ["pre-quantized bitsandbytes 8-bit checkpoint"]),
    "prequant-compressed-tensors-fp8": ("pre-quantized", ["pre-quantized compressed-tensors checkpoint"]),
    "prequant-mxfp4-dense": ("pre-quantized", ["pre-quantized MXFP4 checkpoint"]),
    "layout-phi-2": ("layout", ["phi is not a Llama-like decoder", "fc1/fc2", "phi3"]),
    "layout-falcon-7b": ("layout", ["falcon is not a Llama-like decoder", "query_key_value"]),
    "layout-gpt2": ("layout", ["gpt2 is not a Llama-like decoder", "c_attn"]),
    "layout-unknown-foreign-fields": ("layout", ["model_type 'mystery_lm' is not a family vramplan knows",
                                                 "d_model, n_layers, n_heads", "Llama-like ones"]),
    "layout-per-layer-block-configs": ("layout", ["'nemotron-nas' is not a family vramplan knows", "block_configs"]),
    "layout-mistral-native-params": ("layout", ["no model_type", "native params.json"]),
    "bad-json-list": (None, ["config must be a JSON object, this one is a JSON list"]),
    "bad-json-null": (None, ["config must be a JSON object, this one is null"]),
    "bad-json-string": (None, ["config must be a JSON object, this one is a JSON string"]),
    "bad-tie-as-string": (None, ["tie_word_embeddings must be true or false", "got 'false'"]),
    "bad-heads-zero": (None, ["num_attention_heads must be a positive whole number, got 0"]),
    "bad-layers-negative": (None, ["num_hidden_layers must be a positive whole number, got -4"]),
    "bad-hidden-float": (None, ["hidden_size must be a positive whole number, got 4096.0"]),
    "bad-layers-bool": (None, ["num_hidden_layers must be a positive whole number, got True"]),
    "bad-vocab-string": (None, ["vocab_size must be a positive whole number, got '32000'"]),
    "bad-kv-heads-not-dividing": (None, ["num_key_value_heads 5 must divide num_attention_heads 32"]),
    "bad-kv-heads-list": (None, ["num_key_value_heads must be a positive whole number, got a JSON list"]),
    "bad-head-dim-string": (None, ["head_dim must be a positive whole number, got '128'"]),
    "bad-hidden-not-multiple-of-heads": (None, ["hidden_size 4100 is not a multiple of num_attention_heads 32",
                                                "add head_dim"]),
    "bad-softcap-negative": (None, ["final_logit_softcapping must be a positive number or null, got -30.0"]),
    "bad-attention-bias-int": (None, ["attention_bias must be true or false", "got 1"]),
    "bad-dtype-int4": (None, ["torch_dtype 'int4' is not a checkpoint dtype vramplan models"]),
    "bad-dtype-number": (None, ["torch_dtype must be a dtype name", "got 16"]),
    "bad-quantization-config-string": (None, ["quantization_config must be a JSON object, got str"]),
    "bad-layer-types-string": (None, ["layer_types must be a list of strings"]),
    "bad-encoder-decoder-string": (None, ["is_encoder_decoder must be true or false, got 'false'"]),
    "bad-model-type-number": (None, ["model_type must be a string, got 7"]),
    "bad-text-config-list": (None, ["text_config must be a JSON object"]),
    "bad-max-positions-float": (None, ["max_position_embeddings must be a positive whole number, got 4096.5"]),
    "bad-empty-object": (None, ["not a causal LM config.json, missing hidden_size"]),
    "bad-intermediate-null": (None, ["intermediate_size must be a positive whole number, got None"]),
}


def test_every_corpus_file_has_an_expectation_and_the_corpus_covers_each_kind():
    files = {p.stem for p in CORPUS.glob("*.json")}
    assert files == set(EXPECTED)
    parts = {part for part, _ in EXPECTED.values()}
    assert {"mixture-of-experts", "gpt-oss", "vision tower", "audio tower", "encoder-decoder",
            "state-space layers", "pre-quantized", "layout", None} <= parts
    families = {json.loads((CORPUS / f"{f}.json").read_text()).get("model_type") for f in files if
                f.startswith("moe-")}
    assert {"qwen3_moe", "mixtral", "olmoe", "qwen2_moe", "deepseek_v2", "deepseek_v3"} <= families


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_config_is_refused_by_name(name, moe_gate_closed):
    part, fragments = EXPECTED[name]
    path = CORPUS / f"{name}.json"
    with pytest.raises(VramplanError) as err:
        find_model(str(path))
    text = str(err.value)
    for fragment in fragments:
        assert fragment in text
    assert str(path) in text  # which file
    assert err.value.hint  # and what to do
    assert "\n" not in text  # the CLI prints it as one line
    assert getattr(err.value, "part", None) == part
    assert isinstance(err.value, UnmodelledError) == (part is not None)


@pytest.mark.parametrize("name", ["moe-deepseek_v2-lite", "encdec-bart-large", "ssm-mamba2-2.7b",
                                  "vision-qwen2_vl-7b", "prequant-gptq-llama-2-7b", "bad-heads-zero"])
def test_the_cli_exits_2_with_one_line_and_no_number(name):
    proc = subprocess.run([sys.executable, "-m", "vramplan", "estimate", str(CORPUS / f"{name}.json"), "--gpu", "T4"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "GiB" not in proc.stdout and "FITS" not in proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_the_catalogs_own_profiles_all_load_and_none_is_read_as_another_family():
    models = model_catalog()
    assert len(models) >= 39
    assert all(m.read_as is None and m.source_kind == "catalog" for m in models)


def test_multimodal_gemma3_profiles_say_they_are_text_only_loads():
    text_only = {m.name for m in model_catalog() if m.text_only}
    assert text_only == {"gemma-3-4b", "gemma-3-12b", "gemma-3-27b"}
    m = find_model("gemma-3-12b")
    assert "SigLIP vision tower" in m.text_only and "text-only load" in m.text_only
    assert any(n.startswith("text-only load: ") for n in m.notices)
    assert not find_model("gemma-3-1b").notices  # a text-only checkpoint of its own


LLAMA_LIKE = {"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "vocab_size": 1000}


def test_an_unknown_family_with_llama_fields_is_read_as_llama_and_says_so():
    arch = arch_from_config({**LLAMA_LIKE, "model_type": "cohere"}, name="c", origin="test")
    assert arch.read_as == "llama" and arch.model_type == "cohere"
    assert "'cohere' is not a family vramplan knows: read as llama-like" in arch.notices[0]
    assert arch.summary()["read_as"] == "llama"
    assert arch_from_config({**LLAMA_LIKE, "model_type": "mistral"}, name="m", origin="t").read_as is None
    untyped = arch_from_config(LLAMA_LIKE, name="u", origin="t")
    assert untyped.read_as == "llama" and untyped.notices[0].startswith("the config has no model_type: read as")


def test_dense_counts_that_look_like_expert_fields_are_not_refused():
    # an MoE config class written for a dense model: one expert, or zero
    for n in (0, 1):
        arch = arch_from_config({**LLAMA_LIKE, "model_type": "llama", "num_experts": n}, name="d", origin="t")
        assert arch.layers == 2


def test_a_loaded_models_bitsandbytes_config_is_the_recipe_but_a_checkpoints_is_prequantized():
    cfg = {**LLAMA_LIKE, "model_type": "llama",
           "quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": True,
                                   "bnb_4bit_quant_type": "nf4"}}
    assert arch_from_config(cfg, name="loaded", origin="model.config").layers == 2  # PreflightCallback's case
    with pytest.raises(UnmodelledError, match="pre-quantized bitsandbytes 4-bit nf4"):
        arch_from_config(cfg, name="ckpt", origin="config.json", checkpoint=True)
    gptq = {**cfg, "quantization_config": {"quant_method": "gptq", "bits": 4}}
    with pytest.raises(UnmodelledError, match="GPTQ"):
        arch_from_config(gptq, name="loaded", origin="model.config")


def test_family_defaults_for_tied_embeddings():
    gemma = {**LLAMA_LIKE, "model_type": "gemma2", "head_dim": 64}
    assert arch_from_config(gemma, name="g", origin="t").tied_embeddings  # Gemma2Config ties by default
    assert not arch_from_config({**LLAMA_LIKE, "model_type": "llama"}, name="l", origin="t").tied_embeddings


def test_configs_as_transformers_writes_them_load_strictly():
    """PreflightCallback reads model.config.to_dict(): every default field there must pass the strict reader."""
    transformers = pytest.importorskip("transformers")
    small = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=100)
    for mt in ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3", "olmo2", "granite"):
        cfg = transformers.AutoConfig.for_model(mt, **small).to_dict()
        arch = arch_from_config(cfg, name=mt, origin="model.config")
        assert arch.read_as is None and arch.layers == 2


def test_olmo2_counts_its_full_width_qk_norms():
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    small = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=100, tie_word_embeddings=False)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model("olmo2", **small))
    arch = arch_from_config({**small, "model_type": "olmo2"}, name="olmo2", origin="t")
    assert arch.total_params == sum(p.numel() for p in model.parameters())
