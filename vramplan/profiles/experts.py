"""Mixture-of-Experts layers as transformers 5 builds them, read strictly from config.json.

Every family here (modeling_<family>.py of transformers 5.17) keeps its routed experts as two fused 3-D
parameters, `mlp.experts.gate_up_proj [E, 2I, h]` and `mlp.experts.down_proj [E, h, I]`, and its router as a
`*TopKRouter` module holding `weight [E, h]` (applied with F.linear, no nn.Linear). Qwen2-MoE adds a shared
expert (three nn.Linear at shared_expert_intermediate_size) and `shared_expert_gate = nn.Linear(h, 1)` on every
token. The model is usable only for the families in profiles/moe_families.json, the ones measured on a GPU.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

from ..errors import VramplanError
from ..resources import data_dir
from . import config_fields as cf

# family -> (config key of the expert count, of the expert width, peft's v4 leaf names of gate / up / down)
# The names are what peft 0.21's _convert_peft_config_moe turns into target_parameters on transformers 5
# (utils/transformers_weight_conversion.py); None: peft has no conversion for the family (qwen2_moe), so
# target_modules reach only its nn.Linear layers and never the routed experts.
FAMILIES = {
    "qwen3_moe": ("num_experts", "moe_intermediate_size", ("gate_proj", "up_proj", "down_proj")),
    "olmoe": ("num_experts", "intermediate_size", ("gate_proj", "up_proj", "down_proj")),
    "mixtral": ("num_local_experts", "intermediate_size", ("w1", "w3", "w2")),
    "qwen2_moe": ("num_experts", "moe_intermediate_size", None),
}
ROUTER_NAME = "gate"  # the router module's leaf name; peft's conversion adds it to all-linear
_LIMIT = 1 << 14  # experts, far above any released model


@dataclass(frozen=True)
class Experts:
    """The routed experts of every decoder layer (all layers of the modelled families are MoE layers)."""

    count: int
    top_k: int
    width: int
    """One expert's intermediate size I: gate_up_proj is [count, 2I, hidden], down_proj [count, hidden, I]."""
    shared_width: int = 0
    """Qwen2-MoE's shared expert (a gated MLP on every token); 0 when the family has none."""
    peft_names: tuple[str, str, str] | None = None
    """peft's leaf names of gate, up and down that become target_parameters; None: not converted."""
    router_logits: bool = False
    """output_router_logits: each layer's router logits are kept for the auxiliary load-balancing loss."""
    aux_loss_coef: float = 0.001
    """router_aux_loss_coef (the config classes default it to 0.001, OLMoE to 0.01): TRL >= 1.14 turns the
    auxiliary loss on unless it is 0."""

    def expert_params(self, hidden: int) -> int:
        return 3 * self.count * self.width * hidden

    def router_params(self, hidden: int) -> int:
        return self.count * hidden

    @property
    def target_names(self) -> tuple[str, ...]:
        """The extra target_modules names peft accepts for the experts (and the router) of this family."""
        return (ROUTER_NAME, *self.peft_names) if self.peft_names else ()


@dataclass(frozen=True)
class AllocatorCache:
    """What PyTorch's caching allocator holds beyond the allocated peak of a family's runs, fitted to its GPU runs
    (bench/moe_cache_fit.py) as multiples of the family's own tensor sizes, so it follows the geometry."""

    gate_up_16bit: float
    """One layer's gate_up_proj stack in 16 bits: the blocks the load's fusion and cast leave cached."""
    down_16bit_per_layer: float
    """Every layer's down_proj stack in 16 bits: the cast's freed blocks that nothing later reuses."""
    lora_gate_up_copy: float
    """One W' of gate_up_proj at the experts' dtype, when the experts carry LoRA: a segment its backward strands."""


@lru_cache(maxsize=None)
def moe_families_file() -> dict:
    """profiles/moe_families.json: the families listed as measured (with their allocator cache) and refused."""
    return json.loads((data_dir("profiles") / "moe_families.json").read_text())


@lru_cache(maxsize=None)
def measured_families() -> frozenset[str]:
    """The MoE families whose model was checked against GPU runs (profiles/moe_families.json)."""
    return frozenset(moe_families_file()["measured"])


def refused_family(family: str) -> tuple[str, tuple[float, ...]] | None:
    """(where its runs are, their errors in %) of a family measured but not within the gate's 5%; None else."""
    entry = moe_families_file().get("refused", {}).get(family)
    return (entry["runs"], tuple(entry["errors_pct"])) if entry else None


@lru_cache(maxsize=None)
def allocator_cache(family: str) -> AllocatorCache | None:
    """A measured family's allocator cache coefficients (profiles/moe_families.json); None when not measured."""
    entry = moe_families_file()["measured"].get(family)
    return AllocatorCache(**entry["allocator_cache"]) if entry else None


def _refuse(origin: str, key: str, value, why: str) -> VramplanError:
    return VramplanError(f"{origin}: {key} {value!r} is not modelled: {why}",
                         hint="vramplan models Mixture-of-Experts decoders whose every layer is an MoE layer, "
                              "as the family's published configs have them")


def read_experts(config: dict, mt: str, origin: str) -> Experts:
    """The Experts of a modelled family's config, each field checked for type and range."""
    count_key, width_key, names = FAMILIES[mt]
    aliases = [k for k in ("num_experts", "num_local_experts") if config.get(k) is not None]
    count = cf.positive_int(config, aliases[0] if aliases else count_key, origin)
    top_k = cf.positive_int(config, "num_experts_per_tok", origin)
    width = cf.positive_int(config, width_key, origin)
    if count > _LIMIT:
        raise VramplanError(f"{origin}: {count} experts is beyond any model vramplan can plan",
                            hint="fix that field of the config.json")
    if top_k > count:
        raise VramplanError(f"{origin}: num_experts_per_tok {top_k} is more than the {count} experts",
                            hint="fix those fields of the config.json (each token is routed to top-k experts)")
    only = config.get("mlp_only_layers")
    if only not in (None, []):
        raise _refuse(origin, "mlp_only_layers", only, "those layers get a dense MLP instead of experts")
    step = config.get("decoder_sparse_step")
    if step not in (None, 1):
        raise _refuse(origin, "decoder_sparse_step", step, "only every step-th layer would be an MoE layer")
    jitter = config.get("router_jitter_noise")
    if jitter not in (None, 0, 0.0):
        raise _refuse(origin, "router_jitter_noise", jitter,
                      "in training the router multiplies the hidden states by a noise tensor of their size")
    shared = cf.positive_int(config, "shared_expert_intermediate_size", origin) if mt == "qwen2_moe" else 0
    coef = config.get("router_aux_loss_coef", 0.001)
    if coef is None or isinstance(coef, bool) or not isinstance(coef, (int, float)) or not coef >= 0:
        raise VramplanError(f"{origin}: router_aux_loss_coef must be a number >= 0, got {coef!r}",
                            hint='fix it in the config.json, e.g. "router_aux_loss_coef": 0.001')
    return Experts(count=count, top_k=top_k, width=width, shared_width=shared, peft_names=names,
                   router_logits=cf.boolean(config, "output_router_logits", origin, False), aux_loss_coef=coef)
