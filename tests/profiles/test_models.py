import json

import pytest

from vramplan.errors import NotFoundError, VramplanError
from vramplan.profiles import find_model, model_catalog

REQUIRED = ["llama-3.1-8b", "llama-3.1-70b", "llama-3.2-1b", "llama-3.2-3b", "llama-3.3-70b", "mistral-7b-v0.3",
            "qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-3b", "qwen2.5-7b", "qwen2.5-14b", "qwen2.5-32b", "qwen2.5-72b",
            "gemma-2-2b", "gemma-2-9b", "gemma-2-27b", "phi-3-mini", "phi-4", "qwen3-8b", "gemma-3-1b"]


def test_catalog_has_the_required_models_and_at_least_30():
    names = {m.name for m in model_catalog()}
    assert len(names) >= 30
    assert set(REQUIRED) <= names


@pytest.mark.parametrize("model", model_catalog(), ids=lambda m: m.name)
def test_profile_counts_match_transformers_and_published_totals(model):
    assert model.source.startswith("https://huggingface.co/")
    assert model.total_params == model.reference_params  # transformers' own count of the same config
    if model.published_params:
        expected = model.published_params
        if model.published_params_counts_tied_head:
            expected -= model.vocab * model.hidden  # the checkpoint stores the tied head a second time
        assert model.total_params == expected


def test_llama_31_8b_total_is_the_published_one():
    assert find_model("llama-3.1-8b").total_params == 8_030_261_248


def test_names_match_case_insensitively_and_by_alias_and_hub_id():
    assert find_model("LLaMA-3.1-8B").name == "llama-3.1-8b"
    assert find_model("meta-llama/Llama-3.1-8B").name == "llama-3.1-8b"
    assert find_model("phi3-mini").name == "phi-3-mini"


def test_unknown_model_suggests_close_names():
    with pytest.raises(NotFoundError) as err:
        find_model("llama-3.1-9b")
    assert "llama-3.1-8b" in err.value.suggestions


def test_phi3_uses_fused_projections_and_qwen2_has_qkv_bias():
    assert find_model("phi-3-mini").linear_names == ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")
    qwen = find_model("qwen2.5-7b")
    assert [lin.name for lin in qwen.linears if lin.bias] == ["q_proj", "k_proj", "v_proj"]


def test_local_config_json_and_model_folder(tmp_path):
    cfg = {"model_type": "llama", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2,
           "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000, "tie_word_embeddings": False}
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(cfg))
    by_folder, by_file = find_model(str(folder)), find_model(str(folder / "config.json"))
    assert by_folder.total_params == by_file.total_params
    # embed + head + 2 layers of (q,k,v,o + 3 mlp + 2 norms) + final norm
    layer = 256 * 256 * 2 + 256 * 128 * 2 + 3 * 256 * 512 + 2 * 256
    assert by_folder.total_params == 2 * 1000 * 256 + 2 * layer + 256


def test_a_wrapper_config_without_towers_reads_its_text_config(tmp_path):
    text = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2,
            "vocab_size": 100}
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "text_config": text}))
    assert find_model(str(tmp_path)).hidden == 64


def test_a_multimodal_gemma3_config_is_refused_for_its_vision_tower(tmp_path):
    text = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2,
            "vocab_size": 100}
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gemma3", "text_config": text}))
    with pytest.raises(VramplanError, match="gemma3 has a vision tower"):
        find_model(str(tmp_path))


@pytest.mark.parametrize("content, message", [
    ("{not json", "malformed JSON"),
    ('{"model_type": "llama"}', "missing hidden_size"),
    ('{"hidden_size": 0, "intermediate_size": 1, "num_hidden_layers": 1, "num_attention_heads": 1, "vocab_size": 1}',
     "hidden_size must be a positive whole number, got 0"),
    ("[1, 2]", "must be a JSON object"),
])
def test_malformed_config_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(VramplanError) as err:
        find_model(str(path))
    assert message in str(err.value) and str(path) in str(err.value)


def test_profile_module_names_must_agree_with_the_family_layout(tmp_path):
    from vramplan.profiles.models import load_model_file
    from vramplan.resources import data_dir
    d = json.loads((data_dir("profiles") / "models" / "phi-3-mini.json").read_text())
    assert d["modules"]["decoder_linears"] == ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    d["modules"]["decoder_linears"] = ["q_proj", "k_proj", "v_proj", "o_proj"]
    bad = tmp_path / "phi.json"
    bad.write_text(json.dumps(d))
    with pytest.raises(VramplanError, match="disagrees"):
        load_model_file(bad)
