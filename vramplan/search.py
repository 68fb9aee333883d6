"""`fit`: enumerate plans, keep those that fit with the safety margin, rank them by the speed model fitted to
measured step times (vramplan.speed): by time (tokens/s) or by cost (GPU-seconds per token, what a price per GPU
hour multiplies)."""
from __future__ import annotations

from dataclasses import dataclass, field

from . import decisions as D
from . import flags
from .allocator_choice import plan_allocator_numbers
from .decisions import Reason, reason
from .errors import VramplanError
from .margin import SAFETY_MARGIN, margin_limit
from .memory import Breakdown, estimate
from .memory.activations import checkpointed_layers
from .memory.estimate import SHARDED
from .plan import ALL_LINEAR, CPU_OPTIMIZERS, TrainPlan
from .profiles import GpuSpec, ModelArch, gpu_catalog, model_catalog
from .profiles.checkpointing import plan_modes, search_modes, usable_modes
from .search_moe import experts_lora, kbit_prepare_off, plan_for_model
from .speed import predicted_tokens_per_second
from .store.calibrations import Calibrations

DEFAULT_RANK = 16
OPTIMIZERS = ("paged_adamw_8bit", "adamw_8bit", "adamw_torch_fused")
GAIN = 1.05
"""Several GPUs "beat one" only from this speed-up: below it the fitted model's error covers the difference."""
OBJECTIVES = ("time", "cost")
"""What fit ranks by: the fastest plan, or the one that costs least per token (tokens/s per GPU paid for)."""


@dataclass(frozen=True)
class Candidate:
    plan: TrainPlan
    breakdown: Breakdown
    tokens_per_s: float
    limit_bytes: int

    @property
    def fits(self) -> bool:
        return self.breakdown.required_bytes <= self.limit_bytes

    @property
    def step_s(self) -> float:
        """Seconds per optimizer step (every GPU's micro-batches at once)."""
        return self.plan.tokens * self.plan.grad_accum * self.plan.gpus / self.tokens_per_s

    @property
    def gpu_seconds_per_token(self) -> float:
        """What a price per GPU hour multiplies: the cost objective's key."""
        return self.plan.gpus / self.tokens_per_s

    def to_dict(self, fastest: float) -> dict:
        return {"plan": self.plan.to_dict(), "peak_bytes": self.breakdown.peak_bytes,
                "required_bytes": self.breakdown.required_bytes,
                "peak_phase": self.breakdown.peak_phase, "tokens_per_s": round(self.tokens_per_s, 1),
                "step_s": round(self.step_s, 4),
                "relative_speed": round(self.tokens_per_s / fastest, 3) if fastest else None}


@dataclass
class FitResult:
    model: ModelArch
    gpu: GpuSpec
    capacity_bytes: int
    limit_bytes: int
    recommended: Candidate | None
    alternatives: list[Candidate]
    reasons: list[Reason] = field(default_factory=list)
    """Why the recommended plan is what it is, or why nothing fits (vramplan.decisions codes)."""
    suggestions: dict = field(default_factory=dict)
    gpus: int = 1
    one_gpu: Candidate | None = None
    """With several GPUs: the best plan on one of them (None: nothing fits one), for the comparison."""
    one_gpu_needs: int = 0
    """With several GPUs: what the leanest one-GPU plan needs (bytes)."""
    versus_one_gpu: Reason | None = None
    """With several GPUs and a plan that fits: why they beat one GPU, or why not."""
    objective: str = "time"
    """What the plans were ranked by (OBJECTIVES)."""


def _leanest(base: TrainPlan, model: ModelArch) -> TrainPlan:
    """Micro-batch 1 with checkpointing, keeping the effective batch (accumulation keeps gradients); on one GPU
    with a dense model's checkpoints offloaded once that mode is measured, unless the base asks for a mode of its
    own."""
    plan = base.with_(batch=1, grad_accum=max(1, base.effective_batch // base.gpus), gradient_checkpointing=True)
    if not plan_modes(base) and "offload" in usable_modes(base, model.experts is not None):
        plan = plan.with_(checkpoint_offload=True)
    return plan


def _micro_batches(effective: int) -> list[int]:
    return [b for b in (1, 2, 4, 8, 16, 32, 64, 128) if b <= effective and effective % b == 0] or [1]


def candidates(cal: Calibrations, model: ModelArch, gpu: GpuSpec, base: TrainPlan, effective_batch: int,
               capacity: int, ranks: tuple[int, ...], optims: tuple[str, ...]) -> list[Candidate]:
    """Every plan of base's layout (GPUs, parallelism, offload); the effective batch is split over the GPUs."""
    calibration = cal.params(gpu)
    limit = margin_limit(capacity)
    per_gpu = effective_batch // base.gpus
    if base.offload:
        optims = tuple(o for o in optims if o in CPU_OPTIMIZERS) or ("adamw_torch",)
    out = []
    modes = _memory_descending(search_modes(model.layers, base, model.experts is not None))
    for rank in ranks:
        for optim in optims:
            fitted: set[int] = set()  # micro-batches where a mode fits
            for ckpt, every, ckpt_offload in modes:
                for mb in _micro_batches(per_gpu):
                    # a partial or offloaded mode below one that fits only recomputes or copies more for memory
                    # it does not need (every layer's checkpointing stays: the reasons compare against it)
                    if mb in fitted and (every > 1 or ckpt_offload):
                        continue
                    plan = base.with_(rank=rank, optim=optim, gradient_checkpointing=ckpt, batch=mb,
                                      grad_accum=per_gpu // mb, checkpoint_every=every,
                                      checkpoint_offload=ckpt_offload)
                    b = estimate(model, gpu, plan, calibration, vram_bytes=capacity)
                    c = Candidate(plan, b, predicted_tokens_per_second(model, gpu, plan, b), limit)
                    out.append(c)
                    if not c.fits:
                        break  # a larger micro-batch needs more: the first that does not fit is the last tried
                    fitted.add(mb)
    return out


def _memory_descending(modes: list[tuple[bool, int, bool]]) -> list[tuple[bool, int, bool]]:
    """Within each offload group: no checkpointing, then every K-th layer from the largest K, then every layer,
    the order in which the kept activations shrink."""
    return sorted(modes, key=lambda m: (m[2], m[0], m[1] == 1, -m[1]))


def layouts(base: TrainPlan, parallel: str | None = None) -> list[TrainPlan]:
    """How the GPUs may share the work: one GPU as is; several by DDP and FSDP (or the one asked for)."""
    if base.gpus == 1:
        return [base]
    return [base.with_(parallel=p, offload=False) for p in ((parallel,) if parallel else ("ddp", "fsdp"))]


def _offload_layout(base: TrainPlan) -> TrainPlan:
    optim = base.optim if base.optim in CPU_OPTIMIZERS else "adamw_torch"
    return base.with_(parallel="fsdp", offload=True, optim=optim)


def fit(model: ModelArch, gpu: GpuSpec, *, seq: int = 2048, effective_batch: int = 16, rank: int | None = None,
        vram_bytes: int | None = None, base: TrainPlan | None = None, optims: tuple[str, ...] | None = None,
        explain: bool = True, gpus: int | None = None, parallel: str | None = None, objective: str = "time",
        cal: Calibrations) -> FitResult:
    """The fastest (objective "cost": the cheapest per token) plan that fits each GPU with the margin. gpus > 1:
    data parallel and FSDP are both searched (or `parallel` alone); FSDP with CPU offload only when nothing else
    fits; the best one-GPU plan is kept for the comparison, and by cost it competes (it wins when the GPUs add
    less speed than they add to the bill)."""
    if effective_batch < 1 or effective_batch > 4096:
        raise VramplanError(f"--effective-batch: {effective_batch} is out of range", hint="use 1..4096")
    if objective not in OBJECTIVES:
        raise VramplanError(f"--objective: {objective!r} is not one of {', '.join(OBJECTIVES)}")
    base = flags.on_gpu((base or plan_for_model(model, TrainPlan())).with_(seq=seq), gpu)
    if gpus:
        base = base.with_(**flags.several_gpus(gpus))
    if effective_batch % base.gpus:
        raise VramplanError(f"--effective-batch {effective_batch} does not split evenly over {base.gpus} GPUs",
                            hint=f"use a multiple of {base.gpus}")
    capacity = vram_bytes or cal.params(gpu).usable_bytes(gpu)
    ranks = (rank,) if rank else (DEFAULT_RANK, 8)
    opts = optims or OPTIMIZERS
    cands = [c for layout in layouts(base, parallel) for c in
             candidates(cal, model, gpu, layout, effective_batch, capacity, ranks, opts)]
    if base.gpus > 1 and parallel in (None, "fsdp") and not any(c.fits for c in cands):
        cands += candidates(cal, model, gpu, _offload_layout(base), effective_batch, capacity, ranks, opts)
    one = candidates(cal, model, gpu, base.with_(gpus=1, offload=False), effective_batch, capacity, ranks, opts) \
        if base.gpus > 1 else []
    several = _preferred(cands, ranks, objective)
    preferred = _preferred(cands + one, ranks, objective) if objective == "cost" else several
    result = FitResult(model, gpu, capacity, margin_limit(capacity),
                       preferred[0] if preferred else None, [], gpus=base.gpus, objective=objective)
    if base.gpus > 1:
        one_preferred = _preferred(one, ranks, objective)
        result.one_gpu = one_preferred[0] if one_preferred else None
        result.one_gpu_needs = min(c.breakdown.required_bytes for c in one)
    if result.recommended:
        result.alternatives = _alternatives(preferred)
        moe = experts_lora(model, result.recommended.plan)  # an MoE model's experts first: the choice it forces
        result.reasons = ([moe] if moe else []) + _reasons(result.recommended, gpu, rank, cands + one, model)
        result.reasons.append(_allocator_reason(cal, model, gpu, result.recommended, capacity))
        if base.gpus > 1:
            result.versus_one_gpu = versus_one_gpu(result, several[0] if several else None)
    elif explain:
        result.reasons, result.suggestions = _why_not(cal, model, gpu, base, effective_batch, capacity, cands)
    return result


def _preferred(cands: list[Candidate], ranks: tuple[int, ...], objective: str = "time") -> list[Candidate]:
    """The plans that fit, best first: rank ranks[0] unless only another fits; then fastest (or cheapest per
    token); ties go to the smaller peak."""
    fitting = [c for c in cands if c.fits]
    preferred = [c for c in fitting if c.plan.rank == ranks[0]] or fitting
    if objective == "cost":
        preferred.sort(key=lambda c: (round(c.gpu_seconds_per_token * 1e6, 9), c.breakdown.required_bytes))
    else:
        preferred.sort(key=lambda c: (-round(c.tokens_per_s, 6), c.breakdown.required_bytes))
    return preferred


def versus_one_gpu(result: FitResult, several: Candidate | None = None) -> Reason:
    """Why several GPUs beat one here, or why they do not (several: the best plan on them, when by cost one GPU
    won)."""
    rec, one, n, g = result.recommended, result.one_gpu, result.gpus, result.gpu
    if rec.plan.gpus == 1 and several is not None:
        return reason(D.ONE_GPU_CHEAPER, gpus=n, gpu=g.name, speedup=several.tokens_per_s / rec.tokens_per_s,
                      cost_ratio=several.gpu_seconds_per_token / rec.gpu_seconds_per_token)
    per_gpu = rec.breakdown.required_bytes
    if one is None:
        return reason(D.GPUS_MAKE_IT_POSSIBLE, gpus=n, gpu=g.name, one_gpu_needs_bytes=result.one_gpu_needs,
                      limit_bytes=result.limit_bytes, per_gpu_bytes=per_gpu, offload=rec.plan.offload)
    speedup = rec.tokens_per_s / one.tokens_per_s
    if speedup < GAIN:
        return reason(D.GPUS_NO_GAIN, gpus=n, gpu=g.name, speedup=speedup, one_gpu_batch=one.plan.batch,
                      one_gpu_tokens_per_s=one.tokens_per_s, parallel=rec.plan.parallel)
    if rec.plan.parallel == "ddp":
        return reason(D.GPUS_DDP_FASTER, gpus=n, gpu=g.name, speedup=speedup, per_gpu_bytes=per_gpu)
    return reason(D.GPUS_FSDP_FASTER, gpus=n, speedup=speedup, per_gpu_bytes=per_gpu)


def _alternatives(ranked: list[Candidate], n: int = 4) -> list[Candidate]:
    """The next best plan of each other shape (micro-batch, checkpointing, layout), then another optimizer."""
    rec = ranked[0]
    shapes = {_shape(rec.plan)}
    out = []
    for c in ranked[1:]:
        shape = _shape(c.plan)
        if shape not in shapes and len(out) < n - 1:
            shapes.add(shape)
            out.append(c)
    other = next((c for c in ranked[1:] if c.plan.optim != rec.plan.optim and _shape(c.plan) == _shape(rec.plan)),
                 None)
    return out + ([other] if other else [])


def _shape(p: TrainPlan) -> tuple:
    return p.batch, p.gradient_checkpointing, p.gpus, p.parallel if p.gpus > 1 else None, p.offload


def _reasons(rec: Candidate, gpu: GpuSpec, rank: int | None, cands: list[Candidate], model: ModelArch) -> list[Reason]:
    p = rec.plan
    out = [reason(D.DTYPE_BF16, gpu=gpu.name) if p.dtype == "bf16" else
           reason(D.DTYPE_FP16, gpu=gpu.name, compute_capability=gpu.compute_capability)]
    out.append(reason(D.STACK, trainer=p.trainer, trl_version=p.trl_version if p.trainer == "trl" else None,
                      loss_path=rec.breakdown.layout["loss_path"]))
    if p.fp32_adapters:
        out.append(reason(D.FP32_ADAPTERS, trl_version=p.trl_version))
    out.append(reason(D.RANK_ASKED, rank=p.rank) if rank else
               reason(D.RANK_DEFAULT, rank=p.rank) if p.rank == DEFAULT_RANK else
               reason(D.RANK_FALLBACK, rank=p.rank, preferred=DEFAULT_RANK))
    same = [c for c in cands if c.fits and c.plan.rank == p.rank and c.plan.optim == p.optim]
    largest = {ckpt: max((c.plan.batch for c in same if c.plan.gradient_checkpointing == ckpt), default=0)
               for ckpt in (False, True)}
    if p.batch == largest[p.gradient_checkpointing] and p.batch < p.effective_batch:
        out.append(reason(D.MICRO_BATCH_LARGEST, batch=p.batch, grad_accum=p.grad_accum, next_batch=2 * p.batch,
                          gradient_checkpointing=p.gradient_checkpointing))
    else:
        out.append(reason(D.MICRO_BATCH_FASTEST, batch=p.batch, grad_accum=p.grad_accum,
                          effective_batch=p.effective_batch))
    if p.gradient_checkpointing and largest[False]:
        out.append(reason(D.CHECKPOINTING_FOR_BATCH, batch=p.batch, without=largest[False]))
    elif p.gradient_checkpointing:
        out.append(reason(D.CHECKPOINTING_NEEDED))
    else:
        out.append(reason(D.CHECKPOINTING_OFF))
    out += _mode_reasons(rec, [c for c in same if c.plan.batch == p.batch], model)
    out.append(reason(D.OPTIMIZER, optim=p.optim))
    return out


def _allocator_reason(cal: Calibrations, model: ModelArch, gpu: GpuSpec, rec: Candidate, capacity: int) -> Reason:
    """The plan's allocator, what the plan needs under each, and the one `vramplan train` would take."""
    numbers = plan_allocator_numbers(rec.plan, lambda p: estimate(model, gpu, p, cal.params(gpu), vram_bytes=capacity),
                                     own=rec.breakdown)
    return reason(D.ALLOCATOR, allocator=rec.plan.allocator, **numbers)


def _mode_reasons(rec: Candidate, same_shape: list[Candidate], model: ModelArch) -> list[Reason]:
    """Why a partial or offloaded checkpointing mode: against checkpointing every layer, and against keeping the
    checkpoints on the GPU, at the same micro-batch (speedups by the speed model; None where that one does not
    fit)."""
    p, out = rec.plan, []

    def speedup(**mode) -> float | None:
        other = next((c for c in same_shape if c.fits and all(getattr(c.plan, k) == v for k, v in mode.items())),
                     None)
        return rec.tokens_per_s / other.tokens_per_s if other else None
    if p.checkpoint_every > 1:
        out.append(reason(D.CHECKPOINTING_PARTIAL, every=p.checkpoint_every, layers=model.layers,
                          checkpointed=checkpointed_layers(model, p),
                          full_speedup=speedup(checkpoint_every=1, checkpoint_offload=False)))
    if p.checkpoint_offload:
        s = speedup(checkpoint_every=p.checkpoint_every, checkpoint_offload=False)
        out.append(reason(D.CHECKPOINTS_OFFLOADED, on_gpu_fits=s is not None, speedup=s))
    return out


def longest_seq(cal: Calibrations, model: ModelArch, gpu: GpuSpec, base: TrainPlan, capacity: int,
                limit_seq: int = 131072) -> int:
    """Longest sequence (multiple of 128) that fits at micro-batch 1 with checkpointing, with the margin,
    keeping the effective batch (accumulation keeps gradients between micro-batches)."""
    calibration = cal.params(gpu)
    limit = margin_limit(capacity)
    plan = _leanest(base, model)

    def ok(seq: int) -> bool:
        return estimate(model, gpu, plan.with_(seq=seq), calibration, vram_bytes=capacity).required_bytes <= limit

    if not ok(128):
        return 0
    lo, hi = 128, min(limit_seq, model.max_position_embeddings or limit_seq)
    if ok(hi):
        return hi
    while hi - lo > 128:
        mid = (lo + hi) // 2 // 128 * 128
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def _why_not(cal, model, gpu, base, effective_batch, capacity, cands) -> tuple[list[Reason], dict]:
    smallest = min(cands, key=lambda c: c.breakdown.required_bytes)
    b = smallest.breakdown
    dom_key, dom_bytes = b.dominant()
    n = smallest.plan.gpus
    reasons = [reason(D.LEANEST_TOO_BIG, required_bytes=b.required_bytes, limit_bytes=margin_limit(capacity),
                      rank=smallest.plan.rank, gpus=n, gpu=gpu.name, margin=SAFETY_MARGIN),
               reason(D.LARGEST_PART, component=dom_key, bytes=dom_bytes, phase=b.peak_phase)]
    if n > 1 and b.peak_phase != "load" and dom_key not in SHARDED:
        reasons.append(reason(D.PART_PER_GPU))
    reasons += _experts_why_not(model, smallest.plan, b)
    base = base.with_(batch=1, grad_accum=max(1, effective_batch // base.gpus))
    if base.gpus > 1 and n > 1:
        base = base.with_(parallel=smallest.plan.parallel, offload=smallest.plan.offload, optim=smallest.plan.optim)
        if b.peak_phase == "load":
            reasons.append(reason(D.LOAD_WHOLE_MODEL, load_bytes=sum(b.phases["load"].values())))
    seq = longest_seq(cal, model, gpu, base, capacity)
    suggestions = {"longest_seq": seq}
    if seq:
        reasons.append(reason(D.SHORTER_SEQ, seq=seq))
    smaller = [m.name for m in model_catalog() if m.total_params < model.total_params and
               _fits_at_all(cal, m, gpu, base, capacity)]
    suggestions["smaller_models"] = smaller[-3:][::-1]
    if smaller:
        reasons.append(reason(D.SMALLER_MODELS, models=suggestions["smaller_models"]))
    gpus = [g.name for g in gpu_catalog() if g.memory_mib > gpu.memory_mib and
            _fits_at_all(cal, model, g, flags.on_gpu(base, g), None)]
    suggestions["gpus"] = gpus[:3]
    if gpus:
        reasons.append(reason(D.BIGGER_GPUS, gpus=gpus[:3], count=n))
    return reasons, suggestions


def _experts_why_not(model, plan, b) -> list[Reason]:
    """An MoE model's: what LoRA its experts got, and what prepare_model_for_kbit_training's fp32 cast of the
    unquantized experts costs."""
    if model.experts is None:
        return []
    kbit = kbit_prepare_off(model, plan, b.components.get("moe_experts", 0))
    return [r for r in (kbit, experts_lora(model, plan)) if r]


def _fits_at_all(cal, model, gpu, base, capacity) -> bool:
    if base.targets != ALL_LINEAR and not set(base.targets) <= set(model.linear_names):
        base = base.with_(targets=ALL_LINEAR)  # another architecture: its module names differ, train them all
    calibration = cal.params(gpu)
    cap = capacity or calibration.usable_bytes(gpu)
    try:  # another model gets its own recipe (an MoE model's dropout); one it is refused for does not fit
        b = estimate(model, gpu, _leanest(plan_for_model(model, base), model), calibration, vram_bytes=cap)
    except VramplanError:
        return False
    return b.required_bytes <= margin_limit(cap)
