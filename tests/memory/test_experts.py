"""Mixture-of-Experts components, with the measured-families gate opened inside each test."""
from dataclasses import replace

import pytest

from tests.profiles.moe_gate import moe_gate_open  # noqa: F401  (the fixture)
from vramplan import decisions as D
from vramplan.decisions import Refusal
from vramplan.errors import VramplanError
from vramplan.memory import estimate
from vramplan.memory.calibration import DEFAULT_CALIBRATION
from vramplan.memory.experts import (expert_lora_shapes, expert_targets, load_transient_bytes, moe_layer,
                                     router_logits_kept)
from vramplan.plan import TrainPlan
from vramplan.profiles import arch_from_config, find_gpu, find_model
from vramplan.units import GiB

GPU = find_gpu("H200")
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
TINY = {
    "qwen3_moe": {"model_type": "qwen3_moe", "hidden_size": 64, "intermediate_size": 96, "moe_intermediate_size": 32,
                  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
                  "vocab_size": 128, "num_experts": 8, "num_experts_per_tok": 2, "tie_word_embeddings": False},
    "olmoe": {"model_type": "olmoe", "hidden_size": 64, "intermediate_size": 32, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 128, "num_experts": 8,
              "num_experts_per_tok": 2, "tie_word_embeddings": False},
    "mixtral": {"model_type": "mixtral", "hidden_size": 64, "intermediate_size": 48, "num_hidden_layers": 2,
                "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 128, "num_local_experts": 4,
                "num_experts_per_tok": 2, "tie_word_embeddings": False},
    "qwen2_moe": {"model_type": "qwen2_moe", "hidden_size": 64, "intermediate_size": 96, "moe_intermediate_size": 32,
                  "shared_expert_intermediate_size": 80, "num_hidden_layers": 2, "num_attention_heads": 4,
                  "num_key_value_heads": 4, "vocab_size": 128, "num_experts": 6, "num_experts_per_tok": 2,
                  "tie_word_embeddings": False},
}
NAMES = {"mixtral": ATTENTION + ("w1", "w3", "w2"), "qwen2_moe": ATTENTION + ("gate_proj", "up_proj", "down_proj")}
GATEUPDOWN = ATTENTION + ("gate_proj", "up_proj", "down_proj")


def tiny(family: str):
    return arch_from_config(TINY[family], name=f"tiny-{family}", origin="test")


def _peft_model(family: str, targets, dropout: float = 0.0):
    torch = pytest.importorskip("torch")
    pytest.importorskip("peft")
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM
    cfg = dict(TINY[family])
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(cfg.pop("model_type"), **cfg))
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout, bias="none", task_type="CAUSAL_LM",
                      target_modules=targets if isinstance(targets, str) else list(targets))
    return get_peft_model(model, lora)


@pytest.mark.parametrize("family", sorted(TINY))
@pytest.mark.parametrize("targets", ["all-linear", "names", ATTENTION])
def test_trainable_parameters_are_peft_own_count(moe_gate_open, family, targets):
    targets = NAMES.get(family, GATEUPDOWN) if targets == "names" else targets
    peft_model = _peft_model(family, targets)
    counted = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    plan = TrainPlan(rank=4, alpha=8, dropout=0.0, targets=targets, batch=1, seq=16)
    assert estimate(tiny(family), GPU, plan, DEFAULT_CALIBRATION).trainable_params == counted


@pytest.mark.parametrize("family", ["qwen3_moe", "mixtral"])
def test_paramwrapper_tensor_shapes_are_peft_own(moe_gate_open, family):
    peft_model = _peft_model(family, "all-linear")
    layer0 = sorted(tuple(p.shape) for n, p in peft_model.named_parameters()
                    if p.requires_grad and ".layers.0.mlp." in n)
    plan = TrainPlan(rank=4, dropout=0.0, batch=1, seq=16)
    assert layer0 == sorted(expert_lora_shapes(tiny(family), plan))


def test_dropout_on_wrapped_experts_is_refused_as_peft_refuses_it(moe_gate_open):
    with pytest.raises(ValueError, match="ParamWrapper does not work with lora_dropout"):
        _peft_model("qwen3_moe", "all-linear", dropout=0.05)
    with pytest.raises(VramplanError) as err:
        estimate(tiny("qwen3_moe"), GPU, TrainPlan(dropout=0.05, batch=1, seq=16), DEFAULT_CALIBRATION)
    assert "lora.ParamWrapper" in err.value.message and "--dropout 0" in err.value.hint
    assert err.value.reason.code == D.PARAMWRAPPER_DROPOUT
    assert err.value.reason["wrapped"] == ["router", "gate_up_proj", "down_proj"]
    assert "(router, gate_up_proj, down_proj)" in err.value.message
    # attention-only targets, and qwen2_moe (peft does not convert it), keep their dropout
    _peft_model("qwen2_moe", "all-linear", dropout=0.05)
    for family, targets in (("qwen3_moe", ATTENTION), ("qwen2_moe", "all-linear")):
        plan = TrainPlan(dropout=0.05, targets=targets, batch=1, seq=16)
        assert estimate(tiny(family), GPU, plan, DEFAULT_CALIBRATION).peak_bytes > 0


def test_targeting_gate_without_up_is_refused(moe_gate_open):
    with pytest.raises(Refusal, match="gate_proj without up_proj") as err:
        expert_targets(tiny("qwen3_moe"), TrainPlan(dropout=0.0, targets=ATTENTION + ("gate_proj",)))
    assert err.value.reason.code == D.EXPERTS_HALF_TARGETED and err.value.reason["missing"] == "up_proj"


def test_all_linear_wraps_gate_up_at_twice_the_rank_and_names_leave_the_router_out(moe_gate_open):
    m = tiny("olmoe")
    every = expert_targets(m, TrainPlan(rank=8, dropout=0.0))
    assert (every.gate_up, every.down, every.router) == (16, 8, 8)
    named = expert_targets(m, TrainPlan(rank=8, dropout=0.0, targets=GATEUPDOWN))
    assert (named.gate_up, named.down, named.router) == (16, 8, 0)
    assert not expert_targets(tiny("qwen2_moe"), TrainPlan(rank=8)).any


def test_experts_are_unquantized_and_fp32_after_prepare(moe_gate_open):
    m = find_model("qwen3-30b-a3b")
    b = estimate(m, GPU, TrainPlan(dropout=0.0), DEFAULT_CALIBRATION)
    assert b.phases["load"]["moe_experts"] == 48 * 3 * 128 * 768 * 2048 * 4  # 108 GiB: more than any 4-bit base
    with pytest.raises(Refusal, match="no-kbit-prepare"):  # 16-bit experts were not measured
        estimate(m, GPU, TrainPlan(dropout=0.0, kbit_prepare=False), DEFAULT_CALIBRATION)


def test_merged_weights_are_kept_per_layer_without_checkpointing_and_once_with(moe_gate_open):
    m = replace(find_model("olmoe-1b-7b"), layers=4)
    plan = TrainPlan(dropout=0.0, batch=2, seq=512, trainer="hf")
    per_layer = moe_layer(m, plan).merged_weights
    assert per_layer == 4 * 3 * 64 * 1024 * 2048 + 4 * 64 * 2048  # fp32 W' of gate_up, down and the router
    ck = estimate(m, GPU, plan, DEFAULT_CALIBRATION)
    nock = estimate(m, GPU, plan.with_(gradient_checkpointing=False), DEFAULT_CALIBRATION)
    assert ck.phases["backward"]["moe_lora_merged_weights"] == per_layer
    assert nock.phases["backward"]["moe_lora_merged_weights"] == 4 * per_layer
    frozen = moe_layer(m, plan.with_(targets=ATTENTION))
    assert frozen.merged_weights == 0 and frozen.saved_per_token < moe_layer(m, plan).saved_per_token


def test_dispatch_activations_grow_with_top_k(moe_gate_open):
    base = find_model("olmoe-1b-7b")
    plan = TrainPlan(dropout=0.0, targets=ATTENTION)
    k8 = moe_layer(base, plan).saved_per_token
    k4 = moe_layer(replace(base, experts=replace(base.experts, top_k=4)), plan).saved_per_token
    c, h, i = 4, 2048, 1024  # fp32 experts after prepare
    assert k8 - k4 == 4 * (c * (h + 3 * i) + 29 + 12)


def test_the_cast_transient_is_the_largest_parameter_not_followed_by_enough(moe_gate_open):
    m = replace(find_model("mixtral-8x7b"), layers=1)
    gate_up, down, head = 8 * 28672 * 4096, 8 * 4096 * 14336, 32000 * 4096
    assert load_transient_bytes(m, TrainPlan()) == 2 * gate_up - 2 * (down + head)


def test_router_logits_are_kept_when_the_config_or_the_trl_release_asks_for_them(moe_gate_open):
    asked = arch_from_config({**TINY["mixtral"], "output_router_logits": True}, name="t", origin="test")
    plain, off = tiny("mixtral"), arch_from_config({**TINY["mixtral"], "router_aux_loss_coef": 0}, name="o",
                                                   origin="test")
    hf = TrainPlan(dropout=0.0, batch=2, seq=64, trainer="hf")
    b = estimate(asked, GPU, hf, DEFAULT_CALIBRATION)
    assert b.phases["forward"]["moe_router_logits"] == 2 * 2 * 2 * 128 * 4  # layers x (logits + softmax) x T x E
    assert "moe_router_logits" not in estimate(plain, GPU, hf, DEFAULT_CALIBRATION).phases["forward"]
    kept = {rel: router_logits_kept(plain, hf.with_(trainer="trl", trl_version=rel)) for rel in ("1.6", "1.7", "1.16")}
    assert kept == {"1.6": False, "1.7": True, "1.16": True}  # SFTTrainer turns output_router_logits on itself
    assert router_logits_kept(off, hf.with_(trainer="trl", trl_version="1.13"))
    assert not router_logits_kept(off, hf.with_(trainer="trl", trl_version="1.16"))


def test_moe_over_several_gpus_or_an_8_or_16_bit_base_is_refused(moe_gate_open):
    with pytest.raises(Refusal, match="one GPU only"):
        estimate(tiny("olmoe"), GPU, TrainPlan(dropout=0.0, gpus=2, trainer="hf"), DEFAULT_CALIBRATION)
    for quant in ("int8", "none"):
        with pytest.raises(VramplanError, match=f"--quant {quant}: .* 8-bit and 16-bit bases were not measured"):
            estimate(tiny("olmoe"), GPU, TrainPlan(dropout=0.0, quant=quant), DEFAULT_CALIBRATION)


def test_qwen3_30b_does_not_fit_a_24_gib_card(moe_gate_open):
    b = estimate(find_model("qwen3-30b-a3b"), find_gpu("RTX-4090"), TrainPlan(dropout=0.0), DEFAULT_CALIBRATION)
    assert not b.fits and b.components["moe_experts"] > 100 * GiB
