"""Parameters of the run-time that no source code states: calibration measures and sets them.

The defaults are the H100 fit of calibration/fits (rounded; the multi-GPU ones the 2 x H200 fit), so an
uncalibrated install still starts from measurements; `vramplan calibrate` refits them per GPU.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from functools import cached_property

from ..units import MiB
from .logits import fp32_block


@dataclass(frozen=True)
class Calibration:
    """What the CUDA run-time and PyTorch's allocator add on top of the tensors a QLoRA step holds."""

    context_bytes: int = 767 * MiB
    """Device memory outside torch's allocator: CUDA context, loaded kernels (torch, cuBLAS, bitsandbytes)."""
    workspace_bytes: int = 81 * MiB
    """Allocated but not modelled tensor by tensor: cuBLAS/cuBLASLt workspaces, small buffers."""
    slack_bytes: int = 110 * MiB
    """Allocator slack (reserved minus allocated at the peak): constant part."""
    slack_per_logit_byte: float = 0.49
    """Slack per byte of one fp32 tokens x vocab buffer (freed and re-requested blocks fragment the cache)."""
    slack_per_mlp_byte: float = 6.0
    """Slack per byte of one fp32 tokens x intermediate buffer."""
    pressure_fragmentation: float = 0.064
    """Share of the allocated peak still lost to fragmentation when the card is full (the allocator frees its
    cache and retries before it raises OOM): what the fits verdict adds instead of the full slack."""
    managed_min_bytes: int = 128 * MiB
    """Device footprint of managed (paged optimizer) memory is never below this once any state is paged."""
    activation_scale: float = 1.0
    """Measured over analytic saved activations of the decoder layers."""
    logits_scale: float = 1.0
    """Measured over analytic logits/loss buffers."""
    expandable_slack_bytes: int = 110 * MiB
    """Allocator slack with expandable_segments:True: constant part (until measured, the default allocator's)."""
    expandable_slack_per_logit_byte: float = 0.49
    expandable_slack_per_mlp_byte: float = 6.0
    nccl_bytes: int = 907 * MiB
    """Per rank on several GPUs: device memory outside torch's allocator beyond the CUDA context (NCCL
    communicators and buffers), measured on 2 x H200."""
    fsdp_wrap_extra_bytes: int = 390 * MiB
    """Per rank with FSDP, when the wrap and the loss blocks set the compute stream's reserve: what adds to the
    modelled tensors (the load phase's own slack, the reduce-scatter stream)."""
    fsdp_slack_bytes: int = 1243 * MiB
    """Per rank with FSDP, when training outgrows the holes the wrap left: compute-stream reserve minus its
    allocated peak, constant part ..."""
    fsdp_slack_per_mlp_byte: float = 0.0
    """... and per byte of one fp32 tokens x intermediate block (the MLP blocks fragment the stream)."""
    fsdp_expandable_slack_bytes: int = 560 * MiB
    fsdp_expandable_slack_per_mlp_byte: float = 2.72
    stack_slack_bytes: dict = field(default_factory=lambda: {
        "trl_fused": 226 * MiB, "trl_chunked": 606 * MiB, "trl_chunked_lowp": 1056 * MiB})
    """Allocator slack of the TRL loss paths that never hold full logits, by path: the median of reserved minus
    allocated over their H200 runs (calibration/stacks; python bench/stack_accuracy.py prints them)."""
    stack_expandable_slack_bytes: int = 1162 * MiB
    """The same under expandable segments (what `vramplan train` runs): the median over the uncapped TRL 1.16 runs
    of calibration/train (llama-3.1-8b on an H200); the paths without full logits take at least this."""
    eval_logits_bytes_per_element: float = 9.35
    """Evaluation without gradients on a full-logits path: allocated bytes per eval tokens x vocab element (16-bit
    logits, the loss's fp32 copies; H200, calibration/stacks: llama-3.2-1b, gemma-3-1b, qwen2.5-0.5b)."""
    eval_reserve_growth: float = 0.8
    """Share of what evaluation allocates beyond the resident model that the reserve grows by: the blocks
    training cached rarely fit the evaluation's (same runs: 0.79-0.80 on full logits, 0.44-0.79 fused)."""
    driver_reserved_fraction: float = 0.0059
    """Share of the nvidia-smi total that the driver keeps and no process can allocate."""
    source: str = "built-in defaults (rounded H100 fit)"
    runs: int = 0
    error: dict = field(default_factory=dict)
    """Accuracy of the calibration these came from: mae_pct, worst_under_pct, loao_mae_pct."""

    def with_(self, **changes) -> "Calibration":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """The constants as JSON values; made once per Calibration (every estimate's Breakdown carries them)."""
        return self._as_dict

    @cached_property
    def _as_dict(self) -> dict:
        return asdict(self)

    def usable_bytes(self, gpu) -> int:
        """What one process can allocate of a card (a GpuSpec): its nvidia-smi total less the driver's share (a
        card's own calibration measures it; vramplan.store.calibrations.card_driver_share sets it for the others)."""
        return int(gpu.memory_bytes * (1 - self.driver_reserved_fraction))

    def slack(self, tokens: int, intermediate: int, allocator: str, logits_block: int) -> int:
        """Reserved minus allocated at the peak; logits_block: the loss path's largest buffer (one fp32 tokens x
        vocab block on the full-logits paths)."""
        if allocator == "expandable":
            const, per_logit, per_mlp = (self.expandable_slack_bytes, self.expandable_slack_per_logit_byte,
                                         self.expandable_slack_per_mlp_byte)
        else:
            const, per_logit, per_mlp = self.slack_bytes, self.slack_per_logit_byte, self.slack_per_mlp_byte
        return int(const + per_logit * logits_block + per_mlp * fp32_block(tokens, intermediate))

    def fsdp_train_slack(self, tokens: int, intermediate: int, allocator: str = "default") -> int:
        if allocator == "expandable":
            const, per_mlp = self.fsdp_expandable_slack_bytes, self.fsdp_expandable_slack_per_mlp_byte
        else:
            const, per_mlp = self.fsdp_slack_bytes, self.fsdp_slack_per_mlp_byte
        return int(const + per_mlp * fp32_block(tokens, intermediate))


DEFAULT_CALIBRATION = Calibration()
CALIBRATED_FIELDS = ("context_bytes", "workspace_bytes", "slack_bytes", "slack_per_logit_byte", "slack_per_mlp_byte",
                 "expandable_slack_bytes", "expandable_slack_per_logit_byte", "expandable_slack_per_mlp_byte",
                 "pressure_fragmentation", "managed_min_bytes", "driver_reserved_fraction", "nccl_bytes",
                 "fsdp_wrap_extra_bytes", "fsdp_slack_bytes", "fsdp_slack_per_mlp_byte", "fsdp_expandable_slack_bytes",
                 "fsdp_expandable_slack_per_mlp_byte")
