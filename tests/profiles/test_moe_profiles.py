"""MoE profiles and the measured-families gate (profiles/moe_families.json)."""
import json
from pathlib import Path

import pytest

from tests.profiles.moe_gate import moe_gate_open  # noqa: F401  (the fixture)
from vramplan.errors import VramplanError
from vramplan.profiles import UnmodelledError, arch_from_config, find_model, model_catalog
from vramplan.profiles.experts import FAMILIES, measured_families
from vramplan.resources import data_dir

CORPUS = Path(__file__).parent / "corpus"
MOE_PROFILES = {"qwen3-30b-a3b": "qwen3_moe", "mixtral-8x7b": "mixtral", "olmoe-1b-7b": "olmoe",
                "qwen1.5-moe-a2.7b": "qwen2_moe"}


def test_the_gate_lists_only_modelled_families():
    assert measured_families() <= set(FAMILIES)
    data = json.loads((data_dir("profiles") / "moe_families.json").read_text())
    for family, entry in data["measured"].items():
        assert entry["runs"].startswith("calibration/moe/")
        assert set(entry["allocator_cache"]) == {"gate_up_16bit", "down_16bit_per_layer", "lora_gate_up_copy"}
        assert all(v >= 0 for v in entry["allocator_cache"].values())


def test_with_the_gate_closed_moe_profiles_are_refused_by_name_and_left_out_of_listings(monkeypatch):
    from vramplan.profiles import catalog, experts
    monkeypatch.setattr(experts, "measured_families", lambda: frozenset())
    catalog._model_files.cache_clear()
    try:
        assert not {m.model_type for m in model_catalog()} & set(FAMILIES)
        for name in ("qwen3-30b-a3b", "Qwen/Qwen3-30B-A3B", "mistralai/Mixtral-8x7B-v0.1"):
            with pytest.raises(UnmodelledError) as err:
                find_model(name)
            assert err.value.part == "mixture-of-experts"
            assert "catalog model" in err.value.message and "has not been checked against GPU runs" in err.value.message
    finally:
        catalog._model_files.cache_clear()


@pytest.mark.parametrize("name", sorted(MOE_PROFILES))
def test_profiles_count_what_transformers_counts(moe_gate_open, name):
    m = find_model(name)
    assert m.model_type == MOE_PROFILES[name] and m.experts is not None
    assert m.total_params == m.reference_params
    assert m.source == f"https://huggingface.co/{m.hub_id}/blob/main/config.json"
    assert m in model_catalog()


def test_profile_shapes(moe_gate_open):
    q = find_model("qwen3-30b-a3b")
    assert (q.experts.count, q.experts.top_k, q.experts.width, q.intermediate) == (128, 8, 768, 768)
    assert q.linear_names == ("q_proj", "k_proj", "v_proj", "o_proj", "gate", "gate_proj", "up_proj", "down_proj")
    mixtral = find_model("mixtral-8x7b")
    assert mixtral.linear_names[-4:] == ("gate", "w1", "w3", "w2") and mixtral.head_dim == 128
    qwen2 = find_model("qwen1.5-moe-a2.7b")
    assert [lin.name for lin in qwen2.linears if lin.bias] == ["q_proj", "k_proj", "v_proj"]
    assert qwen2.experts.shared_width == 5632 and qwen2.experts.target_names == ()
    assert find_model("olmoe-1b-7b").dtype == "float32"


@pytest.mark.parametrize("name", ["moe-qwen3_moe-30b-a3b", "moe-mixtral-8x7b", "moe-olmoe-1b-7b",
                                  "moe-qwen2_moe-a2.7b"])
def test_measured_families_configs_are_read(moe_gate_open, name):
    assert find_model(str(CORPUS / f"{name}.json")).experts is not None


def test_unmodelled_moe_families_stay_refused_with_the_gate_open(moe_gate_open):
    for name in ("moe-deepseek_v2-lite", "moe-phimoe", "moe-dbrx-ffn-config", "moe-no-family-only-expert-fields"):
        with pytest.raises(UnmodelledError, match="does not model Mixture-of-Experts of this family"):
            find_model(str(CORPUS / f"{name}.json"))
    with pytest.raises(UnmodelledError, match="pre-quantized GPTQ"):
        find_model(str(CORPUS / "moe-qwen2_moe-57b-gptq.json"))


BASE = {"model_type": "qwen3_moe", "hidden_size": 64, "intermediate_size": 96, "moe_intermediate_size": 32,
        "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 128, "num_experts": 8,
        "num_experts_per_tok": 2}


@pytest.mark.parametrize("change, fragment", [
    ({"mlp_only_layers": [0]}, "mlp_only_layers [0] is not modelled"),
    ({"decoder_sparse_step": 2}, "decoder_sparse_step 2 is not modelled"),
    ({"model_type": "mixtral", "num_local_experts": 8, "router_jitter_noise": 0.1}, "router_jitter_noise 0.1"),
    ({"num_experts_per_tok": 9}, "num_experts_per_tok 9 is more than the 8 experts"),
    ({"num_experts": "8"}, "num_experts must be a positive whole number"),
    ({"moe_intermediate_size": 0}, "moe_intermediate_size must be a positive whole number"),
    ({"output_router_logits": "yes"}, "output_router_logits must be true or false"),
])
def test_moe_fields_are_read_strictly(moe_gate_open, change, fragment):
    with pytest.raises(VramplanError) as err:
        arch_from_config({**BASE, **change}, name="t", origin="test")
    assert fragment in str(err.value)
