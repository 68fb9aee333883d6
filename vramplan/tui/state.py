"""What the TUI shows, without Textual: a model, a GPU, a plan, and the Breakdown they give."""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from ..calibration.select import runtime_for
from ..memory import Breakdown, estimate
from ..plan import ALL_LINEAR, ATTENTIONS, PARALLELS, TrainPlan
from ..profiles import GpuSpec, ModelArch, find_gpu, find_model
from ..search import FitResult, fit

OPTIM_CYCLE = ("paged_adamw_8bit", "adamw_8bit", "adamw_torch_fused", "adamw_torch", "paged_adamw_32bit",
               "adafactor", "sgd")
_ATTENTION_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj")
GPU_COUNTS = (1, 2, 4, 8)
LIMITS = {"seq": (128, 131072), "batch": (1, 256), "rank": (1, 1024)}


@dataclass
class PlanState:
    model: ModelArch
    gpu: GpuSpec
    plan: TrainPlan = field(default_factory=TrainPlan)

    @classmethod
    def create(cls, model: str | None = None, gpu: str | None = None) -> "PlanState":
        g = find_gpu(gpu or "RTX-4090")
        # effective batch 16, as `vramplan fit` assumes: micro-batch 1 x accumulation 16
        return cls(find_model(model or "llama-3.1-8b"), g,
                   TrainPlan(dtype=g.default_dtype, grad_accum=16))

    def breakdown(self) -> Breakdown:
        return estimate(self.model, self.gpu, self.plan, runtime_for(self.gpu))

    # -- edits: each returns nothing and leaves a valid plan -------------------------------------------
    def set_model(self, name: str) -> None:
        model = find_model(name)
        self.model = model
        if self.plan.targets != ALL_LINEAR and not set(self.plan.targets) <= set(model.linear_names):
            self.plan = self.plan.with_(targets=ALL_LINEAR)

    def set_gpu(self, name: str) -> None:
        self.gpu = find_gpu(name)
        if self.plan.dtype == "bf16" and not self.gpu.bf16:
            self.plan = self.plan.with_(dtype="fp16")

    def set_number(self, name: str, value: int) -> None:
        """Micro-batch moves against accumulation, so the effective batch stays where it was."""
        lo, hi = LIMITS[name]
        value = max(lo, min(hi, int(value)))
        if name == "batch":
            effective = self.plan.effective_batch
            self.plan = self.plan.with_(batch=value, grad_accum=max(1, effective // value))
        else:
            self.plan = self.plan.with_(**{name: value})

    def scale(self, name: str, factor: float) -> None:
        self.set_number(name, round(getattr(self.plan, name) * factor))

    def target_choices(self) -> list[str]:
        names = self.model.linear_names
        attention = [n for n in names if n in _ATTENTION_MODULES]
        minimal = [n for n in ("q_proj", "v_proj") if n in names] or attention[:1]
        out = [ALL_LINEAR, ",".join(attention), ",".join(minimal)]
        return list(dict.fromkeys(out))

    def cycle(self, name: str) -> None:
        p = self.plan
        if name == "optim":
            self.plan = p.with_(optim=_next(OPTIM_CYCLE, p.optim))
        elif name == "attn":
            self.plan = p.with_(attn=_next(ATTENTIONS, p.attn))
        elif name == "targets":
            current = p.targets if isinstance(p.targets, str) else ",".join(p.targets)
            self.plan = p.with_(targets=_next(self.target_choices(), current))
        elif name == "dtype":
            self.plan = p.with_(dtype="fp16" if p.dtype == "bf16" else "bf16")
        elif name in ("gradient_checkpointing", "double_quant"):
            self.plan = p.with_(**{name: not getattr(p, name)})
        elif name == "gpus":  # the effective batch stays; each GPU takes its share of it
            n = _next(GPU_COUNTS, p.gpus)
            self.plan = p.with_(gpus=n, grad_accum=max(1, p.effective_batch // (p.batch * n)), offload=False,
                                kbit_prepare=n == 1 or p.parallel == "ddp")
        elif name == "parallel":
            if p.gpus > 1:
                par = _next(PARALLELS, p.parallel)
                self.plan = p.with_(parallel=par, offload=False, kbit_prepare=par == "ddp")
        else:
            raise KeyError(name)

    def fit(self) -> FitResult:
        return fit(self.model, self.gpu, seq=self.plan.seq, effective_batch=self.plan.effective_batch,
                   base=self.plan, explain=True)

    def apply(self, plan: TrainPlan) -> None:
        self.plan = plan

    # -- export -------------------------------------------------------------------------------------------
    def train_command(self, data: str = "train.jsonl") -> str:
        p = self.plan
        targets = p.targets if isinstance(p.targets, str) else ",".join(p.targets)
        args = ["vramplan", "train", self.model.hub_id or self.model.name, "--data", data, "--gpu", self.gpu.name,
                "--seq", str(p.seq), "--effective-batch", str(p.effective_batch), "--batch", str(p.batch),
                "--rank", str(p.rank), "--alpha", f"{p.alpha:g}", "--dropout", f"{p.dropout:g}",
                "--targets", targets, "--optim", p.optim, "--dtype", p.dtype, "--quant", p.quant,
                "--attn", p.attn] + (["--gpus", str(p.gpus), "--parallel", p.parallel] if p.gpus > 1 else [])
        if not p.gradient_checkpointing:
            args.append("--no-gradient-checkpointing")
        if not p.double_quant:
            args.append("--no-double-quant")
        return shlex.join(args)

    def to_json(self) -> dict:
        b = self.breakdown()
        return {"model": self.model.name, "gpu": self.gpu.name, "plan": self.plan.to_dict(),
                "peak_bytes": b.peak_bytes, "required_bytes": b.required_bytes, "fits": b.fits,
                "train_command": self.train_command()}

    def write(self, folder: Path) -> tuple[Path, Path]:
        """Write the plan as JSON and as a shell command, never over an existing file."""
        json_path = _fresh(folder / "vramplan-plan.json")
        json_path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        sh_path = _fresh(folder / "vramplan-train.sh")
        sh_path.write_text("#!/bin/sh\n" + self.train_command() + "\n")
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
