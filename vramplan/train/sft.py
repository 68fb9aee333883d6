"""TRL's SFTTrainer as `vramplan train` and the stack worker (vramplan.calibrate.measure_stack) build it.

The release check and the SFTConfig keyword arguments are plain data (no torch, no trl: the dry run prints them);
building the trainer imports trl.
"""
from __future__ import annotations

from ..errors import VramplanError
from ..stacks import normalize_release, trl_releases
from .arguments import training_kwargs

TRL_REQUIREMENT = "trl>=1.0,<1.17"
"""The releases vramplan models (profiles/stacks/trl.json), as pip writes them: what the [train] extra installs."""


def installed_trl() -> str | None:
    """The installed TRL's version, read from its metadata (importing trl would import torch)."""
    return installed_version("trl")


def installed_version(package: str) -> str | None:
    import importlib.metadata  # here, not at import: every command imports this module through the CLI
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


STACK_PACKAGES = ("trl", "datasets")


def stack_versions() -> dict:
    """The versions of the libraries, TRL's and the datasets library's included (read from their metadata)."""
    from ..gpu_info import software_versions
    out = software_versions()
    return {**out, **{pkg: installed_version(pkg) for pkg in STACK_PACKAGES}}


def run_release(given: str | None, installed: str | None) -> str:
    """The release `vramplan train` plans with: the installed one. A release vramplan does not model, or a
    --trl-version that differs from the installed one, is refused."""
    if installed is None:
        raise VramplanError("train runs TRL's SFTTrainer, and TRL is not installed",
                            hint=f"pip install 'vramplan[train]' (or '{TRL_REQUIREMENT}'); or --trainer hf")
    try:
        release = normalize_release(installed)
    except VramplanError:
        raise VramplanError(f"the installed TRL {installed} is not a release vramplan models",
                            hint=f"modelled releases: {', '.join(trl_releases())}; pip install "
                                 f"'{TRL_REQUIREMENT}', or --trainer hf") from None
    if given is not None and normalize_release(given) != release:
        raise VramplanError(f"--trl-version {given}: the installed TRL is {installed}; train plans with the "
                            "release it runs", hint=f"drop --trl-version, or install TRL {given}")
    return release


def sft_config_kwargs(plan: dict, output_dir: str, **run) -> dict:
    """SFTConfig keyword arguments for a plan (a plan's or a layout's dict): the TrainingArguments the plan sets
    (vramplan.train.arguments), then what SFTConfig adds. The data arrives tokenized with its labels, so TRL's
    preparation only truncates at max_length and drops examples left without a label (trl-1.16.0
    sft_trainer.py _prepare_dataset); packing stays off (the memory model has no packed batches)."""
    return {**training_kwargs(plan, output_dir, **run), "max_length": plan["seq"], "packing": False,
            "padding_free": False}


def evaluation_kwargs(eval_batch: int, eval_steps: int) -> dict:
    """The evaluation schedule: every eval_steps optimizer steps at the plan's evaluation micro-batch."""
    return {"eval_strategy": "steps", "eval_steps": eval_steps, "per_device_eval_batch_size": eval_batch}


def run_kwargs(plan, output_dir: str, *, evaluate: bool = False, eval_steps: int = 200, **run) -> dict:
    """The keyword arguments `vramplan train` builds its trainer with: SFTConfig's for TRL, TrainingArguments'
    for the plain Trainer; with evaluate, the evaluation schedule at the plan's evaluation micro-batch."""
    from ..layout import layout_dict
    if plan.trainer == "trl":
        kwargs = sft_config_kwargs(layout_dict(plan), output_dir, **run)
    else:
        kwargs = training_kwargs(plan.to_dict(), output_dir, **run)
    if evaluate and plan.eval_batch:
        kwargs.update(evaluation_kwargs(plan.eval_batch, eval_steps))
    return kwargs


def sft_trainer(model, tokenizer, kwargs: dict, train_dataset, eval_dataset=None, callbacks=(),
                fp32_adapters: bool = False):
    """SFTTrainer over an already trainable (peft) model; with fp32_adapters, the way out of its bf16 cast."""
    from trl import SFTConfig, SFTTrainer
    trainer = SFTTrainer(model=model, args=SFTConfig(**kwargs), train_dataset=train_dataset,
                         eval_dataset=eval_dataset, processing_class=tokenizer, callbacks=list(callbacks))
    if fp32_adapters:
        cast_adapters_to_fp32(trainer.model)
    return trainer


def cast_adapters_to_fp32(model) -> None:
    """Every TRL release casts a quantized model's trainable parameters to bf16 (trl-1.16.0 sft_trainer.py:908-911),
    and fp16's gradient scaler cannot unscale bf16 gradients. Cast back after the trainer is built: the optimizer,
    made inside train(), then sees fp32 parameters, as under the plain Trainer."""
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()


def trainable_dtypes(model) -> dict[str, int]:
    """Trainable parameters per dtype, e.g. {"bfloat16": 1_048_576}."""
    out: dict[str, int] = {}
    for p in model.parameters():
        if p.requires_grad:
            name = str(p.dtype).replace("torch.", "")
            out[name] = out.get(name, 0) + p.numel()
    return out


def stack_fields(plan) -> dict:
    """Which stack a plan runs through, the release it is planned as, the installed one and the loss path planned
    for it: what a run record and train's summary say of the stack."""
    from ..layout import resolve
    out = {"trainer": plan.trainer, "loss_path": resolve(plan).loss_path}
    if plan.trainer == "trl":
        out.update(release=plan.trl_version, installed=installed_trl(), fp32_adapters=plan.fp32_adapters)
    return out
