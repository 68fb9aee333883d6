"""Model architectures: the facts of a config.json that decide memory, and the parameter counts derived from them."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import VramplanError

# Decoder families and how their layers are built. Families not listed here are read as Llama-like
# (separate q/k/v/o and gate/up/down projections), which is what most decoders on the hub are; the
# estimate then says so in its assumptions.
FUSED_PROJECTIONS = {"phi3"}  # qkv_proj and gate_up_proj
QKV_BIAS_ALWAYS = {"qwen2"}  # Qwen2Attention hard-codes bias=True on q/k/v
PER_HEAD_QK_NORM = {"qwen3", "gemma3_text", "gemma3"}
SANDWICH_NORMS = {"gemma2", "gemma3_text", "gemma3"}  # four norms per layer
SCALED_EMBEDDINGS = {"gemma", "gemma2", "gemma3_text", "gemma3"}
KNOWN_FAMILIES = {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3", "olmo2", "granite"}

_REQUIRED = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")


@dataclass(frozen=True)
class Linear:
    """One nn.Linear in a decoder layer."""

    name: str
    in_features: int
    out_features: int
    bias: bool = False

    @property
    def numel(self) -> int:
        return self.in_features * self.out_features


@dataclass(frozen=True)
class ModelArch:
    """A causal decoder, as its config.json describes it."""

    name: str
    model_type: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied_embeddings: bool
    dtype: str = "bfloat16"
    """Checkpoint dtype (`torch_dtype`/`dtype` of config.json): what unquantized parts load in under transformers 5."""
    attention_bias: bool = False
    mlp_bias: bool = False
    final_logit_softcapping: float | None = None
    attn_logit_softcapping: float | None = None
    max_position_embeddings: int | None = None
    hub_id: str | None = None
    aliases: tuple[str, ...] = ()
    source: str = ""
    note: str | None = None
    published_params: int | None = None
    published_params_counts_tied_head: bool = False
    reference_params: int | None = None
    linears: tuple[Linear, ...] = field(default=(), compare=False)

    # -- derived counts --------------------------------------------------------------------------
    @property
    def known_family(self) -> bool:
        return self.model_type in KNOWN_FAMILIES

    @property
    def linear_names(self) -> tuple[str, ...]:
        return tuple(lin.name for lin in self.linears)

    @property
    def quantizable_params_per_layer(self) -> int:
        return sum(lin.numel for lin in self.linears)

    @property
    def bias_params_per_layer(self) -> int:
        return sum(lin.out_features for lin in self.linears if lin.bias)

    @property
    def norm_params_per_layer(self) -> int:
        n = (4 if self.model_type in SANDWICH_NORMS else 2) * self.hidden
        if self.model_type in PER_HEAD_QK_NORM:
            n += 2 * self.head_dim
        return n

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def lm_head_params(self) -> int:
        """Separate lm_head weight; 0 when tied to the embeddings (counted once)."""
        return 0 if self.tied_embeddings else self.vocab * self.hidden

    @property
    def total_params(self) -> int:
        per_layer = self.quantizable_params_per_layer + self.bias_params_per_layer + self.norm_params_per_layer
        return self.layers * per_layer + self.embedding_params + self.lm_head_params + self.hidden

    @property
    def largest_linear(self) -> Linear:
        return max(self.linears, key=lambda lin: lin.numel)

    def summary(self) -> dict:
        return {
            "name": self.name, "hub_id": self.hub_id, "model_type": self.model_type, "params": self.total_params,
            "hidden": self.hidden, "intermediate": self.intermediate, "layers": self.layers, "heads": self.heads,
            "kv_heads": self.kv_heads, "head_dim": self.head_dim, "vocab": self.vocab,
            "tied_embeddings": self.tied_embeddings, "dtype": self.dtype, "linear_modules": list(self.linear_names),
        }


def _layer_linears(model_type: str, h: int, inter: int, heads: int, kv: int, d: int,
                   attn_bias: bool, mlp_bias: bool) -> tuple[Linear, ...]:
    q_out, kv_out = heads * d, kv * d
    qkv_bias = attn_bias or model_type in QKV_BIAS_ALWAYS
    if model_type in FUSED_PROJECTIONS:
        return (Linear("qkv_proj", h, q_out + 2 * kv_out, attn_bias), Linear("o_proj", q_out, h, attn_bias),
                Linear("gate_up_proj", h, 2 * inter, mlp_bias), Linear("down_proj", inter, h, mlp_bias))
    return (Linear("q_proj", h, q_out, qkv_bias), Linear("k_proj", h, kv_out, qkv_bias),
            Linear("v_proj", h, kv_out, qkv_bias), Linear("o_proj", q_out, h, attn_bias),
            Linear("gate_proj", h, inter, mlp_bias), Linear("up_proj", h, inter, mlp_bias),
            Linear("down_proj", inter, h, mlp_bias))


def arch_from_config(config: dict, *, name: str, origin: str, **meta) -> ModelArch:
    """Build a ModelArch from config.json content (multimodal configs: their text_config)."""
    if not isinstance(config, dict):
        raise VramplanError(f"{origin}: config must be a JSON object")
    if "text_config" in config and "hidden_size" not in config:
        inner = dict(config["text_config"])
        inner.setdefault("model_type", config.get("model_type", ""))
        config = inner
    missing = [k for k in _REQUIRED if k not in config]
    if missing:
        raise VramplanError(f"{origin}: not a causal LM config.json, missing {', '.join(missing)}",
                            hint="point MODEL at a transformers config.json or the folder that holds it")
    try:
        h = int(config["hidden_size"])
        inter = int(config["intermediate_size"])
        layers = int(config["num_hidden_layers"])
        heads = int(config["num_attention_heads"])
        kv = int(config.get("num_key_value_heads") or heads)
        vocab = int(config["vocab_size"])
        d = int(config.get("head_dim") or h // heads)
    except (TypeError, ValueError) as exc:
        raise VramplanError(f"{origin}: malformed config value ({exc})") from None
    if min(h, inter, layers, heads, kv, vocab, d) <= 0:
        raise VramplanError(f"{origin}: sizes in the config must be positive")
    model_type = str(config.get("model_type", "")).lower() or "unknown"
    attn_bias = bool(config.get("attention_bias", False))
    mlp_bias = bool(config.get("mlp_bias", False))
    dtype = str(config.get("torch_dtype") or config.get("dtype") or "bfloat16").replace("torch.", "")
    return ModelArch(
        name=name, model_type=model_type, hidden=h, intermediate=inter, layers=layers, heads=heads, kv_heads=kv,
        head_dim=d, vocab=vocab, tied_embeddings=bool(config.get("tie_word_embeddings", False)), dtype=dtype,
        attention_bias=attn_bias, mlp_bias=mlp_bias,
        final_logit_softcapping=config.get("final_logit_softcapping"),
        attn_logit_softcapping=config.get("attn_logit_softcapping"),
        max_position_embeddings=config.get("max_position_embeddings"),
        linears=_layer_linears(model_type, h, inter, heads, kv, d, attn_bias, mlp_bias), **meta)


def load_model_file(path: Path) -> ModelArch:
    """A catalog profile (profiles/models/*.json). Its `modules` block must agree with the family's layout."""
    d = json.loads(path.read_text())
    arch = _arch_from_profile(d, path)
    modules = d.get("modules")
    if modules and (tuple(modules.get("decoder_linears", ())) != arch.linear_names or
                    modules.get("linears_with_bias", []) != [lin.name for lin in arch.linears if lin.bias]):
        raise VramplanError(f"{path}: its modules block disagrees with the {arch.model_type} layout vramplan uses",
                            hint="fix the profile or the family table in vramplan/profiles/models.py")
    return arch


def _arch_from_profile(d: dict, path: Path) -> ModelArch:
    return arch_from_config(
        d["config"], name=d["name"], origin=str(path), hub_id=d.get("hub_id"), aliases=tuple(d.get("aliases", ())),
        source=d.get("source", ""), note=d.get("note"), published_params=d.get("published_params"),
        published_params_counts_tied_head=bool(d.get("published_params_counts_tied_head", False)),
        reference_params=d.get("reference_params"))


def load_local_config(path: Path) -> ModelArch:
    """A user's config.json, or a model folder holding one."""
    cfg_path = path / "config.json" if path.is_dir() else path
    if not cfg_path.is_file():
        raise VramplanError(f"{path}: no config.json there", hint="give a catalog name, a config.json, or a model folder")
    try:
        config = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise VramplanError(f"{cfg_path}: malformed JSON ({exc})") from None
    name = path.name if path.is_dir() else (path.parent.name or path.stem)
    return arch_from_config(config, name=name, origin=str(cfg_path), source=str(cfg_path.resolve()),
                            hub_id=config.get("_name_or_path") or None)
