"""A transformers TrainerCallback that stops an over-sized QLoRA job before its first step.

    from .transformers_callback import PreflightCallback
    trainer = Trainer(..., callbacks=[PreflightCallback(seq=2048)])

At train begin it reads the real model (4-bit/8-bit layers, LoRA ranks and targets, whether embeddings were
cast to fp32 by prepare_model_for_kbit_training), the TrainingArguments and the GPU's memory, predicts the peak
and raises PreflightError, naming a plan that fits, when it does not fit.
"""
from __future__ import annotations

import logging

from transformers import TrainerCallback

from .. import flags
from ..errors import VramplanError
from ..plan import TrainPlan
from ..planner import Planner
from ..present import said
from ..present.display import card_words
from ..present.reasons import standing_words
from ..profiles import arch_from_config, find_gpu
from ..store.calibrations import Calibrations
from ..units import GiB
from ..verdict import Verdict

log = logging.getLogger("vramplan")


class PreflightError(RuntimeError):
    """The job does not fit; the message names the peak, the card and a plan that fits."""


def plan_from_model(model, args, seq: int) -> TrainPlan:
    """What this model object and these TrainingArguments will do, as a TrainPlan."""
    import torch
    quant, double_quant = "none", True
    ranks, alphas, dropouts, targets = set(), set(), set(), set()
    for name, module in model.named_modules():
        cls = type(module).__name__
        if cls == "Linear4bit" and hasattr(module, "weight") and hasattr(module.weight, "quant_state"):
            state = module.weight.quant_state
            quant = getattr(state, "quant_type", None) or getattr(module.weight, "quant_type", "nf4")
            double_quant = bool(getattr(state, "nested", False))
        elif cls == "Linear8bitLt" and quant == "none":
            quant = "int8"
        lora_a = getattr(module, "lora_A", None)
        if lora_a is not None and hasattr(module, "r") and len(lora_a):
            adapter = next(iter(lora_a.keys()))
            ranks.add(module.r[adapter])
            alphas.add(module.lora_alpha[adapter])
            drop = module.lora_dropout[adapter]
            dropouts.add(float(getattr(drop, "p", 0.0)))
            targets.add(name.rsplit(".", 1)[-1])
    embed = model.get_input_embeddings().weight
    return flags.plan_from_fields(
        {**_from_arguments(args), **stack_fields(model, args), "seq": seq,
         "rank": max(ranks) if ranks else 8, "alpha": max(alphas) if alphas else 16,
         "dropout": max(dropouts) if dropouts else 0.0, "targets": tuple(sorted(targets)) if targets else "all-linear",
         "double_quant": double_quant, "quant": quant, "attn": _attn(model),
         "kbit_prepare": embed.dtype == torch.float32})


def stack_fields(model, args) -> dict:
    """The stack these arguments belong to: an SFTConfig is TRL's, at the installed release (its keys checked as
    a config file's are); the adapters' dtype at train begin says whether they were cast back to fp32."""
    from ..config_file import ALL_REFUSED, _refuse
    # compute_metrics is a Trainer argument, never on args: it cannot be seen from here; fsdp_config is filled in
    # by some transformers releases even without fsdp, which is the key that says FSDP runs
    keys = (k for k in (*ALL_REFUSED, "gradient_checkpointing_kwargs") if k != "fsdp_config")
    _refuse({k: getattr(args, k) for k in keys if hasattr(args, k)})
    if not any(c.__name__ == "SFTConfig" for c in type(args).__mro__):
        return {"trainer": "hf"}
    import importlib.metadata
    from ..stacks import check_loss_type, normalize_release
    release = normalize_release(importlib.metadata.version("trl"))
    if getattr(args, "loss_type", None):
        check_loss_type(str(args.loss_type), release)
    dtypes = {p.dtype for p in model.parameters() if p.requires_grad}
    fp32 = bool(dtypes) and all(str(d) == "torch.float32" for d in dtypes)
    return {"trainer": "trl", "trl_version": release, "fp32_adapters": fp32 and _quantized(model)}


def _quantized(model) -> bool:
    return any(type(m).__name__ in ("Linear4bit", "Linear8bitLt") for m in model.modules())


def _from_arguments(args) -> dict:
    """The plan fields TrainingArguments hold, read by their transformers names (as a config file's are)."""
    found: dict[str, dict] = {}
    for key, name in flags.config_keys(axolotl=False).items():
        if hasattr(args, key):
            found.setdefault(name, {})[key] = getattr(args, key)
    return flags.from_config(found)


def _attn(model) -> str:
    impl = getattr(model.config, "_attn_implementation", None) or "sdpa"
    return impl if impl in ("sdpa", "eager", "flash_attention_2") else "sdpa"


def _seq_from_data(dataset, limit: int = 256) -> int | None:
    try:
        lengths = [len(dataset[i]["input_ids"]) for i in range(min(len(dataset), limit))]
    except Exception:
        return None
    return max(lengths) if lengths else None


class PreflightCallback(TrainerCallback):
    """seq: tokens per sequence (default: the longest of the first 256 training examples).
    gpu: a catalog name, or 'auto' (the current CUDA device; capacity = its memory this process can still use).
    vram_bytes: judge against this much instead."""

    def __init__(self, seq: int | None = None, gpu: str = "auto", vram_bytes: int | None = None):
        self.seq, self.gpu, self.vram_bytes = seq, gpu, vram_bytes
        self.verdict: Verdict | None = None
        self.plan: TrainPlan | None = None

    def on_train_begin(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        seq = self.seq or (_seq_from_data(train_dataloader.dataset) if train_dataloader is not None else None)
        if not seq:
            raise PreflightError("vramplan pre-flight: cannot tell the sequence length; pass PreflightCallback(seq=N)")
        config = model.config.to_dict() if hasattr(model.config, "to_dict") else dict(model.config)
        arch = arch_from_config(config, name=config.get("_name_or_path") or config.get("model_type", "model"),
                                origin="model.config")
        try:
            gpu, capacity = self._gpu()
            self.plan = plan_from_model(model, args, seq)
            self.verdict = Planner(gpu, Calibrations.shipped(), capacity).judge(arch, self.plan)
        except VramplanError as exc:  # a plan the stack or the card cannot run, a key not accounted for
            raise PreflightError(f"vramplan pre-flight: {exc}") from None
        v = self.verdict
        summary = (f"vramplan pre-flight: {arch.name} on {gpu.name} ({card_words(gpu.memory_mib, v.capacity_bytes)}): "
                   f"{standing_words(v.standing)}: needs {v.required_bytes / GiB:.2f} GiB (peak as nvidia-smi shows "
                   f"it {v.peak_bytes / GiB:.2f} GiB)")
        if not v.fits:
            raise PreflightError(summary + ". " + " ".join(said(v.advice)))
        log.info("%s", summary)
        return control

    def _gpu(self):
        if self.gpu != "auto":
            return find_gpu(self.gpu), self.vram_bytes
        import torch
        if not torch.cuda.is_available():
            raise PreflightError("vramplan pre-flight: no CUDA device; pass PreflightCallback(gpu='NAME')")
        gpu = find_gpu(torch.cuda.get_device_name())
        free, _ = torch.cuda.mem_get_info()
        # what this process can use: what is free plus what it already holds (its allocator and context)
        held = torch.cuda.memory_reserved() + Calibrations.shipped().params(gpu).context_bytes
        return gpu, self.vram_bytes or free + held
