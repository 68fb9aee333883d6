"""`vramplan.preflight()`: will this job fit this card? No torch."""
from __future__ import annotations

from dataclasses import dataclass, field

from . import decisions as D
from . import flags
from .decisions import Reason, reason
from .memory import Breakdown, estimate
from .plan import TrainPlan
from .profiles import GpuSpec, ModelArch, find_gpu, find_model
from .margin import FITS, SAFETY_MARGIN, margin_limit
from .search import fit
from .store.calibrations import Calibrations


def standing(b: Breakdown) -> str:
    """The one judgement of a breakdown against its card (vramplan.margin). Every output shows this and only this."""
    return b.standing


@dataclass
class Verdict:
    fits: bool
    """Fits with the safety margin."""
    peak_bytes: int
    required_bytes: int
    capacity_bytes: int
    headroom_bytes: int
    """Capacity minus required bytes (negative: short by that much)."""
    breakdown: Breakdown
    advice: list[Reason] = field(default_factory=list)
    """What the plan needs (NEEDS first), then the plan that fits instead or why nothing does."""
    nearest_fit: dict | None = None
    """The fastest plan that does fit (same sequence and effective batch), when this one does not."""

    @property
    def standing(self) -> str:
        return standing(self.breakdown)

    @property
    def within_capacity(self) -> bool:
        return self.breakdown.within_capacity

    def to_dict(self) -> dict:
        return {"fits": self.fits, "standing": self.standing, "within_capacity": self.within_capacity,
                "peak_bytes": self.peak_bytes, "required_bytes": self.required_bytes,
                "capacity_bytes": self.capacity_bytes, "headroom_bytes": self.headroom_bytes,
                "safety_margin": SAFETY_MARGIN, "advice": [r.to_dict() for r in self.advice], "nearest_fit": self.nearest_fit,
                "breakdown": self.breakdown.to_dict()}

    def __bool__(self) -> bool:
        return self.fits


def detect_free_memory(count: int = 1) -> tuple[str, int] | None:
    """(GPU name, free bytes) through NVML: of GPU 0, or the least free of GPUs 0..count-1; None without pynvml,
    a GPU, or that many GPUs."""
    from .gpu_info import detect_gpu, nvml_memory  # NVML only; no torch
    try:
        found = detect_gpu()
        if found["count"] < count:
            return None
        return found["name"], min(nvml_memory(i)["free"] for i in range(count))
    except Exception:
        return None


def resolve_gpu(gpu: str | GpuSpec, vram_bytes: int | None = None, count: int = 1) -> tuple[GpuSpec, int | None]:
    """'auto' -> the detected GPU and its free memory (the least free of `count` GPUs) as the capacity."""
    if isinstance(gpu, GpuSpec):
        return gpu, vram_bytes
    if gpu == "auto":
        from .errors import VramplanError
        found = detect_free_memory(count)
        if found is None:
            raise VramplanError(f"--gpu auto: {'no GPU' if count == 1 else f'fewer than {count} GPUs'} detected "
                                "(needs pynvml and an NVIDIA driver)",
                                hint="name the GPU instead, e.g. --gpu T4" if count == 1 else "use fewer --gpus")
        name, free = found
        return find_gpu(name), vram_bytes or free
    return find_gpu(gpu), vram_bytes


def judge(model: ModelArch, gpu: GpuSpec, plan: TrainPlan, vram_bytes: int | None = None, *,
          cal: Calibrations) -> Verdict:
    """Does this plan fit (with the margin)? If not, the fastest plan of the same sequence and effective batch
    that does, or why nothing does."""
    b = estimate(model, gpu, plan, cal.params(gpu), vram_bytes)
    limit = margin_limit(b.capacity_bytes)
    ok = standing(b) == FITS
    dom, dom_bytes = b.dominant()
    advice = [reason(D.NEEDS, required_bytes=b.required_bytes, capacity_bytes=b.capacity_bytes, limit_bytes=limit,
                     margin=SAFETY_MARGIN, component=dom, bytes=dom_bytes, phase=b.peak_phase)]
    nearest = None
    if not ok:
        result = fit(model, gpu, seq=plan.seq, effective_batch=plan.effective_batch, vram_bytes=b.capacity_bytes,
                     base=plan, optims=tuple(dict.fromkeys((plan.optim, "adamw_8bit", "paged_adamw_8bit"))), cal=cal)
        if result.recommended:
            rec, p = result.recommended, result.recommended.plan
            nearest = p.to_dict()
            advice.append(reason(D.FITS_INSTEAD, rank=p.rank, batch=p.batch, grad_accum=p.grad_accum,
                                 gradient_checkpointing=p.gradient_checkpointing, optim=p.optim,
                                 required_bytes=rec.breakdown.required_bytes))
        else:  # why nothing fits, less what NEEDS already says
            advice += [r for r in result.reasons if r.code not in D.WHY_NOTHING_FITS_HEAD] or result.reasons
    return Verdict(ok, b.peak_bytes, b.required_bytes, b.capacity_bytes, b.capacity_bytes - b.required_bytes, b,
                   advice, nearest)


def preflight(model: str | ModelArch, gpu: str | GpuSpec = "auto", vram_bytes: int | None = None,
              **plan) -> Verdict:
    """Judge a QLoRA job before it starts. `plan` takes TrainPlan fields (rank, batch, seq, optim, ...).

    >>> preflight("llama-3.1-8b", gpu="T4", seq=1024).fits
    True
    """
    arch = model if isinstance(model, ModelArch) else find_model(model)
    spec, capacity = resolve_gpu(gpu, vram_bytes)
    plan = flags.gpu_defaults(spec, plan)
    from .planner import Planner
    return Planner(spec, Calibrations.shipped(), capacity).judge(arch, flags.plan_from_fields(plan))
