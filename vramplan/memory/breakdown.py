"""Breakdown: the one object the CLI tables, --json, the TUI and pre-flight all display."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..margin import FITS, standing_of
from ..units import GiB

PHASES = ("load", "forward", "loss", "backward", "optimizer")

LABELS = {
    "cuda_context": "CUDA context + kernels",
    "weights_4bit": "4-bit base weights",
    "weights_int8": "8-bit base weights",
    "weights_16bit": "16-bit base weights",
    "quant_constants": "quantization constants",
    "embeddings_lm_head": "embeddings + lm_head",
    "norms_biases": "norms + biases",
    "moe_experts": "MoE experts (not quantized)",
    "moe_router": "MoE routers",
    "moe_lora_merged_weights": "experts' W + BA (LoRA forward)",
    "moe_router_logits": "router logits (aux loss)",
    "lora_adapter": "LoRA adapter",
    "lora_gradients": "LoRA gradients",
    "optimizer_states": "optimizer states",
    "optimizer_states_paged": "optimizer states (paged)",
    "optimizer_step_temp": "optimizer step temporaries",
    "checkpointed_inputs": "checkpointed layer inputs",
    "activations": "saved activations",
    "int8_kept_inputs": "int8 matmul inputs (kept by bnb)",
    "layer_recompute": "recomputed layer (backward)",
    "offloaded_input_copy": "offloaded checkpoint copied back",
    "layer_workspace": "layer working set",
    "dequant_buffer": "dequantized weight (transient)",
    "lm_head_cast": "lm_head 16-bit copy",
    "logits_loss": "logits + loss buffers",
    "load_transient": "load-time cast copy",
    "cuda_workspaces": "cuBLAS workspaces, small buffers",
    "allocator_slack": "allocator slack",
    "moe_allocator_cache": "allocator cache (experts)",
    "fsdp_root_shard": "FSDP root shard (beside gathered copy)",
    "fsdp_gathered_units": "FSDP gathered layer units",
    "nccl_communication": "NCCL communicators + buffers",
    "ddp_gradient_buckets": "DDP gradient buckets (fp32)",
    "logits_resplit": "allocator: re-split logits segment",
    "eval_layer_workspace": "evaluation: layer working set",
    "eval_logits_loss": "evaluation: logits + loss buffers",
}


@dataclass(frozen=True)
class Breakdown:
    model: str
    gpu: str
    plan: dict
    peak_phase: str
    components: dict[str, int]
    """Bytes of each component alive at the peak; they sum to peak_bytes."""
    phases: dict[str, dict[str, int]]
    """Allocator-level components of every phase."""
    peak_allocated_bytes: int
    peak_reserved_bytes: int
    managed_bytes: int
    capacity_bytes: int
    """What one process can allocate on the card (or --vram)."""
    required_bytes: int
    """What the run needs to not OOM: the peak minus the cache the allocator frees before it gives up."""
    trainable_params: int
    assumptions: list[str] = field(default_factory=list)
    calibration: dict = field(default_factory=dict)
    layer_saved_bytes: int = 0
    """One decoder layer's saved activations for a micro-batch as modelled (linear in tokens; what the speed
    model streams)."""
    layout: dict = field(default_factory=dict)
    """The resolved layout (vramplan.layout) the estimate read; plan is what was asked for."""
    train_peak_bytes: int = 0
    """The peak over the training steps alone (peak_bytes is over training and evaluation)."""
    fragmentation_event_bytes: int = 0
    """One more fp32 logits block where the default allocator was not seen to re-split one but could (see
    estimate.logits_resplit_bytes; with FSDP always, see the comment in estimate); peak_bytes + this is the upper
    bound."""

    @property
    def peak_bytes(self) -> int:
        return sum(self.components.values())

    @property
    def standing(self) -> str:
        return standing_of(self.required_bytes, self.capacity_bytes)

    @property
    def fits(self) -> bool:
        """Fits with the safety margin, as every output says "fits" (vramplan.margin)."""
        return self.standing == FITS

    @property
    def within_capacity(self) -> bool:
        """Needs no more than the capacity, margin or not: predicted not to run out of memory (what the boundary
        runs under allocator caps check)."""
        return self.required_bytes <= self.capacity_bytes

    @property
    def headroom_bytes(self) -> int:
        return self.capacity_bytes - self.required_bytes

    def phase_peaks(self) -> dict[str, int]:
        return {p: sum(c.values()) for p, c in self.phases.items()}

    def dominant(self) -> tuple[str, int]:
        return max(self.components.items(), key=lambda kv: kv[1])

    def to_dict(self) -> dict:
        return {
            "model": self.model, "gpu": self.gpu, "plan": self.plan, "layout": self.layout,
            "peak_bytes": self.peak_bytes, "peak_gib": round(self.peak_bytes / GiB, 3),
            "peak_allocated_bytes": self.peak_allocated_bytes, "peak_reserved_bytes": self.peak_reserved_bytes,
            "managed_bytes": self.managed_bytes, "peak_phase": self.peak_phase,
            "train_peak_bytes": self.train_peak_bytes or self.peak_bytes,
            "peak_upper_bytes": self.peak_bytes + self.fragmentation_event_bytes,
            "required_bytes": self.required_bytes, "capacity_bytes": self.capacity_bytes,
            "fits": self.fits, "standing": self.standing, "within_capacity": self.within_capacity,
            "headroom_bytes": self.headroom_bytes,
            "components": dict(self.components), "phase_allocated_bytes": self.phase_peaks(),
            "trainable_params": self.trainable_params, "assumptions": list(self.assumptions),
            "calibration": self.calibration,
        }
