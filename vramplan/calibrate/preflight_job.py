"""A job that trains under the PreflightCallback, in its own process, and prints its record as one JSON line:
`python -m vramplan.calibrate.preflight_job SPEC_JSON` (bench/preflight_demo.py runs it)."""
from __future__ import annotations

import json
import sys
import time


def run(spec: dict) -> dict:
    import torch

    from ..gpu_info import detect_gpu, software_versions
    from ..integrations.transformers_callback import PreflightCallback, PreflightError
    from ..layout import layout_dict
    from ..present import said
    from .measure import NvmlPeak, load_for_training, make_trainer
    plan = layout_dict(spec["plan"])
    rec = {"job": spec["job"], "model": spec["model"], "plan": spec["plan"], "gpu": detect_gpu(),
           "versions": software_versions(), "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    cb = PreflightCallback(gpu="auto")
    with NvmlPeak() as peak:
        model = None
        for _, model in load_for_training(spec["checkpoint"], plan, device_map={"": 0}):
            pass
        trainer = make_trainer(model, plan, spec["steps"], spec["output_dir"], callbacks=[cb])
        try:
            trainer.train()
            rec["outcome"] = "trained"
        except PreflightError as exc:
            rec.update(outcome="stopped by pre-flight", message=str(exc))
        except torch.OutOfMemoryError as exc:
            rec.update(outcome="oom (not caught by pre-flight)", message=str(exc)[:500])
    rec["steps_done"] = trainer.state.global_step
    rec["nvml_peak"] = peak.peak
    v = cb.verdict
    if v is not None:
        rec.update(predicted_peak_bytes=v.peak_bytes, predicted_required_bytes=v.required_bytes,
                   capacity_bytes=v.capacity_bytes, fits=v.fits, advice=said(v.advice))
    return rec


def crash_record(job: str, stderr: str) -> dict:
    """The record of a job whose process died before it printed one."""
    return {"job": job, "outcome": "crash", "error": stderr[-2000:]}


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))))
