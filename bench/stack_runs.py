"""Measured QLoRA runs through a training stack (TRL's SFTTrainer at several releases, or the plain Trainer), with
their evaluation phase, each in a fresh process:

    python bench/stack_runs.py --set NAME [--out calibration/stacks] [--only 0,3] [--list] [--predict FILE]

Each run builds (once) a random-weight checkpoint of its profile with a small word-level tokenizer, then runs
vramplan.runtime.measure_stack. A TRL release other than the installed one is installed from .whl/trl-X.Y.Z/
into its own folder and put first on the worker's path. Records are appended to OUT/<gpu>.jsonl as they land;
runs already recorded there are skipped, so a set can be resumed.
"""
import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.synthetic import save_tokenizer  # noqa: E402
from vramplan.calibrate.sweep import ensure_checkpoint  # noqa: E402
from vramplan.plan import TrainPlan  # noqa: E402
from vramplan.stacks import normalize_release  # noqa: E402
from vramplan.workers import worker_command  # noqa: E402

DEFAULT_RELEASE = "1.16.0"  # the release in .whl/ itself (shared/tools/device-wheels.sh --trl)
EVAL = {"batch": 8, "samples": 16, "at_step": 3}


@dataclass(frozen=True)
class StackRun:
    model: str
    why: str
    plan: TrainPlan
    trainer: str = "trl"
    release: str = DEFAULT_RELEASE
    eval: dict | None = None
    sft: dict = field(default_factory=dict)
    fp32_adapters: bool = False
    cap_bytes: int | None = None
    steps: int = 4
    nvml_poll_steps: int | None = None
    """Stop polling NVML after this many optimizer steps (None: poll throughout), so the later steps time
    the training loop without the poller's thread."""

    def spec(self) -> dict:
        stack = {"trainer": self.trainer, **({"release": self.release} if self.trainer == "trl" else {})}
        if self.sft:
            stack["sft"] = self.sft
        if self.fp32_adapters:
            stack["fp32_adapters"] = True
        # the stack and the evaluation are the spec's own keys; the plan holds the rest, as the records do
        plan = {k: v for k, v in self.plan.to_dict().items() if k not in STACK_FIELDS}
        # full checkpointing as the runs recorded before these fields existed spell it (their keys stay)
        for name, default in (("checkpoint_every", 1), ("checkpoint_offload", False)):
            if plan.get(name) == default:
                del plan[name]
        poll = {"nvml_poll_steps": self.nvml_poll_steps} if self.nvml_poll_steps else {}  # older keys unchanged
        return {"model": self.model, "plan": plan, "steps": self.steps, "stack": stack,
                "eval": self.eval, "cap_bytes": self.cap_bytes, "why": self.why, **poll}

    def key(self, gpu: str) -> str:
        blob = json.dumps({"gpu": gpu, **self.spec()}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


STACK_FIELDS = ("trainer", "trl_version", "fp32_adapters", "eval_batch")
B4 = dict(batch=4, seq=1024)
NOCK = dict(gradient_checkpointing=False)
ALL_RELEASES = ("1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0", "1.5.1", "1.6.0", "1.7.0", "1.8.0", "1.9.2",
                "1.10.0", "1.11.0", "1.12.0", "1.13.0", "1.14.2", "1.15.0", "1.16.0")


def _set_a() -> list[StackRun]:
    runs = []
    for m in ("llama-3.2-1b", "gemma-3-1b", "qwen2.5-0.5b", "phi-3-mini", "gemma-2-2b"):
        runs.append(StackRun(m, "trl 1.16 b4x1024", TrainPlan(**B4)))
    for m in ("llama-3.2-1b", "gemma-3-1b"):
        runs.append(StackRun(m, "trl 1.16 b4x1024 no checkpointing", TrainPlan(**B4, **NOCK)))
    for m in ("llama-3.2-1b", "gemma-3-1b", "phi-3-mini"):
        runs.append(StackRun(m, "trl 1.16 b4x1024 eval b8", TrainPlan(**B4), eval=EVAL))
    for rel in ("1.0.0", "1.4.0", "1.7.0", "1.12.0"):
        for m in ("llama-3.2-1b", "gemma-3-1b"):
            runs.append(StackRun(m, f"trl {rel} b4x1024", TrainPlan(**B4), release=rel))
    runs.append(StackRun("gemma-2-2b", "trl 1.0 b4x1024", TrainPlan(**B4), release="1.0.0"))
    runs.append(StackRun("llama-3.2-1b", "trl 1.0 b4x1024 eval b8", TrainPlan(**B4), release="1.0.0", eval=EVAL))
    for m in ("llama-3.2-1b", "gemma-3-1b", "qwen2.5-0.5b"):
        runs.append(StackRun(m, "hf b4x1024 eval b8", TrainPlan(**B4), trainer="hf", eval=EVAL))
    fp16 = TrainPlan(**B4, dtype="fp16", trainer="hf")  # the plan alone: run through TRL, the first fails there
    runs.append(StackRun("qwen2.5-0.5b", "trl 1.16 fp16", fp16))
    runs.append(StackRun("qwen2.5-0.5b", "trl 1.16 fp16, adapters cast back to fp32", fp16, fp32_adapters=True))
    return runs


def _set_b() -> list[StackRun]:
    runs = _set_a()[18:]  # what the first session of set a did not reach
    for rel in ALL_RELEASES:
        if rel not in ("1.0.0", "1.4.0", "1.7.0", "1.12.0", "1.16.0"):
            runs.append(StackRun("gemma-3-1b", f"trl {rel} b4x1024", TrainPlan(**B4), release=rel))
    for rel in ("1.0.0", "1.7.0"):
        runs.append(StackRun("gemma-3-1b", f"trl {rel} b4x1024 no checkpointing", TrainPlan(**B4, **NOCK), release=rel))
    runs.append(StackRun("gemma-2-2b", "trl 1.16 b4x1024 eval b16", TrainPlan(**B4), eval={**EVAL, "batch": 16}))
    runs.append(StackRun("qwen2.5-1.5b", "trl 1.16 b2x2048", TrainPlan(batch=2, seq=2048)))
    runs.append(StackRun("llama-3.2-3b", "trl 1.7 b2x2048", TrainPlan(batch=2, seq=2048), release="1.7.0"))
    return runs


def _set_validation() -> list[StackRun]:
    """Architectures and shapes the stack model was not made on, predicted first (--predict)."""
    return [
        StackRun("qwen3-1.7b", "validation: trl 1.16 b2x2048", TrainPlan(batch=2, seq=2048)),
        StackRun("smollm2-1.7b", "validation: trl 1.16 b4x1024 eval b8", TrainPlan(**B4), eval=EVAL),
        StackRun("tinyllama-1.1b", "validation: trl 1.12 b4x2048", TrainPlan(batch=4, seq=2048), release="1.12.0"),
        StackRun("qwen2.5-3b", "validation: trl 1.0 b2x1024", TrainPlan(batch=2, seq=1024), release="1.0.0"),
        StackRun("llama-3.2-3b", "validation: trl 1.7 b2x2048", TrainPlan(batch=2, seq=2048), release="1.7.0"),
        StackRun("qwen3-0.6b", "validation: hf b4x1024 eval b8", TrainPlan(**B4), trainer="hf", eval=EVAL),
        StackRun("qwen2.5-1.5b", "validation: trl 1.14 b2x2048 no checkpointing",
                 TrainPlan(batch=2, seq=2048, **NOCK), release="1.14.2"),
        StackRun("gemma-3-1b", "validation: trl 1.15 b4x1024", TrainPlan(**B4), release="1.15.0"),
    ]


def _set_validation2() -> list[StackRun]:
    """A second validation set, predicted (--predict) after the chunked_nll tiles were measured: releases 1.15 and
    the release x architecture pairs no run had."""
    return [
        StackRun("gemma-3-1b", "validation 2: trl 1.15 b4x1024", TrainPlan(**B4), release="1.15.0"),
        StackRun("qwen2.5-0.5b", "validation 2: trl 1.15 b2x2048", TrainPlan(batch=2, seq=2048), release="1.15.0"),
        StackRun("llama-3.2-1b", "validation 2: trl 1.0 b2x2048", TrainPlan(batch=2, seq=2048), release="1.0.0"),
        StackRun("tinyllama-1.1b", "validation 2: trl 1.4 b4x1024", TrainPlan(**B4), release="1.4.0"),
        StackRun("qwen3-1.7b", "validation 2: trl 1.10 b4x1024", TrainPlan(**B4), release="1.10.0"),
        StackRun("phi-3-mini", "validation 2: trl 1.13 b2x1024", TrainPlan(batch=2, seq=1024), release="1.13.0"),
        StackRun("smollm2-1.7b", "validation 2: trl 1.2 b2x1024 no checkpointing",
                 TrainPlan(batch=2, seq=1024, **NOCK), release="1.2.0"),
        StackRun("gemma-2-2b", "validation 2: trl 1.8 b2x2048", TrainPlan(batch=2, seq=2048), release="1.8.0"),
        StackRun("qwen2.5-1.5b", "validation 2: hf b2x1024 eval b8", TrainPlan(batch=2, seq=1024), trainer="hf",
                 eval=EVAL),
    ]


def _set_resplit() -> list[StackRun]:
    """Where TRL's full-logits metrics take one more fp32 logits segment: llama-3.2-1b did not at 4,096 tokens (its
    16-bit logits block is then the size of its fp32 embedding); other token counts and a wider llama."""
    return [
        StackRun("llama-3.2-1b", "resplit: trl 1.0 b2x1024", TrainPlan(batch=2, seq=1024), release="1.0.0"),
        StackRun("llama-3.2-1b", "resplit: trl 1.0 b3x1024", TrainPlan(batch=3, seq=1024), release="1.0.0"),
        StackRun("llama-3.2-3b", "resplit: trl 1.0 b4x1024", TrainPlan(**B4), release="1.0.0"),
        StackRun("qwen2.5-0.5b", "resplit: trl 1.0 b4x1024", TrainPlan(**B4), release="1.0.0"),
    ]


RANKING_JOB = dict(model="llama-3.2-1b", seq=1024, effective_batch=16)
RANKING_PLANS = (
    dict(batch=16, gradient_checkpointing=False), dict(batch=8, gradient_checkpointing=False),
    dict(batch=4, gradient_checkpointing=False), dict(batch=2, gradient_checkpointing=False),
    dict(batch=16), dict(batch=4), dict(batch=1),
    dict(batch=8, gradient_checkpointing=False, rank=64, alpha=128, optim="adamw_torch"),
    dict(batch=4, gradient_checkpointing=False, rank=64, alpha=128, optim="paged_adamw_32bit"),
)
"""Plans fit compares for one job (micro-batch, checkpointing, optimizer, rank), timed through the plain
Trainer, whose step times the speed model is fitted on (bench/speed_ranking.py reports them)."""


def _set_ranking() -> list[StackRun]:
    job = RANKING_JOB
    runs = []
    for kw in RANKING_PLANS:
        plan = TrainPlan(seq=job["seq"], **{"grad_accum": job["effective_batch"] // kw["batch"], **kw})
        runs.append(StackRun(job["model"], "ranking: " + plan_label(plan), plan, trainer="hf", steps=8))
    return runs


def plan_label(plan: TrainPlan) -> str:
    return (f"b{plan.batch}x{plan.grad_accum} r{plan.rank} {plan.optim} "
            f"{'checkpointing' if plan.gradient_checkpointing else 'no checkpointing'}")


SETS = {"a": _set_a, "b": _set_b, "validation": _set_validation, "validation2": _set_validation2,
        "resplit": _set_resplit,
        "ranking": _set_ranking}


def stack_plan(run: StackRun) -> TrainPlan:
    """The plan vramplan estimates for a run: its stack, release and evaluation batch."""
    return run.plan.with_(trainer=run.trainer, trl_version=normalize_release(run.release),
                          fp32_adapters=run.fp32_adapters, eval_batch=(run.eval or {}).get("batch", 0))


def predict(runs: list[StackRun], profile: str, nvml_name: str) -> dict:
    """Predictions keyed by the run keys the runs will have on the GPU NVML names nvml_name."""
    from vramplan.planner import Planner
    from vramplan.profiles import find_gpu, find_model
    from vramplan.store.calibrations import Calibrations
    planner = Planner(find_gpu(profile), Calibrations.package())  # the shipped fits alone
    out = {}
    for r in runs:
        b = planner.estimate(find_model(r.model), stack_plan(r))
        out[r.key(nvml_name)] = {
            "model": r.model, "why": r.why, "peak_bytes": b.peak_bytes, "train_peak_bytes": b.train_peak_bytes,
            "peak_phase": b.peak_phase, "peak_allocated_bytes": b.peak_allocated_bytes}
    return out


def gpu_name() -> str:
    from vramplan.gpu_info import detect_gpu
    return detect_gpu()["name"]


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def checkpoint(model: str, cache: Path) -> Path:
    out = ensure_checkpoint(model, cache)
    if not (out / "tokenizer.json").exists():
        save_tokenizer(out)
    return out


def release_path(release: str) -> str | None:
    """The folder holding this TRL release, first on the worker's path (None: the installed one)."""
    if release == DEFAULT_RELEASE:
        return None
    target = Path(tempfile.gettempdir()) / f"trl-{release}"
    if not (target / "trl").exists():
        wheels = sorted((ROOT / ".whl" / f"trl-{release}").glob("*.whl"))
        if not wheels:
            raise SystemExit(f"no wheel for trl {release}: run shared/tools/device-wheels.sh --trl-release {release}")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--target", str(target), *map(str, wheels)], check=True)
    return str(target)


def preload_stack() -> bool:
    """Import the stack here, without touching CUDA, so that forked workers (run_one(fork=True)) start without
    re-importing it; each child is still a fresh process with its own CUDA context. False: CUDA was already
    initialized in this process, or it runs threads, where a fork is unsafe."""
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # torch.cuda.is_available() without CUDA init
    import torch
    import datasets  # noqa: F401
    import peft  # noqa: F401
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer  # noqa: F401
    from trl import SFTConfig, SFTTrainer  # noqa: F401
    import vramplan.calibrate.measure_stack  # noqa: F401
    return not torch.cuda.is_initialized() and threading.active_count() == 1  # a thread's held lock would hang a fork


def fork_call(fn, args: tuple, log_path: Path, timeout_s: float) -> int:
    """fn(*args) in a forked child with stdout and stderr to log_path; its exit code (1 if it raised).
    subprocess.TimeoutExpired past timeout_s, the child killed."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the parent's code
        code = 1
        try:
            fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            sys.stdout = open(1, "w", buffering=1, closefd=False)  # also when sys.stdout was not fd 1
            sys.stderr = open(2, "w", buffering=1, closefd=False)
            code = int(fn(*args) or 0)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    deadline = time.time() + timeout_s
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.time() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise subprocess.TimeoutExpired(f"fork {pid}", timeout_s)
        time.sleep(0.1)


def _measure_stack_main(spec_path: str, out_path: str) -> int:
    from vramplan.calibrate.measure_stack import main as worker
    return worker([spec_path, out_path])


def _worker(spec_path: Path, out_path: Path, timeout_s: int, env: dict, fork: bool) -> tuple[int, str]:
    """The measure_stack worker on one spec: a fresh interpreter, or a fork of this one (its stack preloaded)."""
    if fork:
        log = out_path.with_suffix(".log")
        code = fork_call(_measure_stack_main, (str(spec_path), str(out_path)), log, timeout_s)
        return code, log.read_text()[-1500:] if log.exists() else ""
    proc = subprocess.run(worker_command("measure_stack", str(spec_path), str(out_path)),
                          timeout=timeout_s, capture_output=True, text=True, env=env)
    return proc.returncode, proc.stderr[-1500:]


def run_one(run: StackRun, ckpt: Path, key: str, timeout_s: int, fork: bool = False) -> dict:
    """One measured run. fork: in a fork of this process (preload_stack() first; the installed TRL only)."""
    spec = {**run.spec(), "run_key": key, "checkpoint": str(ckpt)}
    env = dict(os.environ)
    extra = release_path(run.release) if run.trainer == "trl" else None
    if extra:
        env["PYTHONPATH"] = os.pathsep.join([extra, env.get("PYTHONPATH", "")])
    with tempfile.TemporaryDirectory() as tmp:
        spec["output_dir"] = str(Path(tmp) / "trainer")
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "record.json"
        spec_path.write_text(json.dumps(spec))
        t0 = time.time()
        try:
            code, err = _worker(spec_path, out_path, timeout_s, env, fork and not extra)
            record = json.loads(out_path.read_text()) if out_path.exists() else {
                "status": "crash", "error": f"exit {code}: {err}"}
        except subprocess.TimeoutExpired:
            record = {"status": "timeout", "error": f"no result within {timeout_s} s"}
    record["worker"] = "fork" if fork and not extra else "process"
    for k, v in spec.items():
        if k not in ("checkpoint", "output_dir"):
            record.setdefault(k, v)
    record["wall_s"] = round(time.time() - t0, 2)
    return record


def validated_set_args(doc: str, out: Path, cache: Path, budget_s: float) -> argparse.ArgumentParser:
    """The options of a run set with a validation subset (bench/moe_runs.py, bench/partial_ckpt_runs.py)."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--out", default=str(out))
    ap.add_argument("--only", default=None, help="comma list of run indices")
    ap.add_argument("--list", action="store_true", help="print the runs and exit")
    ap.add_argument("--predict", default=None, help="write the validation runs' predictions to this file and exit")
    ap.add_argument("--all", action="store_true", help="with --predict: every run, not only the validation ones")
    ap.add_argument("--gpu", default="H200", help="the GPU profile the runs are (or will be) made on")
    ap.add_argument("--nvml-name", default="NVIDIA H200", help="with --predict: that GPU's name as NVML gives it")
    ap.add_argument("--cache", default=str(cache))
    ap.add_argument("--budget-s", type=float, default=budget_s, help="stop before a run that would end past this")
    ap.add_argument("--timeout", type=int, default=150, help="per run, seconds")
    return ap


def run_validated_set(doc: str, out: Path, cache: Path, budget_s: float, runs, predict, measure) -> int:
    """main() of a run set with a validation subset: its options, then --list / --predict, or measure(items, args,
    t0) of the runs chosen."""
    t0 = time.time()
    a = validated_set_args(doc, out, cache, budget_s).parse_args()
    items, code = select_list_or_predict(a, runs(), predict)
    return code if code is not None else measure(items, a, t0)


def select_list_or_predict(a: argparse.Namespace, items: list, predict) -> tuple[list, int | None]:
    """--only's runs; with --list or --predict, what they print or write and the exit code (None: measure)."""
    if a.only:
        items = [items[int(i)] for i in a.only.split(",")]
    if a.list:
        for i, m in enumerate(items):
            print(i, m.run.model, m.run.trainer, "validation" if m.validation else "", m.run.why)
        return items, 0
    if a.predict:
        chosen = items if a.all else [m for m in items if m.validation]
        Path(a.predict).write_text(json.dumps(predict(chosen, a.gpu, a.nvml_name), indent=1) + "\n")
        return items, 0
    return items, None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", required=True, choices=sorted(SETS))
    ap.add_argument("--out", default=str(ROOT / "calibration" / "stacks"))
    ap.add_argument("--only", default=None, help="comma list of run indices")
    ap.add_argument("--list", action="store_true", help="print the runs and exit")
    ap.add_argument("--predict", default=None, help="write the set's predictions on --gpu to this file and exit")
    ap.add_argument("--gpu", default="H200", help="with --predict: the GPU profile the runs will be made on")
    ap.add_argument("--nvml-name", default="NVIDIA H200", help="with --predict: that GPU's name as NVML gives it")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "vramplan-checkpoints"))
    ap.add_argument("--timeout", type=int, default=300)
    a = ap.parse_args()
    runs = SETS[a.set]()
    if a.only:
        runs = [runs[int(i)] for i in a.only.split(",")]
    if a.predict:
        Path(a.predict).write_text(json.dumps(predict(runs, a.gpu, a.nvml_name), indent=1) + "\n")
        return 0
    if a.list:
        for i, r in enumerate(runs):
            print(i, r.model, r.trainer, r.release if r.trainer == "trl" else "", r.why)
        return 0
    gpu = gpu_name()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{slug(gpu)}.jsonl"
    done = {json.loads(line).get("run_key") for line in path.open()} if path.exists() else set()
    todo = [(r, r.key(gpu)) for r in runs if r.key(gpu) not in done]
    print(f"{gpu}: {len(runs) - len(todo)} of {len(runs)} recorded in {path}; {len(todo)} to go", flush=True)
    for i, (run, key) in enumerate(todo, 1):
        ckpt = checkpoint(run.model, Path(a.cache))
        record = run_one(run, ckpt, key, a.timeout)
        with path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        peaks = record.get("nvml", {}).get("phase_peaks", {})
        shown = " ".join(f"{k} {v / 2**30:.2f}" for k, v in peaks.items() if k != "load")
        print(f"[{i}/{len(todo)}] {run.model} {run.trainer} {run.release} {run.why}: {record['status']} "
              f"{shown} GiB {record['wall_s']} s {record.get('error', '')[:200]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
