"""One measured multi-GPU QLoRA run, one process per GPU under `accelerate launch`:

    accelerate launch --config_file accelerate.yaml -m vramplan.calibrate.rank_measure SPEC.json OUT_DIR

Every rank writes OUT_DIR/rank<r>.json: its own NVML and torch peaks per step, so per-rank memory is measured,
not inferred from rank 0. `vramplan train --gpus` verifies its plan with this, on every rank. The recipes are
training/distributed.py's: FSDP (quant storage = compute dtype, no prepare_model_for_kbit_training, reentrant
checkpointing) or DDP (the one-GPU recipe on each rank's own GPU).
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
                            bnb_4bit_quant_storage=dtype) if plan["quant"] != "none" else None
    model = AutoModelForCausalLM.from_pretrained(checkpoint, quantization_config=qc, dtype=dtype,
                                                 attn_implementation=plan["attn"])
    if plan["gradient_checkpointing"]:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
        model.enable_input_require_grads()
    targets = plan["targets"]
    lora = LoraConfig(r=plan["rank"], lora_alpha=plan["alpha"], lora_dropout=plan["dropout"], bias="none",
                      target_modules=targets if isinstance(targets, str) else list(targets), task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def load_rank_model(checkpoint: str, plan: dict, local_rank: int):
    """The model this rank trains, by the plan's recipe; on DDP the whole standard-recipe model on its own GPU."""
    if plan.get("parallel", "fsdp") == "fsdp":
        return load_sharded_qlora(checkpoint, plan)
    from .measure import load_for_training
    model = None
    for _, model in load_for_training(checkpoint, plan, device_map={"": local_rank}):
        pass
    return model


def rank_identity() -> tuple[int, int, int]:
    env = os.environ
    return int(env.get("RANK", 0)), int(env.get("LOCAL_RANK", 0)), int(env.get("WORLD_SIZE", 1))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(open(argv[0]).read())
    out_dir = argv[1]
    plan = spec["plan"]
    from ..gpu_info import detect_gpu, nvml_memory, nvml_used, software_versions
    from .measure import (
        NvmlPeak,
        apply_allocator,
        make_trainer,
        phase_recorder,
        record_failure,
        record_steps,
        start_trace,
        torch_mem,
        write_trace,
    )
    apply_allocator(plan)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    rank, local, world = rank_identity()
    record = {"rank": rank, "local_rank": local, "world_size": world, "gpu": detect_gpu(local),
              "versions": software_versions(), "status": "running", "alloc_conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF"),
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
        tracing = bool(spec.get("trace_path")) and rank == 0
        if tracing:
            start_trace()
        with poller:
            t0 = time.perf_counter()
            model = load_rank_model(spec["checkpoint"], plan, local)
            record["load_s"] = time.perf_counter() - t0
            record["torch"]["after_peft"] = torch_mem()
            recorder = phase_recorder(index=local)
            trainer = make_trainer(model, plan, spec["steps"], spec["output_dir"], [recorder])
            trainer.train()
            torch.cuda.synchronize()
        if tracing:
            write_trace(spec["trace_path"], local)
        record_steps(record, recorder.steps)
        record["tokens_per_s"] = plan["batch"] * plan.get("grad_accum", 1) * plan["seq"] / record["step_time_s"]
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
