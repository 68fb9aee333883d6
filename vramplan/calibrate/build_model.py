"""Save a random-weight checkpoint of a profile, once: `python -m vramplan.calibrate.build_model NAME DIR`.

Memory does not depend on weight values, so calibration needs no download. Built on the GPU (fast init) in
its own process, so the measured runs start from a clean device.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def hf_config(profile: dict):
    from transformers import AutoConfig
    cfg = dict(profile["config"])
    model_type = cfg.pop("model_type")
    cfg.pop("torch_dtype", None)
    return AutoConfig.for_model(model_type, **cfg)


def build(profile_path: str, out_dir: str, device: str = "cuda") -> None:
    import torch
    from transformers import AutoModelForCausalLM
    out = Path(out_dir)
    if (out / "config.json").exists():
        return
    profile = json.loads(Path(profile_path).read_text())
    config = hf_config(profile)
    dtype = torch.float16 if profile["config"].get("torch_dtype") == "float16" else torch.bfloat16
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    tmp = out.with_name(out.name + ".partial")
    model.save_pretrained(tmp)
    tmp.rename(out)


if __name__ == "__main__":
    build(sys.argv[1], sys.argv[2], *(sys.argv[3:4]))
