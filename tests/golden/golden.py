"""Golden predictions: every catalog model x a grid of plans x a few GPUs, estimated with a frozen copy of the
fitted calibration (tests/golden/calibration), so that refits do not move them.

    python -m tests.golden.golden          # rewrite predictions.jsonl (only when a change is intended)

The file's first line is a header: the value every plan field had by default when the file was made. Entries
store every plan field explicitly; the loader fills a field an entry lacks from the header, and refuses a plan
field that neither names, so a new field must be given the value that reproduces the old behaviour.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
CALIBRATION = str(HERE / "calibration")
PREDICTIONS = HERE / "predictions.jsonl"
GPUS = (("T4", 1), ("RTX-4090", 1), ("A100-80GB", 1), ("H100-80GB", 1), ("RTX-4090", 2))

ONE_GPU_VARIANTS = (
    {}, {"rank": 8}, {"rank": 64}, {"batch": 4, "grad_accum": 4}, {"seq": 512}, {"seq": 8192},
    {"gradient_checkpointing": False}, {"optim": "adamw_torch_fused"}, {"optim": "adamw_8bit"},
    {"optim": "adamw_torch"}, {"optim": "adafactor"}, {"optim": "sgd"}, {"optim": "paged_adamw_32bit"},
    {"dtype": "other"}, {"quant": "fp4"}, {"quant": "int8"}, {"quant": "none"}, {"double_quant": False},
    {"attn": "eager"}, {"allocator": "expandable"}, {"targets": "two"}, {"dropout": 0.0},
    {"kbit_prepare": False}, {"batch": 2, "seq": 4096, "gradient_checkpointing": False, "allocator": "expandable"},
)
TWO_GPU_VARIANTS = (
    {}, {"parallel": "ddp"}, {"offload": True, "optim": "adamw_torch"}, {"allocator": "expandable"},
    {"parallel": "ddp", "batch": 2}, {"seq": 4096}, {"parallel": "ddp", "allocator": "expandable"},
    {"parallel": "ddp", "quant": "int8"}, {"gradient_checkpointing": False, "seq": 1024},
)


def plan_defaults() -> dict:
    """TrainPlan's defaults, on the plain Trainer: the stack the grid was first made on."""
    from vramplan.plan import TrainPlan
    return {**{f.name: _jsonable(f.default) for f in dataclasses.fields(TrainPlan)}, "trainer": "hf"}


def _jsonable(value):
    return list(value) if isinstance(value, tuple) else value


MOE_UNMEASURED = ({"quant": "int8"}, {"quant": "none"}, {"kbit_prepare": False})
"""Variants memory/experts.py refuses for Mixture-of-Experts models (as it refuses several GPUs): not in the grid."""


def _plan_fields(model, gpu, count: int, variant: dict) -> dict:
    fields = {**plan_defaults(), "dtype": gpu.default_dtype, "gpus": count, **variant}
    if fields["dtype"] == "other":
        fields["dtype"] = "fp16" if gpu.default_dtype == "bf16" else "bf16"
    if fields["targets"] == "two":
        fields["targets"] = list(model.linear_names[:2])
    if model.experts is not None and "dropout" not in variant:  # the dropout vramplan plans an MoE model with
        from vramplan.search_moe import for_model
        targets = tuple(fields["targets"]) if isinstance(fields["targets"], list) else fields["targets"]
        chosen = for_model(model, {**fields, "targets": targets, "dropout": None})["dropout"]
        fields["dropout"] = fields["dropout"] if chosen is None else chosen
    return fields


def predict(model, gpu, fields: dict) -> dict:
    from vramplan.memory import estimate
    from vramplan.plan import TrainPlan
    from vramplan.store.calibrations import calibration_for
    kw = dict(fields)
    if isinstance(kw["targets"], list):
        kw["targets"] = tuple(kw["targets"])
    b = estimate(model, gpu, TrainPlan(**kw), calibration_for(gpu, CALIBRATION))
    return {"peak_bytes": b.peak_bytes, "required_bytes": b.required_bytes, "peak_phase": b.peak_phase,
            "components": b.components, "peak_allocated_bytes": b.peak_allocated_bytes,
            "peak_reserved_bytes": b.peak_reserved_bytes, "managed_bytes": b.managed_bytes,
            "fragmentation_event_bytes": b.fragmentation_event_bytes, "trainable_params": b.trainable_params}


def cases():
    from vramplan.profiles import find_gpu, model_catalog
    for model in model_catalog():
        for gpu_name, count in GPUS:
            if model.experts is not None and count > 1:
                continue
            gpu = find_gpu(gpu_name)
            for variant in (ONE_GPU_VARIANTS if count == 1 else TWO_GPU_VARIANTS):
                if model.experts is None or variant not in MOE_UNMEASURED:
                    yield model, gpu, count, _plan_fields(model, gpu, count, variant)


def load() -> tuple[dict, list[dict]]:
    """(header, entries), each entry's plan completed from the header's defaults."""
    from vramplan.plan import TrainPlan
    lines = PREDICTIONS.read_text().splitlines()
    header = json.loads(lines[0])
    defaults = header["plan_defaults"]
    missing = [f.name for f in dataclasses.fields(TrainPlan) if f.name not in defaults]
    if missing:
        raise KeyError(f"plan fields {missing} are not in the golden header: add the value each had before it "
                       "existed (the one that reproduces these predictions) to plan_defaults")
    entries = []
    for line in lines[1:]:
        entry = json.loads(line)
        entry["plan"] = {**defaults, **entry["plan"]}
        entries.append(entry)
    return header, entries


def generate() -> int:
    rows = [{"model": m.name, "gpu": g.name, "gpus": n, "plan": fields, **predict(m, g, fields)}
            for m, g, n, fields in cases()]
    header = {"golden": "vramplan predictions", "calibration": "tests/golden/calibration/fits",
              "plan_defaults": plan_defaults()}
    PREDICTIONS.write_text("\n".join(json.dumps(r, sort_keys=True, separators=(",", ":")) for r in [header] + rows) + "\n")
    return len(rows)


if __name__ == "__main__":
    print(f"wrote {generate()} predictions to {PREDICTIONS}")
