"""One measured QLoRA run, in its own process: `python -m vramplan.calibrate.measure SPEC.json OUT.json`.

The standard recipe, as users run it: from_pretrained with BitsAndBytesConfig, prepare_model_for_kbit_training,
peft LoRA, transformers Trainer with the chosen optimizer. The model is a random-weight checkpoint built from a
profile (memory does not depend on weight values). Records NVML and torch memory at every stage.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback

from ..gpu_info import detect_gpu, nvml_memory, nvml_used, software_versions

SCHEMA = 1


class NvmlPeak:
    """Samples device memory in a thread: the peak nvidia-smi would have shown."""

    def __init__(self, interval_s: float = 0.002, index: int = 0):
        self.interval_s, self.index = interval_s, index
        self._peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self):
        self._peak = max(self._peak, nvml_used(self.index))

    @property
    def peak(self) -> int:
        return self._peak

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            time.sleep(self.interval_s)

    def __enter__(self):
        self._thread.start()
        return self

    def stop(self):
        """End the sampling thread: a 2 ms poller may take the GIL from a launch-bound training loop, so the steps
        timed for speed can run without it (their peaks stay in the allocator's counters)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def __exit__(self, *exc):
        self.stop()
        self.sample()


TRACE_MIN_BYTES = 8 << 20  # the blocks that fragment the cache; smaller ones only add noise


def start_trace():
    import torch
    torch.cuda.memory._record_memory_history(max_entries=500_000, stacks="python")


def write_trace(path: str, device: int = 0) -> None:
    """The allocator's history of large blocks and every segment, with the user-code frames that asked for them."""
    import torch
    snap = torch.cuda.memory._snapshot()
    torch.cuda.memory._record_memory_history(enabled=None)
    events = []
    for e in snap["device_traces"][device]:
        if e["action"].startswith("segment") or e["size"] >= TRACE_MIN_BYTES or e["action"] == "oom":
            frames = [f"{f['filename'].rsplit('/', 2)[-1]}:{f['line']}:{f['name']}" for f in e.get("frames", [])
                      if "/torch/" not in f["filename"] or "/torch/nn/functional" in f["filename"]][:4]
            events.append({"action": e["action"], "addr": e["addr"], "size": e["size"], "frames": frames,
                           "stream": e.get("stream", 0)})
    segments = [{"addr": s["address"], "size": s["total_size"], "allocated": s["allocated_size"],
                 "stream": s.get("stream", 0), "blocks": [(b["size"], b["state"]) for b in s["blocks"]]}
                for s in snap["segments"] if s["device"] == device]
    with open(path, "w") as f:
        json.dump({"events": events, "segments": segments}, f)


def torch_mem() -> dict:
    import torch
    return {"allocated": torch.cuda.memory_allocated(), "reserved": torch.cuda.memory_reserved(),
            "max_allocated": torch.cuda.max_memory_allocated(), "max_reserved": torch.cuda.max_memory_reserved()}


def training_arguments(plan: dict, output_dir: str, max_steps: int, use_cpu: bool = False):
    """Plan -> TrainingArguments, the mapping `vramplan train` uses too."""
    from transformers import TrainingArguments

    from ..train.arguments import training_kwargs
    return TrainingArguments(**training_kwargs(plan, output_dir, max_steps=max_steps, use_cpu=use_cpu))


def quantization_config(plan: dict):
    import torch
    from transformers import BitsAndBytesConfig
    compute = torch.bfloat16 if plan["dtype"] == "bf16" else torch.float16
    if plan["quant"] in ("nf4", "fp4"):
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=plan["quant"],
                                  bnb_4bit_use_double_quant=plan["double_quant"], bnb_4bit_compute_dtype=compute)
    if plan["quant"] == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return None


def lora_config(plan: dict):
    from peft import LoraConfig
    targets = plan["targets"]
    return LoraConfig(r=plan["rank"], lora_alpha=plan["alpha"], lora_dropout=plan["dropout"],
                      target_modules=targets if isinstance(targets, str) else list(targets), bias="none",
                      task_type="CAUSAL_LM")


class RandomTokens:
    """Sequences of random token ids, labels = inputs (every token trains; no padding)."""

    def __init__(self, n: int, seq: int, vocab: int, seed: int = 0):
        import torch
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, vocab, (n, seq), generator=g)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i].clone()}


def phase_recorder(mark_steps: bool = False, index: int = 0):
    import torch
    from transformers import TrainerCallback

    class PhaseRecorder(TrainerCallback):
        """Per optimizer step: allocator peaks of forward+loss, backward, optimizer; reserved; NVML; time."""

        def __init__(self, mark_steps: bool = False):
            self.steps, self._cur, self.mark_steps = [], None, mark_steps

        def forward_hook(self, module, args, output):
            if self._cur is not None:
                self._cur["forward_max_allocated"] = max(self._cur.get("forward_max_allocated", 0),
                                                         torch.cuda.max_memory_allocated())

        def on_step_begin(self, args, state, control, **kw):
            torch.cuda.synchronize()
            if self.mark_steps:  # a block the trace shows at each step's start
                torch.empty(TRACE_MIN_BYTES, dtype=torch.uint8, device="cuda")
            torch.cuda.reset_peak_memory_stats()
            self._cur = {"t0": time.perf_counter(), "start_allocated": torch.cuda.memory_allocated()}

        def on_pre_optimizer_step(self, args, state, control, **kw):
            torch.cuda.synchronize()
            self._cur["backward_max_allocated"] = torch.cuda.max_memory_allocated()
            self._cur["max_reserved_before_step"] = torch.cuda.max_memory_reserved()

        def on_optimizer_step(self, args, state, control, **kw):
            torch.cuda.synchronize()
            self._cur["optimizer_max_allocated"] = torch.cuda.max_memory_allocated()

        def on_step_end(self, args, state, control, **kw):
            torch.cuda.synchronize()
            cur = self._cur
            cur["time_s"] = time.perf_counter() - cur.pop("t0")
            cur["max_allocated"] = torch.cuda.max_memory_allocated()
            cur["max_reserved"] = torch.cuda.max_memory_reserved()
            cur["end_allocated"] = torch.cuda.memory_allocated()
            cur["nvml_used"] = nvml_used(index)
            self.steps.append(cur)
            self._cur = None

    return PhaseRecorder(mark_steps)


def record_steps(record: dict, steps: list[dict]) -> None:
    """Per-step peaks into record["torch"], and the median steady-state step time (step 1 builds the state)."""
    record["torch"]["steps"] = steps
    record["torch"]["max_allocated"] = max(s["max_allocated"] for s in steps)
    record["torch"]["max_reserved"] = max(s["max_reserved"] for s in steps)
    times = sorted(s["time_s"] for s in steps[1:]) or [steps[0]["time_s"]]
    record["step_time_s"] = times[len(times) // 2]


def record_failure(record: dict, exc: Exception) -> None:
    """An OOM or crash is a result too: its status and error, and the traceback of anything but an OOM."""
    import torch
    oom = isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()
    record["status"] = "oom" if oom else "error"
    record["error"] = f"{type(exc).__name__}: {str(exc)[:600]}"
    if not oom:
        record["traceback"] = traceback.format_exc()[-3000:]


def apply_allocator(plan: dict) -> None:
    """Set PYTORCH_CUDA_ALLOC_CONF for the plan; read once, when CUDA is first used, so call before that."""
    from ..plan import ALLOC_CONF
    conf = ALLOC_CONF[plan.get("allocator", "default")]
    if conf:
        os.environ["PYTORCH_CUDA_ALLOC_CONF"] = conf
    else:
        os.environ.pop("PYTORCH_CUDA_ALLOC_CONF", None)


def run(spec: dict) -> dict:
    """Measure one plan. spec: model (profile name), checkpoint (dir), plan (TrainPlan dict), steps, cap_bytes."""
    record = {"schema": SCHEMA, "run_key": spec["run_key"], "model": spec["model"], "plan": spec["plan"],
              "steps_requested": spec.get("steps", 4), "cap_bytes": spec.get("cap_bytes"), "status": "running",
              "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "gpu": detect_gpu(), "versions": software_versions(),
              "alloc_conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF")}
    nvml = record["nvml"] = {"before_init": nvml_used()}
    trace = record["torch"] = {}
    plan = spec["plan"]
    poller = NvmlPeak()
    try:
        start_cuda(spec, record)
        if spec.get("trace_path"):
            start_trace()
        with poller:
            _train(spec, plan, record, nvml, trace)
        record["status"] = "ok"
    except Exception as exc:  # record it, don't lose the sweep
        record_failure(record, exc)
    finally:
        if spec.get("trace_path"):
            write_trace(spec["trace_path"])
        nvml["peak"] = poller.peak
        nvml["end"] = nvml_used()
        mem = nvml_memory()
        record["gpu"]["nvml_reserved_bytes"] = mem["reserved"]
    return record


def load_for_training(checkpoint: str, plan: dict, device_map=None):
    """The standard recipe up to the trainable model: from_pretrained (+ BitsAndBytesConfig),
    prepare_model_for_kbit_training, peft LoRA. Yields ("loaded", model) then ("peft", model) so callers can measure between stages."""
    import torch
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if plan["dtype"] == "bf16" else torch.float16
    qc = quantization_config(plan)
    model = AutoModelForCausalLM.from_pretrained(
        checkpoint, quantization_config=qc, device_map=device_map, attn_implementation=plan["attn"],
        dtype="auto" if qc is not None else dtype)
    yield "loaded", model
    if qc is not None and plan.get("kbit_prepare", True):  # a plan that skips it is measured without it
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=plan["gradient_checkpointing"],
            gradient_checkpointing_kwargs={"use_reentrant": False})
    elif plan["gradient_checkpointing"]:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model = get_peft_model(model, lora_config(plan))
    yield "peft", model


def make_trainer(model, plan: dict, steps: int, output_dir: str, callbacks=(), use_cpu: bool = False):
    from transformers import Trainer
    n = plan["batch"] * plan.get("grad_accum", 1) * steps * plan.get("gpus", 1)  # each rank gets its share
    data = RandomTokens(n, plan["seq"], model.config.vocab_size)
    args = training_arguments(plan, output_dir, steps, use_cpu=use_cpu)
    return Trainer(model=model, args=args, train_dataset=data, callbacks=list(callbacks))


def load_measured(spec: dict, plan: dict, record: dict):
    """The recipe's trainable model on GPU 0, with NVML and torch memory recorded after the load and after peft."""
    import torch
    t0 = time.perf_counter()
    model = None
    for stage, model in load_for_training(spec["checkpoint"], plan, device_map={"": 0}):
        torch.cuda.synchronize()
        key = "after_load" if stage == "loaded" else "after_peft"
        record["nvml"][key], record["torch"][key] = nvml_used(), torch_mem()
        if stage == "loaded":
            record["load_s"] = time.perf_counter() - t0
    return model


def _train(spec, plan, record, nvml, trace):
    import torch

    model = load_measured(spec, plan, record)
    record["trainable_params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)

    steps = spec.get("steps", 4)
    recorder = phase_recorder(mark_steps=bool(spec.get("trace_path")))
    model.register_forward_hook(recorder.forward_hook)
    trainer = make_trainer(model, plan, steps, spec.get("output_dir", "/tmp/vramplan-measure"), [recorder])
    trainer.train()
    torch.cuda.synchronize()
    record_steps(record, recorder.steps)
    nvml["after_train"] = nvml_used()
    record["tokens_per_s"] = plan["batch"] * plan.get("grad_accum", 1) * plan["seq"] / record["step_time_s"]


def start_cuda(spec: dict, record: dict) -> None:
    """Create the CUDA context (its cost is NVML's after_init minus before_init) and apply the spec's cap."""
    import torch
    torch.cuda.init()
    torch.zeros(1, device="cuda")
    torch.cuda.synchronize()
    record["nvml"]["after_init"] = nvml_used()
    record["gpu"]["torch_total_bytes"] = torch.cuda.get_device_properties(0).total_memory
    if spec.get("cap_bytes"):
        torch.cuda.set_per_process_memory_fraction(spec["cap_bytes"] / record["gpu"]["torch_total_bytes"])


def worker_main(run_one, argv=None) -> int:
    """A measuring worker's command line: SPEC.json OUT.json, the allocator set before CUDA starts."""
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(open(argv[0]).read())
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    apply_allocator(spec["plan"])
    record = run_one(spec)
    with open(argv[1], "w") as f:
        json.dump(record, f, indent=1)
    return 0


def main(argv=None) -> int:
    return worker_main(run, argv)


if __name__ == "__main__":
    sys.exit(main())
