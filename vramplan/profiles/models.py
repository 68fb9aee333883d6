"""Model architectures: the facts of a config.json that decide memory, and the parameter counts derived from them."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import VramplanError
from . import config_fields as cf
from .experts import FAMILIES as MOE_FAMILIES, Experts, read_experts
from .unmodelled import refuse_foreign_layout, refuse_unmodelled

# Decoder families and how their layers are built. A family not listed here, whose config has the Llama-like
# shape fields and nothing unmodelled (unmodelled.py), is read as Llama-like (separate q/k/v/o and
# gate/up/down projections, two norms per layer), which is what most decoders on the hub are; ModelArch.read_as
# says so, for the output to show.
FUSED_PROJECTIONS = {"phi3"}  # qkv_proj and gate_up_proj
QKV_BIAS_ALWAYS = {"qwen2"}  # Qwen2Attention hard-codes bias=True on q/k/v
PER_HEAD_QK_NORM = {"qwen3", "gemma3_text", "gemma3", "qwen3_moe"}
SANDWICH_NORMS = {"gemma2", "gemma3_text", "gemma3"}  # four norms per layer
SCALED_EMBEDDINGS = {"gemma", "gemma2", "gemma3_text", "gemma3"}
FULL_WIDTH_QK_NORM = {"olmo2", "olmoe"}  # q_norm over heads*head_dim, k_norm over kv_heads*head_dim
TIED_BY_DEFAULT = {"gemma", "gemma2", "gemma3_text", "gemma3"}  # their config classes default to tied embeddings
KNOWN_FAMILIES = {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3", "olmo2", "granite",
                  *MOE_FAMILIES}

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
    """Where the config was read: the profile's reference URL, a local path, or the cached config.json."""
    source_kind: str = "config"
    """catalog | file (a local config.json or folder) | hub-cache | hub-download | config (a dict in memory)."""
    read_as: str | None = None
    """The family whose layout this config was read as, when its model_type is not one vramplan knows."""
    text_only: str | None = None
    """Why only the text decoder of a multimodal checkpoint is counted (a text-only load); None otherwise."""
    note: str | None = None
    published_params: int | None = None
    published_params_counts_tied_head: bool = False
    reference_params: int | None = None
    linears: tuple[Linear, ...] = field(default=(), compare=False)
    experts: Experts | None = None
    """The routed experts of a Mixture-of-Experts model (every layer an MoE layer; `intermediate` is then one
    expert's width); None for a dense model."""

    # -- derived counts --------------------------------------------------------------------------
    @property
    def known_family(self) -> bool:
        return self.model_type in KNOWN_FAMILIES

    @property
    def linear_names(self) -> tuple[str, ...]:
        """The names peft's target_modules accepts: the decoder's nn.Linear layers, and for an MoE family that
        peft converts, the router and expert names it turns into target_parameters (profiles/experts.py)."""
        return tuple(lin.name for lin in self.linears) + (self.experts.target_names if self.experts else ())

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
        if self.model_type in FULL_WIDTH_QK_NORM:
            n += (self.heads + self.kv_heads) * self.head_dim
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
        if self.experts:
            per_layer += self.experts.expert_params(self.hidden) + self.experts.router_params(self.hidden)
        return self.layers * per_layer + self.embedding_params + self.lm_head_params + self.hidden

    @property
    def largest_linear(self) -> Linear:
        return max(self.linears, key=lambda lin: lin.numel)

    @property
    def notices(self) -> tuple[str, ...]:
        """What the text output must say next to any number for this model (how it was read)."""
        out = []
        if self.read_as:
            what = (f"model_type {self.model_type!r} is not a family vramplan knows" if self.model_type != "unknown"
                    else "the config has no model_type")
            out.append(f"{what}: read as {self.read_as}-like "
                       "(q/k/v/o and gate/up/down projections, two norms per layer); check that its modeling file "
                       "has that layout")
        if self.text_only:
            out.append(f"text-only load: {self.text_only}")
        return tuple(out)

    @property
    def source_line(self) -> str:
        """Where this architecture came from, for the output."""
        where = {"catalog": f"catalog profile {self.name}", "file": "local config",
                 "hub-cache": f"{self.hub_id}: config.json from the local Hugging Face cache",
                 "hub-download": f"{self.hub_id}: config.json downloaded from the Hugging Face hub"}
        head = where.get(self.source_kind, "config")
        return f"{head} ({self.source})" if self.source else head

    def summary(self) -> dict:
        return {
            "name": self.name, "hub_id": self.hub_id, "model_type": self.model_type, "params": self.total_params,
            "hidden": self.hidden, "intermediate": self.intermediate, "layers": self.layers, "heads": self.heads,
            "kv_heads": self.kv_heads, "head_dim": self.head_dim, "vocab": self.vocab,
            "tied_embeddings": self.tied_embeddings, "dtype": self.dtype, "linear_modules": list(self.linear_names),
            "read_as": self.read_as, "text_only": self.text_only, "source_kind": self.source_kind,
            "source": self.source,
            **({"experts": {"count": self.experts.count, "per_token": self.experts.top_k,
                            "width": self.experts.width, "shared_width": self.experts.shared_width}}
               if self.experts else {}),
        }


def _layer_linears(model_type: str, h: int, inter: int, heads: int, kv: int, d: int,
                   attn_bias: bool, mlp_bias: bool, experts: Experts | None = None,
                   qkv_bias: bool = False) -> tuple[Linear, ...]:
    q_out, kv_out = heads * d, kv * d
    qkv_bias = qkv_bias or attn_bias or model_type in QKV_BIAS_ALWAYS
    if experts:  # the routed experts are no nn.Linear: only attention (and a shared expert) is quantized
        attention = (Linear("q_proj", h, q_out, qkv_bias), Linear("k_proj", h, kv_out, qkv_bias),
                     Linear("v_proj", h, kv_out, qkv_bias), Linear("o_proj", q_out, h, attn_bias))
        if not experts.shared_width:
            return attention
        s = experts.shared_width
        return attention + (Linear("gate_proj", h, s), Linear("up_proj", h, s), Linear("down_proj", s, h),
                            Linear("shared_expert_gate", h, 1))
    if model_type in FUSED_PROJECTIONS:
        return (Linear("qkv_proj", h, q_out + 2 * kv_out, attn_bias), Linear("o_proj", q_out, h, attn_bias),
                Linear("gate_up_proj", h, 2 * inter, mlp_bias), Linear("down_proj", inter, h, mlp_bias))
    return (Linear("q_proj", h, q_out, qkv_bias), Linear("k_proj", h, kv_out, qkv_bias),
            Linear("v_proj", h, kv_out, qkv_bias), Linear("o_proj", q_out, h, attn_bias),
            Linear("gate_proj", h, inter, mlp_bias), Linear("up_proj", h, inter, mlp_bias),
            Linear("down_proj", inter, h, mlp_bias))


def _unwrap_text_config(config: dict, origin: str) -> dict:
    """A wrapper config whose decoder sits in text_config (towers were refused before this)."""
    if "text_config" not in config or "hidden_size" in config:
        return config
    inner = config["text_config"]
    if not isinstance(inner, dict):
        raise VramplanError(f"{origin}: text_config must be a JSON object", hint="fix that field of the config.json")
    inner = dict(inner)
    inner.setdefault("model_type", config.get("model_type"))
    return inner


def _shape(config: dict, origin: str) -> dict:
    """The sizes every component is computed from, each checked for type and range."""
    missing = [k for k in _REQUIRED if k not in config]
    if missing:
        raise VramplanError(f"{origin}: not a causal LM config.json, missing {', '.join(missing)}",
                            hint="point MODEL at a transformers config.json or the folder that holds it")
    s = {key: cf.positive_int(config, key, origin) for key in _REQUIRED}
    heads = s["num_attention_heads"]
    kv = cf.positive_int(config, "num_key_value_heads", origin, default=heads, optional=True)
    if kv > heads or heads % kv:
        raise VramplanError(f"{origin}: num_key_value_heads {kv} must divide num_attention_heads {heads}",
                            hint="fix those fields of the config.json (grouped-query attention shares each k/v "
                                 "head among a whole number of query heads)")
    d = cf.positive_int(config, "head_dim", origin, optional=True)
    if d is None:
        if s["hidden_size"] % heads:
            raise VramplanError(f"{origin}: hidden_size {s['hidden_size']} is not a multiple of num_attention_heads "
                                f"{heads} and there is no head_dim", hint="add head_dim to the config.json")
        d = s["hidden_size"] // heads
    return {**s, "kv": kv, "head_dim": d}


def arch_from_config(config: dict, *, name: str, origin: str, checkpoint: bool = False, **meta) -> ModelArch:
    """Build a ModelArch from config.json content, strictly: a field of the wrong type or range, or a part
    vramplan does not model (experts, towers, encoders, state-space layers, pre-quantized weights, a layout that
    is not Llama-like) raises VramplanError naming it. checkpoint: read from a checkpoint's config.json (so a
    bitsandbytes quantization_config means pre-quantized weights), not from a model already loaded."""
    if not isinstance(config, dict):
        kind = "null" if config is None else "a JSON " + {list: "list", str: "string"}.get(type(config), "value")
        raise VramplanError(f"{origin}: config must be a JSON object, this one is {kind}",
                            hint="point MODEL at a transformers config.json (one JSON object of fields)")
    model_type = cf.string(config, "model_type", origin, default="") or ""
    mt = model_type.lower() or "unknown"
    refuse_unmodelled(config, mt, origin, checkpoint=checkpoint)
    inner = _unwrap_text_config(config, origin)
    if inner is not config:
        config, mt = inner, (cf.string(inner, "model_type", origin, default="") or mt).lower()
        refuse_unmodelled(config, mt, origin, checkpoint=checkpoint)
    refuse_foreign_layout(config, mt, origin, KNOWN_FAMILIES)
    s = _shape(config, origin)
    h, inter, heads, kv, d = (s["hidden_size"], s["intermediate_size"], s["num_attention_heads"], s["kv"],
                              s["head_dim"])
    attn_bias = cf.boolean(config, "attention_bias", origin, False)
    mlp_bias = cf.boolean(config, "mlp_bias", origin, False)
    experts = read_experts(config, mt, origin) if mt in MOE_FAMILIES else None
    inter = experts.width if experts else inter
    # Qwen2MoeAttention: bias=config.qkv_bias on q/k/v (its config class defaults it to true)
    qkv_bias = mt == "qwen2_moe" and cf.boolean(config, "qkv_bias", origin, True)
    return ModelArch(
        name=name, model_type=mt, hidden=h, intermediate=inter, layers=s["num_hidden_layers"], heads=heads,
        kv_heads=kv, head_dim=d, vocab=s["vocab_size"],
        tied_embeddings=cf.boolean(config, "tie_word_embeddings", origin, mt in TIED_BY_DEFAULT),
        dtype=cf.checkpoint_dtype(config, origin), attention_bias=attn_bias, mlp_bias=mlp_bias,
        final_logit_softcapping=cf.positive_number(config, "final_logit_softcapping", origin),
        attn_logit_softcapping=cf.positive_number(config, "attn_logit_softcapping", origin),
        max_position_embeddings=cf.positive_int(config, "max_position_embeddings", origin, optional=True),
        read_as=None if mt in KNOWN_FAMILIES else "llama",
        linears=_layer_linears(mt, h, inter, heads, kv, d, attn_bias, mlp_bias, experts, qkv_bias),
        experts=experts, **meta)


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
        source=d.get("source", ""), source_kind="catalog", text_only=d.get("text_only"), note=d.get("note"),
        published_params=d.get("published_params"),
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
    hub_id = config.get("_name_or_path") if isinstance(config, dict) else None
    return arch_from_config(config, name=name, origin=str(cfg_path), checkpoint=True, source=str(cfg_path.resolve()),
                            source_kind="file", hub_id=hub_id if isinstance(hub_id, str) and hub_id else None)
