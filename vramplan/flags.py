"""Everything generated from the plan's field declarations (vramplan.plan.Flag): argparse flags, plans from typed
or config-file values, the plan line, the TUI's keys and the `vramplan train` command that reproduces a plan."""
from __future__ import annotations

import argparse
import math

from .errors import VramplanError
from .plan import ALL_LINEAR, Flag, TrainPlan, plan_flags

TOOLS = ("transformers", "peft", "trl", "axolotl")
"""Whose names a config file may use for a plan field; axolotl's are read only in axolotl files."""


def dash(name: str) -> str:
    return "--" + name.replace("_", "-")


def switch_flag(name: str, default: bool) -> str:
    """A switch's flag: --no-NAME turns a default-on field off, --NAME turns a default-off one on."""
    return f"--no-{name.replace('_', '-')}" if default else dash(name)


def positive_int(flag: str, lowest: int = 1):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag}: {text!r} is not a whole number") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"{flag}: must be {'positive' if lowest == 1 else f'at least {lowest}'}"
                                             f", got {value}")
        return value
    return parse


def _kind(name: str):
    return {"int": int, "float": float, "bool": bool}.get(TrainPlan.__dataclass_fields__[name].type, str)


# -- argparse --------------------------------------------------------------------------------------------------
def add_arguments(group, names: tuple[str, ...] | None = None, skip: tuple[str, ...] = (),
                  only_given: bool = False, defaults: dict | None = None) -> None:
    """A flag for each plan field (or those in `names`). only_given: fields not typed stay out of the namespace.
    defaults: a caller's own default for a field (fit leaves --parallel unset to search both)."""
    for name, flag, default in plan_flags():
        if not flag.cli or name in skip or (names is not None and name not in names):
            continue
        kw: dict = {"dest": name, "help": flag.help}
        kind = _kind(name)
        if kind is bool:
            kw["action"] = "store_false" if default else "store_true"
            if flag.cli_default is None:  # not typed stays None: a default that depends on the GPU or the plan
                kw["default"] = None
            flags = [switch_flag(name, default)]
        else:
            flags = [dash(name)]
            kw["default"] = default if flag.cli_default == "plan" else flag.cli_default
            if kind is int:
                kw["type"] = positive_int(dash(name), int(flag.range[0]) if flag.range else 1)
            elif kind is float:
                kw["type"] = float
            if flag.choices and flag.parse is None:
                kw["choices"] = flag.choices
        if defaults and name in defaults:
            kw["default"] = defaults[name]
        if only_given:
            kw["default"] = argparse.SUPPRESS
        group.add_argument(*flags, **kw)


def given_fields(args, names: tuple[str, ...] | None = None) -> dict:
    """The plan fields present in an argparse namespace (typed, or defaulted where defaults were kept)."""
    return {name: getattr(args, name) for name, _, _ in plan_flags()
            if hasattr(args, name) and (names is None or name in names)}


# -- values -> plan --------------------------------------------------------------------------------------------
def flag(name: str) -> Flag:
    """A plan field's declaration; KeyError for a name that is not a plan field."""
    return TrainPlan.__dataclass_fields__[name].metadata["flag"]


def parse_value(name: str, value):
    flag_ = flag(name)
    return flag_.parse(value) if flag_.parse and value is not None else value


def plan_from_fields(fields: dict | None = None, **more) -> TrainPlan:
    """A TrainPlan from values as typed or read (aliases spelled out, comma lists split); None leaves the default."""
    values = {**(fields or {}), **more}
    known = TrainPlan.__dataclass_fields__
    unknown = [k for k in values if k not in known]
    if unknown:
        raise VramplanError(f"unknown plan field(s): {', '.join(unknown)}",
                            hint="plan fields are " + ", ".join(known))
    return TrainPlan(**{k: parse_value(k, v) for k, v in values.items() if v is not None})


def config_keys(axolotl: bool) -> dict[str, str]:
    """Config key -> plan field, over the tools a file of this kind may use."""
    out: dict[str, str] = {}
    for name, flag, _ in plan_flags():
        for tool in TOOLS:
            if tool == "axolotl" and not axolotl:
                continue
            for key in flag.keys.get(tool, ()):
                out[key] = name
    return out


def from_config(found_by_field: dict[str, dict]) -> dict:
    """Plan fields from config values, grouped by field ({field: {config key: value}}, in file order)."""
    out = {}
    for name, flag, default in plan_flags():
        found = found_by_field.get(name)
        if not found:
            continue
        if flag.read:
            value = flag.read(found)
        else:
            value = _convert(name, list(found.values())[-1], default)
        if value is not None:
            out[name] = value
    return _axolotl_eval_batch(found_by_field, out)


def _axolotl_eval_batch(found_by_field: dict[str, dict], out: dict) -> dict:
    """axolotl evaluates at micro_batch_size when eval_batch_size is not set (its config's default), not at
    transformers' 8."""
    evals, batch = found_by_field.get("eval_batch") or {}, found_by_field.get("batch") or {}
    named = {"eval_batch_size", "per_device_eval_batch_size"} & set(evals)
    if out.get("eval_batch") and not named and "micro_batch_size" in batch and "batch" in out:
        out["eval_batch"] = out["batch"]
    return out


def _convert(name: str, value, default):
    kind = _kind(name)
    if kind is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise VramplanError(f"--config: {name} must be a whole number, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError, OverflowError):
            raise VramplanError(f"--config: {name} must be a whole number, got {value!r}") from None
    if kind is float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise VramplanError(f"--config: {name} must be a number, got {value!r}") from None
        if isinstance(value, bool) or not math.isfinite(number):
            raise VramplanError(f"--config: {name} must be a finite number, got {value!r}")
        return number
    return parse_value(name, value) if kind is not bool else bool(value)


def gpu_defaults(gpu, fields: dict) -> dict:
    """The fields a GPU decides when they were left open: the dtype (bf16 where the card has it, fp16 otherwise)
    and, for fp16 through TRL's SFTTrainer on a quantized model, its way out: the adapters cast back to fp32."""
    out = dict(fields)
    if out.get("trainer") is None and (out.get("gpus") or 1) > 1:
        out["trainer"] = "hf"  # the stack measured over several GPUs
    if out.get("dtype") is None:
        out["dtype"] = gpu.default_dtype
        trainer = out.get("trainer") or TrainPlan.__dataclass_fields__["trainer"].default
        if (out["dtype"] == "fp16" and trainer == "trl" and out.get("quant", "nf4") != "none"
                and out.get("fp32_adapters") is None):
            out["fp32_adapters"] = True
    return out


def on_gpu(plan: TrainPlan, gpu) -> TrainPlan:
    """The plan with the fields a GPU decides set for this one (what fit does for each card it compares)."""
    fields = {f: getattr(plan, f) for f in TrainPlan.__dataclass_fields__ if f not in ("dtype", "fp32_adapters")}
    return plan_from_fields(gpu_defaults(gpu, fields))


def several_gpus(gpus: int) -> dict:
    """The fields a plan moved to this many GPUs takes: several run the plain Trainer (the stack measured there),
    whose adapters are fp32 already."""
    return {"gpus": gpus, **({"trainer": "hf", "fp32_adapters": False} if gpus > 1 else {})}


# -- plan -> words, command ------------------------------------------------------------------------------------
def plan_line(plan: dict) -> str:
    """One line naming a plan: each field's own words, in declaration order."""
    return "".join(flag.show(plan) or "" for _, flag, _ in plan_flags() if flag.show)


def command_args(plan: TrainPlan, skip: tuple[str, ...] = ()) -> list[str]:
    """Flags that give this plan to a command (every field that has a flag and matters for it)."""
    d = plan.to_dict()
    out: list[str] = []
    for name, flag, default in plan_flags():
        if not flag.cli or name in skip or (flag.exported and not flag.exported(d)):
            continue
        value = getattr(plan, name)
        if isinstance(default, bool):
            if value != default:
                out.append(switch_flag(name, default))
        else:
            out += [dash(name), _text(value)]
    return out


def _text(value) -> str:
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def training_arguments(plan: TrainPlan) -> dict:
    """The TrainingArguments the plan's fields set (each field's training_args)."""
    out: dict = {}
    for name, flag, _ in plan_flags():
        if flag.training_args is None:
            continue
        value = getattr(plan, name)
        for key, arg in (flag.training_args(value) if callable(flag.training_args)
                         else {flag.training_args: value}).items():
            # several fields fill one dict argument (gradient_checkpointing_kwargs): merged, not replaced
            out[key] = {**out[key], **arg} if isinstance(arg, dict) and isinstance(out.get(key), dict) else arg
    return out


def tui_keys() -> list[tuple[str, str, str]]:
    """(key, field, label) of every field the TUI edits by key."""
    return [(flag.tui, name, flag.tui_label) for name, flag, _ in plan_flags() if flag.tui]


def targets_text(targets) -> str:
    return targets if isinstance(targets, str) else ",".join(targets)


__all__ = ["ALL_LINEAR", "Flag", "add_arguments", "command_args", "config_keys", "flag", "from_config", "given_fields",
           "parse_value", "plan_from_fields", "plan_line", "positive_int", "targets_text", "training_arguments",
           "tui_keys"]
