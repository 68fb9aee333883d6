"""Planner: one GPU (or several of one kind) and the calibration it is handed; estimate, fit, judge, table.

    planner = Planner(find_gpu("T4"), Calibrations.shipped())
    planner.fit(find_model("llama-3.1-8b")).recommended.plan

Every prediction goes through a Planner, so none is made without calibration parameters: Calibrations.shipped()
reads the package's fits, Calibrations.defaults() asks for the built-in parameters by name.
"""
from __future__ import annotations

from . import decisions as D
from . import flags
from .decisions import Reason, reason
from .errors import VramplanError
from .memory import Breakdown, estimate
from .memory.calibration import Calibration
from .layout import check_card
from .plan import TrainPlan
from .profiles import GpuSpec, ModelArch
from .search import FitResult, fit, longest_seq
from .search_moe import experts_lora, for_model
from .store.calibrations import Calibrations
from .verdict import Verdict, judge


class Planner:
    def __init__(self, gpu: GpuSpec, calibrations: Calibrations, vram_bytes: int | None = None):
        """vram_bytes: plan for this much memory per GPU instead of what the card offers one process."""
        self.gpu, self.calibrations, self.vram_bytes = gpu, calibrations, vram_bytes
        self.calibration: Calibration = calibrations.params(gpu)
        self.capacity_bytes = vram_bytes or self.calibration.usable_bytes(gpu)

    def estimate(self, model: ModelArch, plan: TrainPlan) -> Breakdown:
        check_card(plan, self.gpu)
        return estimate(model, self.gpu, plan, self.calibration, self.vram_bytes)

    def fit(self, model: ModelArch, **search) -> FitResult:
        """The fastest (or cheapest) plan that fits (search: seq, effective_batch, rank, base, optims, explain, gpus,
        parallel, objective)."""
        if search.get("base") is not None:  # the dtype is the card's own; the rest must run on it
            check_card(flags.on_gpu(search["base"], self.gpu), self.gpu)
        return fit(model, self.gpu, vram_bytes=self.vram_bytes, cal=self.calibrations, **search)

    def judge(self, model: ModelArch, plan: TrainPlan) -> Verdict:
        check_card(plan, self.gpu)
        return judge(model, self.gpu, plan, self.vram_bytes, cal=self.calibrations)

    def longest_seq(self, model: ModelArch, base: TrainPlan) -> int:
        return longest_seq(self.calibrations, model, self.gpu, base, self.capacity_bytes)

    def table_row(self, model: ModelArch, seq: int, effective_batch: int) -> dict:
        """One row of a compatibility table: fits?, the best plan, the longest sequence that fits."""
        result = self.fit(model, seq=seq, effective_batch=effective_batch, explain=False)
        rec = result.recommended
        base = flags.plan_from_fields(for_model(model, flags.gpu_defaults(self.gpu, {})))
        row = {"model": model.name, "gpu": self.gpu.name, "params": model.total_params, "fits": rec is not None,
               "plan": rec.plan.to_dict() if rec else None,
               "required_bytes": rec.breakdown.required_bytes if rec else None,
               "tokens_per_s": round(rec.tokens_per_s, 1) if rec else None,
               "step_s": round(rec.step_s, 4) if rec else None,
               "longest_seq": self.longest_seq(model, base)}
        moe = experts_lora(model, rec.plan if rec else base)
        return {**row, "experts_lora": moe.to_dict()} if moe else row  # an MoE model's: what its experts get

    def biggest_saving(self, model: ModelArch, plan: TrainPlan, b: Breakdown) -> Reason | None:
        """The one plan change that lowers the peak the most (BIGGEST_SAVING: the changed fields, the bytes)."""
        best = None
        for changes in _lighter(plan):
            try:
                lighter = self.estimate(model, plan.with_(**changes))
            except VramplanError:  # a change this stack or card cannot run is no saving
                continue
            saved = b.peak_bytes - lighter.peak_bytes
            if saved > 0 and (best is None or saved > best["saves_bytes"]):
                best = reason(D.BIGGEST_SAVING, changes=changes, saves_bytes=saved)
        return best


def _lighter(plan: TrainPlan) -> list[dict]:
    """Single changes that usually need less memory, in the order they are preferred on a tie."""
    options = []
    if plan.batch > 1:
        options.append({"batch": plan.batch // 2, "grad_accum": plan.grad_accum * 2})
    if not plan.gradient_checkpointing:
        options.append({"gradient_checkpointing": True})
    if plan.seq > 256:
        options.append({"seq": plan.seq // 2})
    if plan.optim not in ("paged_adamw_8bit", "adamw_8bit", "sgd"):
        options.append({"optim": "adamw_8bit"})
    if plan.rank > 8:
        options.append({"rank": plan.rank // 2})
    if plan.quant in ("int8", "none"):
        options.append({"quant": "nf4"})
    if plan.attn == "eager":
        options.append({"attn": "sdpa"})
    return options
