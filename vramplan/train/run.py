"""The real `vramplan train`: tokenize with response-only labels, verify the plan on the GPU, train, save."""
from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import tempfile
import time
from pathlib import Path

from ..layout import layout_dict
from ..plan import TrainPlan
from ..workers import worker_command
from .data import Example
from .progress import progress_callback
from .sft import run_kwargs, sft_trainer, stack_fields, trainable_dtypes
from .verify import Trial

IGNORE = -100


def load_tokenizer(model_path: str):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model_path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def encode(example: Example, tok, seq: int | None = None) -> dict:
    """input_ids and labels; labels are IGNORE on the prompt so only the response is learned."""
    eos = tok.eos_token or ""
    if example.kind == "messages" or (example.kind == "alpaca" and tok.chat_template):
        messages = ([{"role": r, "content": c} for r, c in example.messages] if example.kind == "messages" else
                    [{"role": "user", "content": example.prompt}, {"role": "assistant", "content": example.response}])
        if tok.chat_template:
            prompt = tok.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
            full = tok.apply_chat_template(messages, tokenize=False)
        else:
            prompt = "".join(f"{m['role']}: {m['content']}\n" for m in messages[:-1]) + "assistant: "
            full = prompt + messages[-1]["content"] + eos
        prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        ids = tok(full, add_special_tokens=False)["input_ids"]
        n_prompt = len(prompt_ids) if ids[:len(prompt_ids)] == prompt_ids else _common_prefix(ids, prompt_ids)
    else:
        prompt_ids = tok(example.prompt)["input_ids"] if example.prompt else []
        body = tok(example.response + eos, add_special_tokens=not example.prompt)["input_ids"]
        ids, n_prompt = prompt_ids + body, len(prompt_ids)
    labels = [IGNORE] * n_prompt + ids[n_prompt:]
    if seq:
        ids, labels = ids[:seq], labels[:seq]
    return {"input_ids": ids, "labels": labels}


def _common_prefix(a, b) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


class PadCollator:
    """Pads a batch to its longest example (labels with IGNORE); memory stays within the verified worst case."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, batch):
        import torch
        n = max(len(b["input_ids"]) for b in batch)
        ids = [b["input_ids"] + [self.pad_id] * (n - len(b["input_ids"])) for b in batch]
        labels = [b["labels"] + [IGNORE] * (n - len(b["labels"])) for b in batch]
        mask = [[1] * len(b["input_ids"]) + [0] * (n - len(b["input_ids"])) for b in batch]
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "attention_mask": torch.tensor(mask)}


def verification_trial(model_path: str, plan: TrainPlan, steps: int = 3, timeout_s: int = 900,
                       memory_cap_bytes: int | None = None) -> Trial:
    """A few real optimizer steps at the plan's micro-batch and full sequence length, in a fresh process, through
    the plan's stack (the stack worker), with an evaluation loop between the last two steps when the plan
    evaluates; with memory_cap_bytes, within that footprint (vramplan.train.memory_cap)."""
    spec = {"run_key": "verify", "model": Path(model_path).name, "checkpoint": model_path, "plan": layout_dict(plan),
            "steps": steps, "memory_cap_bytes": memory_cap_bytes,
            "stack": {"trainer": plan.trainer, "fp32_adapters": plan.fp32_adapters},
            "eval": ({"batch": plan.eval_batch, "samples": plan.eval_batch, "at_step": steps - 1}
                     if plan.eval_batch else None)}
    with tempfile.TemporaryDirectory() as tmp:
        spec["output_dir"] = str(Path(tmp) / "trainer")
        (Path(tmp) / "spec.json").write_text(json.dumps(spec))
        try:
            subprocess.run(worker_command("measure_stack", f"{tmp}/spec.json", f"{tmp}/out.json"),
                           timeout=timeout_s, capture_output=True, text=True)
        except subprocess.TimeoutExpired:
            return Trial("error", error=f"no result within {timeout_s} s")
        out = Path(tmp) / "out.json"
        if not out.exists():
            return Trial("error", error="the verification process crashed")
        record = json.loads(out.read_text())
    return Trial.from_record(record)


def train_full(model_path: str, examples: list[Example], plan: TrainPlan, output_dir: Path, *, max_steps: int = -1,
               epochs: float = 1.0, save_steps: int | None = None, merge: bool = False, use_cpu: bool = False,
               predicted_tokens_per_s: float | None = None, progress_stream=None,
               memory_cap_bytes: int | None = None) -> dict:
    """Train through the plan's stack (TRL's SFTTrainer or the plain Trainer); save adapter, tokenizer and the
    run's measurements (the caller writes them into run_record.json)."""
    import torch

    from ..calibrate.measure import NvmlPeak, load_for_training

    on_gpu = torch.cuda.is_available() and not use_cpu
    cap = before = None
    if on_gpu:
        from ..gpu_info import nvml_used
        before = nvml_used()  # what the GPU held before this process started CUDA
    if on_gpu and memory_cap_bytes:  # before the model is loaded: the cap holds for the whole run
        from .memory_cap import cap_process
        cap = cap_process(memory_cap_bytes, before)
    tok = load_tokenizer(model_path)
    model = None
    for _, model in load_for_training(model_path, layout_dict(plan), device_map={"": "cpu"} if use_cpu else {"": 0}):
        pass
    data = [encode(e, tok, plan.seq) for e in examples]
    progress = progress_callback(tokens_per_step(data, plan), predicted_tokens_per_s, progress_stream)
    trainer = build_trainer(model, tok, data, plan, output_dir, max_steps=max_steps, epochs=epochs,
                            save_steps=save_steps, use_cpu=use_cpu, callbacks=[progress])
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    poller = NvmlPeak() if on_gpu else None
    t0 = time.time()
    with poller or contextlib.nullcontext():
        result = trainer.train()
    elapsed = time.time() - t0
    trainer.model.save_pretrained(output_dir / "adapter")
    tok.save_pretrained(output_dir / "adapter")
    record = {"plan": plan.to_dict(), "stack": stack_fields(plan), "trainable_dtypes": trainable_dtypes(trainer.model),
              **result_fields(result, data, plan, elapsed),
              "measured_max_allocated": torch.cuda.max_memory_allocated() if on_gpu else None,
              "measured_max_reserved": torch.cuda.max_memory_reserved() if on_gpu else None,
              "measured_nvml_peak_bytes": poller.peak if poller else None, "nvml_before_bytes": before,
              "alloc_conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF"), "memory_cap": cap}
    if merge:
        record["merged"] = str(merge_adapter(model_path, output_dir / "adapter", output_dir / "merged"))
    if not math.isfinite(result.training_loss):
        record["warning"] = "the training loss is not finite"
    return record


def eval_split(data: list[dict], eval_batch: int) -> tuple[list[dict], list[dict]]:
    """(train, evaluation): every tenth example is held out when the plan evaluates (the seed recipe's 10%
    split), at least one; none otherwise."""
    if not eval_batch or len(data) < 2:
        return data, []
    held = set(range(9, len(data), 10)) or {len(data) - 1}
    return [d for i, d in enumerate(data) if i not in held], [d for i, d in enumerate(data) if i in held]


def build_trainer(model, tok, data: list[dict], plan: TrainPlan, output_dir: Path, *, max_steps: int = -1,
                  epochs: float = 1.0, save_steps: int | None = None, use_cpu: bool = False, callbacks=()):
    """The trainer `vramplan train` runs over tokenized data: TRL's SFTTrainer (one GPU) or the plain Trainer
    (one GPU, or each rank of several). With an evaluation batch, it evaluates every save_steps steps."""
    train, evals = eval_split(data, plan.eval_batch)
    kwargs = run_kwargs(plan, str(output_dir / "checkpoints"), evaluate=bool(evals), eval_steps=save_steps or 200,
                        max_steps=max_steps, epochs=epochs, use_cpu=use_cpu, save_steps=save_steps, logging_steps=1)
    if plan.trainer == "trl":
        from datasets import Dataset
        trainer = sft_trainer(model, tok, kwargs, Dataset.from_list(train),
                              Dataset.from_list(evals) if evals else None, callbacks, fp32_adapters=plan.fp32_adapters)
    else:
        from transformers import Trainer, TrainingArguments
        trainer = Trainer(model=model, args=TrainingArguments(**kwargs), train_dataset=train,
                          eval_dataset=evals or None, data_collator=PadCollator(tok.pad_token_id),
                          callbacks=list(callbacks))
    from transformers.trainer_callback import PrinterCallback
    trainer.remove_callback(PrinterCallback)  # the progress bar says what it printed
    return trainer


def tokens_per_step(data: list[dict], plan: TrainPlan) -> float:
    """Tokens an optimizer step trains on average (all GPUs): the data's mean length x the effective batch."""
    return sum(len(d["input_ids"]) for d in data) / max(1, len(data)) * plan.effective_batch


def result_fields(result, data, plan: TrainPlan, elapsed: float) -> dict:
    """Steps, loss, time and tokens/s (all GPUs) of a finished trainer.train()."""
    tokens = tokens_per_step(data, plan) * result.global_step
    return {"steps": result.global_step, "train_loss": result.training_loss, "seconds": round(elapsed, 2),
            "tokens_per_s": round(tokens / elapsed, 1) if elapsed else None}


def merge_adapter(model_path: str, adapter: Path, out: Path) -> Path:
    """A 16-bit model with the adapter merged in (loaded on the CPU, not quantized)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    base = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.bfloat16, device_map={"": "cpu"})
    merged = PeftModel.from_pretrained(base, adapter).merge_and_unload()
    merged.save_pretrained(out)
    return out
