"""What the TUI shows, without Textual: a model, a GPU, a plan, and the Breakdown they give."""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import flags
from ..memory import Breakdown
from ..plan import ALL_LINEAR, PARALLELS, TrainPlan
from ..present.time_cost import Job, parse_epochs, parse_price, parse_tokens, plan_figures
from ..planner import Planner
from ..profiles import GpuSpec, ModelArch, find_gpu, find_model
from ..search import FitResult
from ..search_moe import RECIPE_DROPOUT, for_model, plan_for_model
from ..store.calibrations import Calibrations

_ATTENTION_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj")
GPU_COUNTS = (1, 2, 4, 8)
LIMITS = {"seq": (128, 131072), "batch": (1, 256), "rank": (1, 1024)}


@dataclass
class PlanState:
    model: ModelArch
    gpu: GpuSpec
    plan: TrainPlan = field(default_factory=TrainPlan)
    calibrations: Calibrations = field(default_factory=Calibrations.shipped)
    job: Job = field(default_factory=Job)
    """The data set's tokens, the epochs and the price per GPU hour the user typed: the time and the cost."""

    def __post_init__(self):
        self.planner = Planner(self.gpu, self.calibrations)

    @classmethod
    def create(cls, model: str | None = None, gpu: str | None = None) -> "PlanState":
        g = find_gpu(gpu or "RTX-4090")
        # effective batch 16, as `vramplan fit` assumes: micro-batch 1 x accumulation 16
        arch = find_model(model or "llama-3.1-8b")
        return cls(arch, g, flags.plan_from_fields(for_model(arch, flags.gpu_defaults(g, {"grad_accum": 16}))))

    def breakdown(self) -> Breakdown:
        return self.planner.estimate(self.model, self.plan)

    def time_cost(self, b: Breakdown | None = None) -> dict:
        """The plan's tokens/s and seconds per step, and with the job the time and the cost (vramplan.present
        .time_cost.figures, as estimate prints them)."""
        return plan_figures(self.model, self.gpu, self.plan, b or self.breakdown(), self.job)

    def set_job(self, name: str, text: str) -> None:
        """tokens (20M, 1.5B), epochs or price as typed; empty clears it. A value that is not one raises
        ValueError with the reason."""
        parse = {"tokens": parse_tokens, "epochs": parse_epochs, "price": parse_price}[name]
        text = text.strip()
        try:
            value = parse(text) if text else None
        except ValueError as exc:  # its message is the reason
            raise ValueError(f"{name}: {exc}") from None
        if name == "epochs":
            value = value or 1.0
        self.job = replace(self.job, **{name: value})

    # -- edits: each returns nothing and leaves a valid plan -------------------------------------------
    def set_model(self, name: str) -> None:
        model = find_model(name)
        self.model = model
        if self.plan.targets != ALL_LINEAR and not set(self.plan.targets) <= set(model.linear_names):
            self.plan = self.plan.with_(targets=ALL_LINEAR)
        self._model_dropout()

    def _model_dropout(self) -> None:
        """The TUI has no dropout key: the recipe's, or 0 where the model's experts are ParamWrapper targets."""
        self.plan = plan_for_model(self.model, self.plan.with_(dropout=RECIPE_DROPOUT))

    def set_gpu(self, name: str) -> None:
        self.gpu = find_gpu(name)
        self.planner = Planner(self.gpu, self.calibrations)
        if self.plan.dtype == "bf16" and not self.gpu.bf16:  # the card's dtype, and fp16's way out through TRL
            self.plan = flags.on_gpu(self.plan, self.gpu)

    def set_number(self, name: str, value: int) -> None:
        """Micro-batch moves against accumulation, so the effective batch stays where it was."""
        lo, hi = LIMITS.get(name) or flags.flag(name).range
        value = max(lo, min(hi, int(value)))
        if name == "batch":
            effective = self.plan.effective_batch
            self.plan = self.plan.with_(batch=value, grad_accum=max(1, effective // value))
        else:
            self.plan = self.plan.with_(**{name: value})

    def scale(self, name: str, factor: float) -> None:
        current = getattr(self.plan, name)
        # a field that may be 0 (no evaluation) starts at 1 when doubled
        self.set_number(name, round(current * factor) if current else int(factor > 1))

    def target_choices(self) -> list[str]:
        names = self.model.linear_names
        attention = [n for n in names if n in _ATTENTION_MODULES]
        minimal = [n for n in ("q_proj", "v_proj") if n in names] or attention[:1]
        out = [ALL_LINEAR, ",".join(attention), ",".join(minimal)]
        return list(dict.fromkeys(out))

    def cycle(self, name: str) -> None:
        """The next value of a field: its next choice, or a switch flipped (targets: this model's choices)."""
        p = self.plan
        if name == "targets":
            choice = _next(self.target_choices(), flags.targets_text(p.targets))
            self.plan = p.with_(targets=flags.parse_value("targets", choice))
            self._model_dropout()
        elif name == "gpus":  # the effective batch stays; each GPU takes its share of it
            n = _next(GPU_COUNTS, p.gpus)
            self.plan = p.with_(grad_accum=max(1, p.effective_batch // (p.batch * n)), offload=False,
                                **flags.several_gpus(n))
        elif name == "trainer":  # fp16 through SFTTrainer runs only with the adapters cast back to fp32
            new = _next(flags.flag(name).choices, p.trainer)
            self.plan = p.with_(trainer=new, fp32_adapters=new == "trl" and p.dtype == "fp16" and p.quantized)
        elif name == "parallel":
            if p.gpus > 1:
                self.plan = p.with_(parallel=_next(PARALLELS, p.parallel), offload=False)
        else:
            value = getattr(p, name)
            new = (not value) if isinstance(value, bool) else _next(flags.flag(name).choices, value)
            self.plan = p.with_(**{name: new})

    def fit(self) -> FitResult:
        return self.planner.fit(self.model, seq=self.plan.seq, effective_batch=self.plan.effective_batch,
                                base=self.plan, explain=True)

    def apply(self, plan: TrainPlan) -> None:
        self.plan = plan

    # -- export -------------------------------------------------------------------------------------------
    def train_command(self, data: str = "train.jsonl") -> str:
        """The `vramplan train` command that runs this plan: every plan flag, from the plan's declarations. The
        TRL release is left to train, which plans the installed one and says which (a --trl-version that differs
        from it is refused there)."""
        p = self.plan
        args = ["vramplan", "train", self.model.hub_id or self.model.name, "--data", data, "--gpu", self.gpu.name,
                "--effective-batch", str(p.effective_batch)] + flags.command_args(p, skip=("grad_accum", "trl_version"))
        return shlex.join(args)

    def to_json(self) -> dict:
        b = self.breakdown()
        return {"model": self.model.name, "gpu": self.gpu.name, "plan": self.plan.to_dict(),
                "peak_bytes": b.peak_bytes, "required_bytes": b.required_bytes, "fits": b.fits, "standing": b.standing,
                "train_command": self.train_command()}

    def write(self, folder: Path) -> tuple[Path, Path]:
        """Write the plan as JSON and as a shell command, never over an existing file."""
        json_path = _fresh(folder / "vramplan-plan.json")
        json_path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        sh_path = _fresh(folder / "vramplan-train.sh")
        note = (f"# planned for TRL {self.plan.trl_version}'s SFTTrainer; `vramplan train` plans the installed TRL "
                "release again before it runs\n" if self.plan.trainer == "trl" else "")
        sh_path.write_text("#!/bin/sh\n" + note + self.train_command() + "\n")
        return json_path, sh_path


def _next(seq, current):
    seq = list(seq)
    return seq[(seq.index(current) + 1) % len(seq)] if current in seq else seq[0]


def _fresh(path: Path) -> Path:
    if not path.exists():
        return path
    n = 2
    while (candidate := path.with_name(f"{path.stem}-{n}{path.suffix}")).exists():
        n += 1
    return candidate
