"""Parameters of the run-time that no source code states: calibration measures and sets them."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from ..units import MiB


@dataclass(frozen=True)
class RuntimeParams:
    """What the CUDA run-time and PyTorch's allocator add on top of the tensors a QLoRA step holds."""

    context_bytes: int = 520 * MiB
    """Device memory outside torch's allocator: CUDA context, loaded kernels (torch, cuBLAS, bitsandbytes)."""
    slack_fraction: float = 0.05
    """Allocator slack (reserved minus allocated at the peak), as a share of the allocated peak."""
    slack_bytes: int = 64 * MiB
    """Constant part of the allocator slack (cuBLAS workspaces, small-block pools)."""
    managed_granularity: int = 2 * MiB
    """Device footprint unit of one CUDA managed (paged optimizer) allocation."""
    activation_scale: float = 1.0
    """Measured over analytic saved activations of the decoder layers."""
    logits_scale: float = 1.0
    """Measured over analytic logits/loss buffers."""
    driver_reserved_fraction: float = 0.0
    """Share of the nvidia-smi total that the driver keeps and no process can allocate."""
    source: str = "built-in defaults (no calibration)"
    runs: int = 0
    error: dict = field(default_factory=dict)
    """Accuracy of the calibration these came from: mae_pct, worst_under_pct, loao_mae_pct."""

    def with_(self, **changes) -> "RuntimeParams":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_RUNTIME = RuntimeParams()
