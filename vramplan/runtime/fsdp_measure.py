"""One measured FSDP QLoRA run, one process per GPU under `accelerate launch`:

    accelerate launch --config_file fsdp.yaml -m vramplan.runtime.fsdp_measure SPEC.json OUT_DIR

Every rank writes OUT_DIR/rank<r>.json: its own NVML and torch peaks per step, so per-rank memory is measured,
not inferred from rank 0. The recipe is training/distributed.py's (quant storage = compute dtype, no
prepare_model_for_kbit_training, reentrant checkpointing).
"""
from __future__ import annotations

import json
import os
import sys
import time


def load_sharded_qlora(checkpoint: str, plan: dict):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    dtype = torch.bfloat16 if plan["dtype"] == "bf16" else torch.float16
    qc = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=plan["quant"],
                            bnb_4bit_use_double_quant=plan["double_quant"], bnb_4bit_compute_dtype=dtype,
                            bnb_4bit_quant_storage=dtype)
    model = AutoModelForCausalLM.from_pretrained(checkpoint, quantization_config=qc, dtype=dtype,
                                                 attn_implementation=plan["attn"])
    if plan["gradient_checkpointing"]:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
        model.enable_input_require_grads()
    targets = plan["targets"]
    lora = LoraConfig(r=plan["rank"], lora_alpha=plan["alpha"], lora_dropout=plan["dropout"], bias="none",
                      target_modules=targets if isinstance(targets, str) else list(targets), task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(open(argv[0]).read())
    out_dir = argv[1]
    plan = spec["plan"]
    from .measure import (NvmlPeak, apply_allocator, make_trainer, phase_recorder, record_failure, record_steps,
                          torch_mem)
    from .gpu_info import detect_gpu, nvml_memory, nvml_used, software_versions
    apply_allocator(plan)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    rank, local = int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0))
    record = {"rank": rank, "local_rank": local, "world_size": int(os.environ.get("WORLD_SIZE", 1)),
              "gpu": detect_gpu(local), "versions": software_versions(), "status": "running",
              "nvml": {"before_init": nvml_used(local)}, "torch": {}}
    import torch
    poller = NvmlPeak(index=local)
    try:
        torch.cuda.set_device(local)
        torch.zeros(1, device="cuda")
        torch.cuda.synchronize()
        record["nvml"]["after_init"] = nvml_used(local)
        total = torch.cuda.get_device_properties(local).total_memory
        if spec.get("cap_bytes"):
            torch.cuda.set_per_process_memory_fraction(spec["cap_bytes"] / total, local)
        with poller:
            t0 = time.perf_counter()
            model = load_sharded_qlora(spec["checkpoint"], plan)
            record["load_s"] = time.perf_counter() - t0
            record["torch"]["after_peft"] = torch_mem()
            recorder = phase_recorder()
            trainer = make_trainer(model, plan, spec["steps"], spec["output_dir"], [recorder])
            trainer.train()
            torch.cuda.synchronize()
        record_steps(record, recorder.steps)
        record["status"] = "ok"
    except Exception as exc:
        record_failure(record, exc)
    finally:
        record["nvml"]["peak"] = poller.peak
        record["nvml"]["end"] = nvml_used(local)
        record["gpu"]["nvml_reserved_bytes"] = nvml_memory(local)["reserved"]
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(record, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
