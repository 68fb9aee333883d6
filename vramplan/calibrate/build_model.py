"""Save a random-weight checkpoint of a profile, once: `python -m vramplan.calibrate.build_model PROFILE DIR`
(or `--pairs PROFILE DIR PROFILE DIR ...`, several in one process).

Memory does not depend on weight values, so calibration needs no download. Built on the GPU (fast init) in
its own process, so the measured runs start from a clean device.
"""
from __future__ import annotations

import json
import sys
import traceback
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
    dtype = {"float16": torch.float16, "float32": torch.float32}.get(profile["config"].get("torch_dtype"),
                                                                     torch.bfloat16)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    tmp = out.with_name(out.name + ".partial")
    model.save_pretrained(tmp)
    tmp.rename(out)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()


if __name__ == "__main__":
    if sys.argv[1] == "--pairs":  # PROFILE DIR [PROFILE DIR ...] in one process: one import for several builds
        failed = 0
        for i in range(2, len(sys.argv) - 1, 2):
            try:
                build(sys.argv[i], sys.argv[i + 1])
            except Exception:  # the other checkpoints are still wanted
                traceback.print_exc()
                failed += 1
        sys.exit(1 if failed else 0)
    else:
        build(sys.argv[1], sys.argv[2], *(sys.argv[3:4]))
