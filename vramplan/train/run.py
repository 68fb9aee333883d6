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
from .arguments import training_kwargs
from .data import Example
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


def verification_trial(model_path: str, plan: TrainPlan, steps: int = 3, timeout_s: int = 900) -> Trial:
    """A few real optimizer steps at the plan's micro-batch and full sequence length, in a fresh process."""
    spec = {"run_key": "verify", "model": Path(model_path).name, "checkpoint": model_path, "plan": layout_dict(plan),
            "steps": steps}
    with tempfile.TemporaryDirectory() as tmp:
        spec["output_dir"] = str(Path(tmp) / "trainer")
        (Path(tmp) / "spec.json").write_text(json.dumps(spec))
        try:
            subprocess.run(worker_command("measure", f"{tmp}/spec.json", f"{tmp}/out.json"),
                           timeout=timeout_s, capture_output=True, text=True)
        except subprocess.TimeoutExpired:
            return Trial("error", error=f"no result within {timeout_s} s")
        out = Path(tmp) / "out.json"
        if not out.exists():
            return Trial("error", error="the verification process crashed")
        record = json.loads(out.read_text())
    return Trial.from_record(record)


def progress_callback(say=print, every: int = 10):
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.time()

        def on_log(self, args, state, control, logs=None, **kw):
            if state.global_step and state.global_step % every == 0 and logs and "loss" in logs:
                done = state.global_step / max(1, state.max_steps)
                eta = (time.time() - self.t0) * (1 - done) / max(done, 1e-9)
                say(f"step {state.global_step}/{state.max_steps}  loss {logs.get('loss', float('nan')):.4f}  "
                    f"ETA {eta / 60:.1f} min")

    return Progress()


def train_full(model_path: str, examples: list[Example], plan: TrainPlan, output_dir: Path, *, max_steps: int = -1,
               epochs: float = 1.0, save_steps: int | None = None, merge: bool = False, use_cpu: bool = False,
               say=print) -> dict:
    """Train with the transformers Trainer; save adapter, tokenizer and a run record in output_dir."""
    import torch

    from ..calibrate.measure import NvmlPeak, load_for_training

    tok = load_tokenizer(model_path)
    model = None
    for _, model in load_for_training(model_path, layout_dict(plan), device_map={"": "cpu"} if use_cpu else {"": 0}):
        pass
    trainer, data = build_trainer(model, tok, examples, plan, output_dir, max_steps=max_steps, epochs=epochs,
                                  save_steps=save_steps, use_cpu=use_cpu, say=say)
    on_gpu = torch.cuda.is_available() and not use_cpu
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    poller = NvmlPeak() if on_gpu else None
    t0 = time.time()
    with poller or contextlib.nullcontext():
        result = trainer.train()
    elapsed = time.time() - t0
    model.save_pretrained(output_dir / "adapter")
    tok.save_pretrained(output_dir / "adapter")
    record = {"plan": plan.to_dict(), **result_fields(result, data, plan, elapsed),
              "measured_max_allocated": torch.cuda.max_memory_allocated() if on_gpu else None,
              "measured_max_reserved": torch.cuda.max_memory_reserved() if on_gpu else None,
              "measured_nvml_peak_bytes": poller.peak if poller else None,
              "alloc_conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF")}
    if merge:
        record["merged"] = str(merge_adapter(model_path, output_dir / "adapter", output_dir / "merged"))
    if not math.isfinite(result.training_loss):
        say("warning: the training loss is not finite")
    return record


def build_trainer(model, tok, examples: list[Example], plan: TrainPlan, output_dir: Path, *, max_steps: int = -1,
                  epochs: float = 1.0, save_steps: int | None = None, use_cpu: bool = False, say=print):
    """The Trainer `vramplan train` runs, on one GPU or on each rank of several; and the tokenized data."""
    from transformers import Trainer, TrainingArguments
    data = [encode(e, tok, plan.seq) for e in examples]
    kwargs = training_kwargs(plan.to_dict(), str(output_dir / "checkpoints"), max_steps=max_steps, epochs=epochs,
                             use_cpu=use_cpu, save_steps=save_steps, logging_steps=1)
    trainer = Trainer(model=model, args=TrainingArguments(**kwargs), train_dataset=data,
                      data_collator=PadCollator(tok.pad_token_id), callbacks=[progress_callback(say)])
    return trainer, data


def result_fields(result, data, plan: TrainPlan, elapsed: float) -> dict:
    """Steps, loss, time and tokens/s (all GPUs) of a finished trainer.train()."""
    tokens = sum(len(d["input_ids"]) for d in data) * (result.global_step * plan.effective_batch / max(1, len(data)))
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
