"""Configs whose memory vramplan does not model, refused by name before any number is given.

The memory model counts a causal decoder of Llama-like layers (attention + a gated MLP, every nn.Linear
quantized to 4-bit). A config with more than that (experts, a vision or audio tower, an encoder, state-space
layers) or with weights that are not 16-bit (a pre-quantized checkpoint) would get a number that is wrong by
several times, silently. Each check here names the part that is not modelled and what to do instead.
"""
from __future__ import annotations

from ..errors import VramplanError
from . import experts as _experts
from .experts import FAMILIES as MOE_MODELLED

MODELLED = "llama, mistral, qwen2, qwen3, gemma, gemma2, gemma3, phi3, olmo2, granite"
_DENSE_HINT = f"plan a dense decoder instead (families modelled: {MODELLED}; `vramplan models` lists the catalog)"


class UnmodelledError(VramplanError):
    """A config with a part vramplan does not model; `part` names it (for --json and tests)."""

    def __init__(self, part: str, message: str, *, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.part = part


# -- Mixture-of-Experts ------------------------------------------------------------------------------------
MOE_FAMILIES = {
    "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "deepseek_v2", "deepseek_v3", "phimoe", "dbrx", "jetmoe",
    "granitemoe", "granitemoeshared", "arctic", "minimax", "llama4", "llama4_text", "switch_transformers",
    "nllb_moe", "ernie4_5_moe", "glm4_moe", "dots1", "hunyuan_v1_moe", "bailing_moe", "qwen3_vl_moe",
    "qwen3_omni_moe", "aria", "aria_text", "flex_olmo", "longcat_flash", "deepseek_vl_v2", "kimi_k2",
}
EXPERT_COUNT_KEYS = ("num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts", "num_routed_experts")
EXPERT_SHAPE_KEYS = ("moe_intermediate_size", "num_experts_per_tok", "n_shared_experts",
                     "shared_expert_intermediate_size", "moe_topk", "moe_k")


def _count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _expert_fields(config: dict) -> list[str]:
    """The config keys that make it a Mixture-of-Experts; [] for a dense model."""
    counts = {k: config[k] for k in EXPERT_COUNT_KEYS if config.get(k) is not None}
    ffn = config.get("ffn_config")
    if isinstance(ffn, dict) and ffn.get("moe_num_experts") is not None:  # dbrx keeps them one level down
        counts["ffn_config.moe_num_experts"] = ffn["moe_num_experts"]
    if counts:
        # an explicit expert count of 0 or 1 is a dense model written by an MoE config class
        return [k for k, v in counts.items() if _count(v) is None or v > 1]
    return [k for k in EXPERT_SHAPE_KEYS if config.get(k) not in (None, 0, False)]


def _expert_gib(config: dict) -> str:
    """The routed experts' weights in bf16 and fp32, when the shape fields allow it."""
    e = next((_count(config.get(k)) for k in EXPERT_COUNT_KEYS if _count(config.get(k))), None)
    inter = _count(config.get("moe_intermediate_size")) or _count(config.get("intermediate_size"))
    h, layers = _count(config.get("hidden_size")), _count(config.get("num_hidden_layers"))
    if not (e and inter and h and layers) or min(e, inter, h, layers) <= 0:
        return ""
    dense = _count(config.get("first_k_dense_replace")) or 0
    only = config.get("mlp_only_layers")
    dense += len(only) if isinstance(only, list) else 0
    step = _count(config.get("decoder_sparse_step")) or 1
    moe_layers = max(0, (layers - dense) // max(step, 1))
    n = 3 * e * inter * h * moe_layers
    return f" (here {n * 2 / 2**30:.1f} GiB of expert weights in bf16, {n * 4 / 2**30:.1f} GiB in fp32)"


def _refuse_moe(config: dict, mt: str, origin: str) -> None:
    fields = _expert_fields(config)
    if not fields and mt not in MOE_FAMILIES and mt not in MOE_MODELLED:
        return
    if mt in MOE_MODELLED and fields and mt in _experts.measured_families():
        return  # memory/experts.py models it, checked against GPU runs
    e = next((_count(config.get(k)) for k in EXPERT_COUNT_KEYS if _count(config.get(k))), None)
    k = _count(config.get("num_experts_per_tok"))
    what = f" ({e} experts" + (f", {k} per token" if k else "") + ")" if e else f" ({', '.join(fields) or mt})"
    refused = _experts.refused_family(mt) if mt in MOE_MODELLED else None
    if refused:
        runs, errors = refused
        why = (f"vramplan's Mixture-of-Experts model of {mt} missed its GPU runs by more than 5% ("
               + ", ".join(f"{e:+.1f}%" for e in errors) + f"; {runs}), so it gives no number")
    elif mt in MOE_MODELLED:
        why = (f"vramplan's Mixture-of-Experts model of {mt} has not been checked against GPU runs yet "
               "(profiles/moe_families.json lists the measured families), so it gives no number")
    else:
        why = ("vramplan does not model Mixture-of-Experts of this family, so it gives no number (a dense "
               "estimate would be several times too low)")
    raise UnmodelledError(
        "mixture-of-experts",
        f"{origin}: {mt} is a Mixture-of-Experts model{what}: under transformers 5 its experts are fused 3-D "
        "parameters that bitsandbytes 4-bit does not quantize (they load in the compute dtype) and "
        f"prepare_model_for_kbit_training casts them to fp32{_expert_gib(config)}; {why}",
        hint=_DENSE_HINT + ("" if mt in MOE_MODELLED and MOE_MODELLED[mt][2] is None else
                            "; peft also refuses lora_dropout != 0 once the experts are LoRA targets"))


# -- gpt-oss and pre-quantized checkpoints -------------------------------------------------------------------
QUANT_NAMES = {"gptq": "GPTQ", "awq": "AWQ", "mxfp4": "MXFP4", "fp8": "FP8", "fbgemm_fp8": "FBGEMM FP8",
               "compressed-tensors": "compressed-tensors", "hqq": "HQQ", "eetq": "EETQ", "aqlm": "AQLM",
               "quanto": "Quanto", "torchao": "torchao", "bitnet": "BitNet", "higgs": "HIGGS", "vptq": "VPTQ",
               "spqr": "SpQR", "quark": "Quark", "auto-round": "AutoRound", "gguf": "GGUF",
               "bitsandbytes": "bitsandbytes"}


def _quant_method(q: dict) -> str:
    method = q.get("quant_method")
    if isinstance(method, str) and method:
        return method.lower()
    if q.get("load_in_4bit") or q.get("load_in_8bit"):
        return "bitsandbytes"  # configs saved before quant_method existed
    return "unknown"


def _refuse_gpt_oss(config: dict, mt: str, origin: str) -> None:
    q = config.get("quantization_config")
    mxfp4 = isinstance(q, dict) and _quant_method(q) == "mxfp4"
    if mt != "gpt_oss" and not (mxfp4 and _expert_fields(config)):
        return
    raise UnmodelledError(
        "gpt-oss",
        f"{origin}: {mt} ships MXFP4-quantized experts: transformers raises when a BitsAndBytesConfig is "
        "passed on top of its Mxfp4Config, so the QLoRA recipe cannot load it; the only training path is "
        "Mxfp4Config(dequantize=True), which turns the experts into bf16 (not a QLoRA run), and vramplan does not "
        "model that Mixture-of-Experts either",
        hint=_DENSE_HINT)


def _refuse_prequantized(config: dict, mt: str, origin: str, checkpoint: bool) -> None:
    q = config.get("quantization_config")
    if q is None:
        return
    if not isinstance(q, dict):
        raise VramplanError(f"{origin}: quantization_config must be a JSON object, got {type(q).__name__}",
                            hint="fix that field of the config.json, or remove it for a 16-bit checkpoint")
    method = _quant_method(q)
    if method == "bitsandbytes":
        if not checkpoint:
            return  # a loaded model's config carries the BitsAndBytesConfig the user applied: that is the recipe
        bits = "8-bit" if q.get("load_in_8bit") else f"4-bit {q.get('bnb_4bit_quant_type', 'fp4')}"
        raise UnmodelledError(
            "pre-quantized",
            f"{origin}: pre-quantized bitsandbytes {bits} checkpoint (quantization_config in config.json): "
            "vramplan plans from the 16-bit base model and applies the quantization itself",
            hint="give the 16-bit base model's hub id or config.json, with --quant and --no-double-quant "
                 "matching this quantization_config")
    name = QUANT_NAMES.get(method, repr(method))
    raise UnmodelledError(
        "pre-quantized",
        f"{origin}: pre-quantized {name} checkpoint (quantization_config in config.json): its weights are "
        f"stored {name}-quantized and load through {name}'s own kernels, not the 16-bit weights plus "
        "BitsAndBytesConfig of the QLoRA recipe vramplan models",
        hint="give the unquantized base model (its hub id or config.json) instead")


# -- towers, encoders, state-space layers --------------------------------------------------------------------
VISION_KEYS = ("vision_config", "vision_tower", "mm_vision_tower", "visual", "vision_encoder", "vit_config")
VISION_FAMILIES = {"qwen2_vl", "qwen2_5_vl", "qwen3_vl", "llava", "llava_next", "llava_onevision", "mllama",
                   "idefics", "idefics2", "idefics3", "paligemma", "gemma3", "mistral3", "pixtral", "smolvlm",
                   "internvl", "kimi_vl", "janus", "chameleon", "blip-2", "instructblip", "florence2", "molmo",
                   "emu3", "fuyu", "aya_vision", "cohere2_vision", "glm4v", "llava_next_video", "video_llava"}
AUDIO_KEYS = ("audio_config", "audio_tower", "speech_config", "audio_encoder")
AUDIO_FAMILIES = {"qwen2_audio", "qwen2_5_omni", "gemma3n", "phi4_multimodal", "voxtral", "granite_speech"}
ENCODER_DECODER = {"t5", "mt5", "umt5", "longt5", "bart", "mbart", "pegasus", "pegasus_x", "marian", "m2m_100",
                   "blenderbot", "blenderbot-small", "fsmt", "led", "prophetnet", "plbart", "bigbird_pegasus",
                   "whisper", "t5gemma", "seamless_m4t", "speech_to_text", "encoder-decoder", "moonshine"}
ENCODER_ONLY = {"bert", "roberta", "xlm-roberta", "deberta", "deberta-v2", "distilbert", "albert", "electra",
                "modernbert", "camembert", "mpnet", "ernie", "esm", "nomic_bert"}
STATE_SPACE = {"mamba", "mamba2", "falcon_mamba", "jamba", "zamba", "zamba2", "bamba", "falcon_h1", "rwkv",
               "recurrent_gemma", "lfm2", "granitemoehybrid", "nemotron_h", "qwen3_next", "xlstm", "plamo2"}
STATE_SPACE_KEYS = ("ssm_cfg", "state_size", "ssm_state_size", "mamba_d_state", "mamba_expand", "attn_layer_period",
                    "layers_block_type", "hybrid_override_pattern", "block_types", "linear_attn_config")
ATTENTION_LAYERS = {"full_attention", "sliding_attention", "chunked_attention", "attention"}


def _refuse_towers(config: dict, mt: str, origin: str) -> None:
    vision = [k for k in VISION_KEYS if config.get(k)]
    if vision or mt in VISION_FAMILIES:
        raise UnmodelledError(
            "vision tower",
            f"{origin}: {mt} has a vision tower ({', '.join(vision) or 'its model_type'}): the image encoder and "
            "its projector load next to the text decoder, and vramplan models text decoders only",
            hint="for a text-only load give the text decoder's own config.json (the text_config block as a file); "
                 "the catalog's gemma-3 4b/12b/27b are answered that way")
    audio = [k for k in AUDIO_KEYS if config.get(k)]
    if audio or mt in AUDIO_FAMILIES:
        raise UnmodelledError(
            "audio tower",
            f"{origin}: {mt} has an audio tower ({', '.join(audio) or 'its model_type'}): the audio encoder "
            "loads next to the text decoder, and vramplan models text decoders only", hint=_DENSE_HINT)


def _refuse_layouts(config: dict, mt: str, origin: str) -> None:
    enc_dec = config.get("is_encoder_decoder")
    if enc_dec is not None and not isinstance(enc_dec, bool):
        raise VramplanError(f"{origin}: is_encoder_decoder must be true or false, got {enc_dec!r}",
                            hint="fix that field of the config.json (a JSON boolean)")
    if enc_dec or mt in ENCODER_DECODER or "encoder_layers" in config or config.get("add_cross_attention") is True:
        raise UnmodelledError(
            "encoder-decoder",
            f"{origin}: {mt} is an encoder-decoder model: the encoder, the decoder's cross-attention and their "
            "activations are not modelled (vramplan models causal decoders)", hint=_DENSE_HINT)
    if mt in ENCODER_ONLY:
        raise UnmodelledError("encoder-only", f"{origin}: {mt} is an encoder-only model, not a causal decoder: "
                              "vramplan plans causal-LM fine-tunes only", hint=_DENSE_HINT)
    layer_types = config.get("layer_types")
    if layer_types is not None and (not isinstance(layer_types, list) or
                                    not all(isinstance(t, str) for t in layer_types)):
        raise VramplanError(f"{origin}: layer_types must be a list of strings",
                            hint="fix that field of the config.json")
    other = sorted({t for t in layer_types or () if t not in ATTENTION_LAYERS})
    ssm = [k for k in STATE_SPACE_KEYS if config.get(k) is not None]
    if mt in STATE_SPACE or ssm or other:
        why = (f"layer_types {', '.join(other)}" if other else ", ".join(ssm) or "its model_type")
        raise UnmodelledError(
            "state-space layers",
            f"{origin}: {mt} has state-space or other non-attention layers ({why}): their weights, states and "
            "activations are not modelled (vramplan models attention decoders)", hint=_DENSE_HINT)


def refuse_unmodelled(config: dict, mt: str, origin: str, *, checkpoint: bool) -> None:
    """Raise UnmodelledError for the first part of `config` vramplan does not model.

    checkpoint: the config comes from a checkpoint's config.json (a bitsandbytes quantization_config there means
    pre-quantized weights), not from a model already loaded with the user's BitsAndBytesConfig."""
    # structure first: the pre-quantized hint sends the user to the 16-bit base, which must then be modelled
    _refuse_gpt_oss(config, mt, origin)
    _refuse_towers(config, mt, origin)
    _refuse_layouts(config, mt, origin)
    _refuse_moe(config, mt, origin)
    _refuse_prequantized(config, mt, origin, checkpoint)


# -- decoders that are not Llama-like ---------------------------------------------------------------------------
_TWO_MATRIX = "a two-matrix MLP (no gate projection)"
NOT_LLAMA_LIKE = {
    "phi": f"Phi-1/Phi-2 blocks: {_TWO_MATRIX} fc1/fc2, biases on every projection, LayerNorm with bias "
           "(vramplan models Phi-3 and Phi-4, model_type phi3)",
    "falcon": f"a fused query_key_value projection and {_TWO_MATRIX} dense_h_to_4h/dense_4h_to_h",
    "gpt2": f"GPT-2 blocks: a fused c_attn, {_TWO_MATRIX} c_fc/c_proj, learned position embeddings",
    "gpt_bigcode": f"GPT-2 blocks with multi-query attention: a fused c_attn, {_TWO_MATRIX} c_fc/c_proj",
    "gptj": f"GPT-J blocks: {_TWO_MATRIX} fc_in/fc_out, a parallel attention/MLP residual",
    "gpt_neo": f"GPT-Neo blocks: {_TWO_MATRIX} c_fc/c_proj, learned position embeddings",
    "gpt_neox": f"a fused query_key_value projection and {_TWO_MATRIX} dense_h_to_4h/dense_4h_to_h",
    "codegen": f"a fused qkv_proj and {_TWO_MATRIX} fc_in/fc_out",
    "bloom": f"a fused query_key_value projection, ALiBi and {_TWO_MATRIX}",
    "opt": f"{_TWO_MATRIX} fc1/fc2, learned position embeddings, LayerNorm with bias",
    "mpt": f"a fused Wqkv projection, ALiBi and {_TWO_MATRIX}",
    "starcoder2": f"{_TWO_MATRIX} c_fc/c_proj with biases, LayerNorm with bias",
    "nemotron": f"{_TWO_MATRIX} up_proj/down_proj (squared ReLU), LayerNorm1P with bias",
    "arcee": f"{_TWO_MATRIX} up_proj/down_proj (squared ReLU)",
    "apertus": f"{_TWO_MATRIX} up_proj/down_proj (xIELU)",
    "glm": "a fused gate_up_proj MLP and biased q/k/v (GLM-4)",
    "glm4": "a fused gate_up_proj MLP and four norms per layer",
    "chatglm": "a fused query_key_value projection and a fused dense_h_to_4h MLP",
    "internlm2": "a fused wqkv projection and w1/w2/w3 MLP names",
    "baichuan": "a fused W_pack q/k/v projection",
    "qwen": "Qwen-1 blocks: a fused c_attn and w1/w2/c_proj MLP",
}
LLAMA_SHAPE_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
FOREIGN_SHAPE_KEYS = ("n_embd", "n_layer", "n_head", "n_inner", "n_positions", "d_model", "n_layers", "n_heads",
                      "ffn_dim", "ffn_hidden_size", "num_layers", "dim", "hidden_dim", "n_kv_heads", "multi_query",
                      "new_decoder_architecture", "parallel_attn", "kv_channels", "padded_vocab_size", "d_ff", "d_kv",
                      "num_heads", "use_parallel_residual", "rotary_dim",
                      # per-layer shapes (Nemotron-NAS/DeciLM block_configs, OpenELM): no one layer to multiply
                      "block_configs", "num_query_heads", "ffn_multipliers")


def refuse_foreign_layout(config: dict, mt: str, origin: str, known: set[str]) -> None:
    """A family vramplan knows is not Llama-like, or an unknown family whose shape fields are not Llama's."""
    if mt in NOT_LLAMA_LIKE:
        raise UnmodelledError(
            "layout", f"{origin}: {mt} is not a Llama-like decoder ({NOT_LLAMA_LIKE[mt]}): vramplan's layer model "
                      "would count the wrong modules", hint=_DENSE_HINT)
    if mt in known:
        return
    foreign = [k for k in FOREIGN_SHAPE_KEYS if k in config]
    missing = [k for k in LLAMA_SHAPE_KEYS if k not in config]
    if mt == "unknown" and not foreign:
        return  # no model_type and Llama's field names: read as Llama-like, or "missing" names the gap
    if foreign or missing:
        fields = ", ".join(foreign) if foreign else "no " + ", ".join(missing)
        mistral_native = "dim" in config and "n_layers" in config
        raise UnmodelledError(
            "layout",
            f"{origin}: " + (f"model_type {mt!r} is not a family vramplan knows" if mt != "unknown" else
                             "the config has no model_type") + f", and its shape fields ({fields}) are not "
            f"the Llama-like ones ({', '.join(LLAMA_SHAPE_KEYS)}): vramplan cannot tell its layers",
            hint=("this looks like Mistral's native params.json: give the transformers config.json of the same "
                  "model" if mistral_native else _DENSE_HINT))
