"""One measured run through a training stack, with its evaluation phase:
`python -m vramplan.runtime.measure_stack SPEC.json OUT.json`.

The recipe as the seeds write it: from_pretrained with BitsAndBytesConfig, prepare_model_for_kbit_training, peft
LoRA, then TRL's SFTTrainer (the installed release) or the plain transformers Trainer, optionally evaluating every
`eval.at_step` optimizer steps. The NVML peak is kept per phase: `train` (optimizer steps before the first
evaluation), `eval` (each evaluation loop) and `after_eval` (training steps after one), so the training footprint
and the whole-run peak can be told apart. The dataset is random token ids, already tokenized, every token a label.
"""
from __future__ import annotations

import os
import sys
import time

from ..gpu_info import detect_gpu, nvml_memory, nvml_used
from .measure import (SCHEMA, NvmlPeak, load_measured, phase_recorder, record_failure, record_steps, start_cuda,
                      torch_mem, worker_main)
from ..train.arguments import training_kwargs
from ..train.memory_cap import cap_process
from ..train.sft import (cast_adapters_to_fp32, evaluation_kwargs, sft_config_kwargs, sft_trainer,
                         stack_versions, trainable_dtypes)

class PhasedNvmlPeak(NvmlPeak):
    """NvmlPeak that keeps the peak of each phase the training loop is in."""

    def __init__(self, interval_s: float = 0.002, index: int = 0):
        self.phase = "load"
        self.peaks: dict[str, int] = {}
        super().__init__(interval_s, index)

    def sample(self):
        used = nvml_used(self.index)
        self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), used)

    def switch(self, phase: str):
        self.sample()
        self.phase = phase
        self.sample()

    @property
    def peak(self) -> int:
        return max(self.peaks.values(), default=0)


def eval_recorder(poller: PhasedNvmlPeak, poll_steps: int | None = None, record: dict | None = None):
    import torch
    from transformers import TrainerCallback

    class EvalRecorder(TrainerCallback):
        """Switches the poller's phase around each evaluation loop and records its torch peaks; with poll_steps,
        stops the poller after that many optimizer steps (record["nvml_polled_steps"])."""

        def __init__(self):
            self.evals: list[dict] = []
            self._t0 = None

        def on_train_begin(self, args, state, control, **kw):
            poller.switch("train")

        def on_step_end(self, args, state, control, **kw):
            if poll_steps and state.global_step == poll_steps and record is not None:
                poller.stop()
                record["nvml_polled_steps"] = poll_steps
            if control.should_evaluate:  # set by DefaultFlowCallback, which runs before user callbacks
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                self._t0 = time.perf_counter()
                self.evals.append({"step": state.global_step, "start_allocated": torch.cuda.memory_allocated(),
                                   "start_reserved": torch.cuda.memory_reserved()})
                poller.switch("eval")

        def on_evaluate(self, args, state, control, metrics=None, **kw):
            torch.cuda.synchronize()
            cur = self.evals[-1] if self.evals else {}
            cur.update({"max_allocated": torch.cuda.max_memory_allocated(),
                        "max_reserved": torch.cuda.max_memory_reserved(), "nvml_used": nvml_used(poller.index),
                        "time_s": time.perf_counter() - (self._t0 or time.perf_counter()),
                        "nvml_peak": poller.peaks.get("eval", 0)})
            poller.switch("after_eval")

    return EvalRecorder()


def random_token_dataset(n: int, seq: int, vocab: int, seed: int):
    """n sequences of random token ids as a datasets.Dataset (already tokenized: the stack skips tokenizing)."""
    import torch
    from datasets import Dataset
    g = torch.Generator().manual_seed(seed)
    return Dataset.from_dict({"input_ids": torch.randint(0, vocab, (n, seq), generator=g).tolist()})


def stack_kwargs(spec: dict, plan: dict, output_dir: str) -> dict:
    """TrainingArguments or SFTConfig keyword arguments for the plan, with the evaluation schedule of the spec."""
    steps = spec.get("steps", 4)
    trl = spec["stack"]["trainer"] != "hf"
    kw = (sft_config_kwargs if trl else training_kwargs)(plan, output_dir, max_steps=steps)
    ev = spec.get("eval")
    if ev:
        kw.update(evaluation_kwargs(ev["batch"], ev.get("at_step", steps - 1)))
        for key in ("prediction_loss_only", "eval_accumulation_steps"):
            if ev.get(key) is not None:
                kw[key] = ev[key]
    kw.update(spec.get("args", {}))
    if trl:
        kw.update(spec["stack"].get("sft", {}))
    return kw


def stack_arguments(spec: dict, plan: dict, output_dir: str):
    """The TrainingArguments or SFTConfig of stack_kwargs."""
    kw = stack_kwargs(spec, plan, output_dir)
    if spec["stack"]["trainer"] == "hf":
        from transformers import TrainingArguments
        return TrainingArguments(**kw)
    from trl import SFTConfig
    return SFTConfig(**kw)


def make_stack_trainer(spec: dict, model, tokenizer, callbacks):
    plan = spec["plan"]
    steps = spec.get("steps", 4)
    vocab = model.config.get_text_config().vocab_size if hasattr(model.config, "get_text_config") \
        else model.config.vocab_size
    n_train = plan["batch"] * plan.get("grad_accum", 1) * steps
    ev = spec.get("eval")
    output_dir = spec.get("output_dir", "/tmp/vramplan-measure")
    if spec["stack"]["trainer"] == "hf":
        from transformers import Trainer
        from .measure import RandomTokens
        train = RandomTokens(n_train, plan["seq"], vocab)
        evals = RandomTokens(ev["samples"], plan["seq"], vocab, seed=1) if ev else None
        return Trainer(model=model, args=stack_arguments(spec, plan, output_dir), train_dataset=train,
                       eval_dataset=evals, callbacks=list(callbacks))
    train = random_token_dataset(n_train, plan["seq"], vocab, seed=0)
    evals = random_token_dataset(ev["samples"], plan["seq"], vocab, seed=1) if ev else None
    return sft_trainer(model, tokenizer, stack_kwargs(spec, plan, output_dir), train, evals, callbacks)


def param_bytes_by_dtype(model) -> dict:
    """Bytes of every parameter by dtype (uint8: bitsandbytes' 4-bit storage; what stays 16-bit or fp32 shows)."""
    out: dict[str, int] = {}
    for p in model.parameters():
        key = str(p.dtype).replace("torch.", "")
        out[key] = out.get(key, 0) + p.numel() * p.element_size()
    return out


def _train(spec: dict, record: dict, poller: PhasedNvmlPeak) -> None:
    import torch
    from transformers import AutoTokenizer
    plan = spec["plan"]
    nvml, trace = record["nvml"], record["torch"]
    model = load_measured(spec, plan, record)
    tokenizer = AutoTokenizer.from_pretrained(spec["checkpoint"])
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    recorder = phase_recorder()
    evals = eval_recorder(poller, spec.get("nvml_poll_steps"), record)
    trainer = make_stack_trainer(spec, model, tokenizer, [recorder, evals])
    record["trainable_dtypes_after_build"] = trainable_dtypes(trainer.model)
    if spec["stack"].get("fp32_adapters"):  # the way out of TRL's bf16 cast for fp16 training
        cast_adapters_to_fp32(trainer.model)
        record["trainable_dtypes_cast_back"] = trainable_dtypes(trainer.model)
    record["trainable_params"] = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    record["param_bytes_by_dtype"] = param_bytes_by_dtype(trainer.model)
    record["train_args"] = {k: v for k, v in trainer.args.to_dict().items() if k in ARG_KEYS}
    torch.cuda.synchronize()
    nvml["after_build"], trace["after_build"] = nvml_used(), torch_mem()
    try:
        trainer.train()
    finally:
        if recorder.steps:
            record_steps(record, recorder.steps)
        record["evals"] = evals.evals
        record["checkpointed_layers"] = checkpointed_layer_count(trainer.model)
    torch.cuda.synchronize()
    nvml["after_train"] = nvml_used()
    record["tokens_per_s"] = plan["batch"] * plan.get("grad_accum", 1) * plan["seq"] / record["step_time_s"]


def checkpointed_layer_count(model) -> int | None:
    """Decoder layers the Trainer left checkpointed (it sets them in train(), from every_n_layers); None where this
    transformers has no GradientCheckpointingLayer."""
    try:
        from transformers.modeling_layers import GradientCheckpointingLayer
    except ImportError:
        return None
    return sum(1 for m in model.modules() if isinstance(m, GradientCheckpointingLayer) and m.gradient_checkpointing)


ARG_KEYS = ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps", "optim",
            "bf16", "fp16", "gradient_checkpointing", "gradient_checkpointing_kwargs", "eval_strategy", "eval_steps",
            "prediction_loss_only", "eval_accumulation_steps", "max_length", "max_seq_length", "loss_type",
            "packing", "padding_free", "use_liger_kernel", "completion_only_loss", "assistant_only_loss",
            "activation_offloading", "label_smoothing_factor", "max_steps")


def run(spec: dict) -> dict:
    """Measure one plan through its stack. spec: run_key, model, checkpoint, plan, steps, cap_bytes, stack
    ({"trainer": "trl"|"hf", "sft": extra SFTConfig keys, "fp32_adapters": bool}), memory_cap_bytes (nvidia-smi's
    footprint of the process at most; cap_bytes caps the allocator alone), eval ({"batch", "samples",
    "at_step", "prediction_loss_only", "eval_accumulation_steps"} or None), args (extra TrainingArguments),
    nvml_poll_steps (stop polling NVML after that many optimizer steps, so that the later ones time the step
    without the poller)."""
    versions = stack_versions()
    record = {"schema": SCHEMA, "run_key": spec["run_key"], "model": spec["model"], "plan": spec["plan"],
              "stack": spec["stack"], "eval": spec.get("eval"), "args": spec.get("args", {}),
              "steps_requested": spec.get("steps", 4), "cap_bytes": spec.get("cap_bytes"), "status": "running",
              "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "gpu": detect_gpu(), "versions": versions,
              "alloc_conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF"), "why": spec.get("why")}
    record["nvml"] = {"before_init": nvml_used()}
    record["torch"] = {}
    poller = PhasedNvmlPeak()
    try:
        start_cuda(spec, record)
        if spec.get("memory_cap_bytes"):  # the process's nvidia-smi footprint, context included
            record["memory_cap"] = cap_process(spec["memory_cap_bytes"], record["nvml"]["before_init"])
        with poller:
            _train(spec, record, poller)
        record["status"] = "ok"
    except Exception as exc:  # an OOM or a stack's refusal is a result too
        record_failure(record, exc)
    finally:
        record["nvml"]["peak"] = poller.peak
        record["nvml"]["phase_peaks"] = dict(poller.peaks)
        record["nvml"]["end"] = nvml_used()
        record["gpu"]["nvml_reserved_bytes"] = nvml_memory()["reserved"]
    return record


def main(argv=None) -> int:
    return worker_main(run, argv)


if __name__ == "__main__":
    sys.exit(main())
