"""On a GPU: `vramplan train` through TRL's SFTTrainer against the seed 000 recipe, and the capped runs.

    python bench/train_vs_recipe.py --part 1
    python bench/train_vs_recipe.py --part 2
    python bench/train_vs_recipe.py --part 3  # `vramplan train` alone on Llama-3.2-1B (about 1.5 min)
    python bench/train_report.py            # the README table, from the records

Llama-3.1-8B (random weights: memory and speed do not depend on their values), 2048 tokens, effective batch 16.
Each part fits one device call of at most 560 s on an H200 (--budget-s, default 530: a run whose estimate no
longer fits is skipped and recorded as skipped); both build the checkpoint first when /tmp does not hold it.

Part 1 (about 8.5 min on an H200: build 1, `vramplan train` 2.5, three runs 3.5-4.5, the capped run 1):
  1. builds the checkpoint on the GPU in bf16 (save_pretrained to /tmp; a CPU init of 8B takes minutes);
  2. `vramplan train` end to end: verification at the longest sequence, 4 optimizer steps with an evaluation,
     adapter + tokenizer + run_record.json (predicted against measured peak of every verification);
  3. the plan it verified, 3 times in fresh processes through the stack worker (vramplan.calibrate.measure_stack:
     tokens/s of the steps after the first, whole-run NVML peak with the evaluation);
  4. held to 16 GiB (vramplan.train.memory_cap: the allocator capped at 16 GiB less the CUDA context): the longest
     8B sequence that fits 16 GiB through TRL and not through the plain Trainer (the planner finds it on the CPU).
Part 2 (about 8 min: three recipe runs 4-5, the fp16 `vramplan train` 2.5, the plain Trainer capped 1; plus 1 when
        a fresh machine rebuilds the checkpoint):
  1. the seed 000 recipe as written, through SFTTrainer: r=64, micro-batch 2 x 8, paged_adamw_32bit,
     checkpointing, eager attention, evaluation on (its eval batch: TrainingArguments' 8), 3 fresh processes
     (its max_seq_length= and tokenizer= are TRL 0.x's spelling: TRL 1.x takes max_length= and processing_class=);
  2. `vramplan train --gpu T4 --memory-cap 15GiB`: fp16 through the fp32-adapter way out under a T4-sized cap;
  3. the plain Trainer on part 1's capped plan under the same cap (the planner says it does not fit).

Records are appended (never edited) to calibration/train/ (or --records DIR): trl_train_runs.jsonl (`vramplan
train` runs), trl_comparison.jsonl (the 3 + 3 runs) and trl_capped.jsonl; every record holds the GPU and driver, the library
versions, its plan and stack, and its peaks.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.synthetic import build_checkpoint, write_dataset  # noqa: E402
from vramplan import flags  # noqa: E402
from vramplan.calibrate.records import append_run, measured_peak, train_bench_record  # noqa: E402
from vramplan.layout import layout_dict  # noqa: E402
from vramplan.plan import TrainPlan  # noqa: E402
from vramplan.units import GiB  # noqa: E402
from vramplan.workers import worker_command  # noqa: E402

SUITE = "train_vs_recipe_trl"
MODEL, SEQ, EFFECTIVE_BATCH, EVAL_BATCH = "llama-3.1-8b", 2048, 16, 8
STEPS = 4  # the first builds the optimizer state and is not counted; the evaluation runs after step STEPS - 1
CAP16, CAP_T4 = 16 * GiB, 15 * GiB
WORK = Path(tempfile.gettempdir()) / "vramplan-trl-bench"
OUT = ROOT / "calibration" / "train"
RECIPE_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
RECIPE_ARGS = {"max_grad_norm": 0.3, "lr_scheduler_type": "cosine", "learning_rate": 2e-4}
ESTIMATE_S = {"train": 190, "stack": 90, "recipe": 100, "capped": 80}
"""Wall seconds a run may take on an H200, for the schedule only (loading and quantizing 8B is 30-60 s of it);
a kind's measured wall time replaces its estimate once one has run."""


CALL = time.strftime("%Y-%m-%dT%H:%M:%S")
"""This call's id in every record: the report reads each item from the latest call that ran it."""


class Budget:
    def __init__(self, seconds: float):
        self.t0, self.seconds = time.time(), seconds
        self.took: dict[str, float] = {}

    def left(self) -> float:
        return self.seconds - (time.time() - self.t0)

    def allows(self, kind: str) -> bool:
        return self.left() >= self.took.get(kind, ESTIMATE_S[kind])

    def ran(self, kind: str, record: dict) -> dict:
        self.took[kind] = max(self.took.get(kind, 0.0), record.get("wall_s", 0.0))
        return record


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def tag(record: dict, part: int, item: str, repeat: int = 0, **more) -> dict:
    record["bench"] = {**record.get("bench", {}), "suite": SUITE, "call": CALL, "part": part, "item": item,
                       "repeat": repeat,
                       "model": MODEL, "seq": SEQ, "effective_batch": EFFECTIVE_BATCH, **more}
    return record


def skipped(part: int, item: str, why: str, repeat: int = 0) -> dict:
    log(f"skipped {item}: {why}")
    return tag({"status": "skipped", "why": why}, part, item, repeat)


def installed_release() -> str:
    from vramplan.train.sft import installed_trl, run_release
    return run_release(None, installed_trl())


def recipe_plan() -> TrainPlan:
    """shared/seeds/000 as written: its LoraConfig, BitsAndBytesConfig, from_pretrained and SFTConfig."""
    return TrainPlan(rank=64, alpha=64, dropout=0.05, targets=RECIPE_TARGETS, batch=2, grad_accum=8, seq=SEQ,
                     dtype="bf16", optim="paged_adamw_32bit", gradient_checkpointing=True, attn="eager",
                     quant="nf4", double_quant=True, kbit_prepare=True, allocator="default", trainer="trl",
                     trl_version=installed_release(), eval_batch=EVAL_BATCH)


def stack_run(ckpt: Path, plan: TrainPlan, key: str, timeout_s: float, cap: int | None = None,
              args: dict | None = None, steps: int = STEPS) -> dict:
    """One measured run in a fresh process through the plan's stack (the stack worker), with an evaluation
    between the last two steps when the plan evaluates; cap: the process's nvidia-smi footprint at most
    (vramplan.train.memory_cap), as on a card of that size."""
    spec = {"run_key": key, "model": MODEL, "checkpoint": str(ckpt), "plan": layout_dict(plan), "steps": steps,
            "memory_cap_bytes": cap, "stack": {"trainer": plan.trainer, "fp32_adapters": plan.fp32_adapters},
            "eval": ({"batch": plan.eval_batch, "samples": 2 * plan.eval_batch, "at_step": steps - 1}
                     if plan.eval_batch else None), "args": args or {}, "why": key}
    with tempfile.TemporaryDirectory() as tmp:
        spec["output_dir"] = str(Path(tmp) / "trainer")
        (Path(tmp) / "spec.json").write_text(json.dumps(spec))
        t0 = time.time()
        try:
            proc = subprocess.run(worker_command("measure_stack", f"{tmp}/spec.json", f"{tmp}/out.json"),
                                  timeout=max(30, timeout_s), capture_output=True, text=True)
            out = Path(tmp) / "out.json"
            record = (json.loads(out.read_text()) if out.exists() else
                      {"status": "crash", "error": f"exit {proc.returncode}: {proc.stderr[-1500:]}"})
        except subprocess.TimeoutExpired:
            record = {"status": "timeout", "error": f"no result within {timeout_s:.0f} s"}
        record.update(wall_s=round(time.time() - t0, 1), spec_plan=plan.to_dict())
    peak = measured_peak(record) / GiB if record.get("nvml") else float("nan")
    log(f"{key}: {record['status']}, {record.get('tokens_per_s', 0):.0f} tokens/s, peak {peak:.2f} GiB, "
        f"{record['wall_s']:.0f} s" + (f" ({record.get('error', '')[:200]})" if record["status"] != "ok" else ""))
    return record


def train_cli(ckpt: Path, data: Path, out_run: Path, timeout_s: float, *more: str) -> dict:
    """`vramplan train` end to end in its own process; its run record, with what the bench ran."""
    cmd = [sys.executable, "-m", "vramplan", "train", str(ckpt), "--data", str(data), "--seq", str(SEQ),
           "--effective-batch", str(EFFECTIVE_BATCH), "--max-steps", str(STEPS), "--eval-batch", str(EVAL_BATCH),
           "--save-steps", str(STEPS - 1), "--output", str(out_run), "--overwrite", "--json", *more]
    log("running: " + " ".join(cmd[1:]))
    t0 = time.time()
    try:
        proc = subprocess.run(cmd, timeout=max(60, timeout_s), stdout=subprocess.PIPE, text=True)
        code, summary = proc.returncode, proc.stdout
    except subprocess.TimeoutExpired:
        code, summary = None, ""
    record = train_bench_record(out_run, cmd[1:], code)
    if record is None:
        record = {"status": "failed", "exit_code": code, "result": summary[-3000:]}
    else:
        record["status"] = "ok" if code == 0 else "failed"
    from vramplan.gpu_info import detect_gpu
    record.update(wall_s=round(time.time() - t0, 1), gpu_info=detect_gpu())
    for v in record.get("verifications", []):
        log(f"  verification {v['status']}: predicted {v['predicted_peak_bytes'] / GiB:.2f} GiB, measured "
            f"{(v.get('measured_peak_bytes') or 0) / GiB:.2f} GiB ({v.get('error_pct', 'n/a')}%)")
    log(f"train: exit {code}, {record.get('tokens_per_s')} tokens/s, {record['wall_s']:.0f} s")
    return record


def prepare(budget: Budget) -> tuple[Path, Path]:
    import torch
    if not torch.cuda.is_available():
        sys.exit("train_vs_recipe: needs a CUDA GPU")
    WORK.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    ckpt = build_checkpoint(MODEL, WORK, device="cuda")
    log(f"checkpoint {ckpt} ready in {time.time() - t0:.0f} s")
    data = write_dataset(WORK / "train.jsonl", n=EFFECTIVE_BATCH * (STEPS + 2), min_words=SEQ // 2,
                         max_words=SEQ - 16)
    return ckpt, data


def capped_plan(gpu_name: str | None = None) -> tuple[TrainPlan, dict]:
    """The longest 8B sequence that fits 16 GiB through TRL (the fit's plan there), and what the planner says of
    both stacks: computed on the CPU, no GPU involved."""
    from vramplan.planner import Planner
    from vramplan.profiles import find_gpu, find_model
    from vramplan.store.calibrations import Calibrations
    from vramplan.gpu_info import detect_gpu
    gpu, arch = find_gpu(gpu_name or detect_gpu()["name"]), find_model(MODEL)
    planner = Planner(gpu, Calibrations.shipped(), CAP16)
    release = installed_release()
    longest = {tr: planner.longest_seq(arch, flags.plan_from_fields(flags.gpu_defaults(
        gpu, {"trainer": tr, "trl_version": release} if tr == "trl" else {"trainer": tr}))) for tr in ("trl", "hf")}
    base = flags.plan_from_fields(flags.gpu_defaults(gpu, {"trainer": "trl", "trl_version": release}))
    fit = planner.fit(arch, seq=longest["trl"], effective_batch=EFFECTIVE_BATCH, base=base, explain=False)
    plan = fit.recommended.plan
    # accumulation does not change the peak: two micro-batches per step keep the run short
    return plan.with_(grad_accum=2), {"longest_seq_trl": longest["trl"], "longest_seq_hf": longest["hf"],
                                      "fit_plan": plan.to_dict(), "gpu_profile": gpu.name,
                                      "fit_predicted_peak_bytes": fit.recommended.breakdown.peak_bytes}


def verified_plan(record: dict) -> TrainPlan:
    """The plan `vramplan train` verified (its run record); the planner's own choice when the run wrote none."""
    if record.get("plan"):
        return TrainPlan.from_dict(record["plan"])
    from vramplan.gpu_info import detect_gpu, nvml_memory
    from vramplan.planner import Planner
    from vramplan.profiles import find_gpu, find_model
    from vramplan.store.calibrations import Calibrations
    gpu = find_gpu(detect_gpu()["name"])
    planner = Planner(gpu, Calibrations.shipped(), nvml_memory()["free"])
    base = flags.plan_from_fields(flags.gpu_defaults(gpu, {"trainer": "trl", "trl_version": installed_release(),
                                                           "eval_batch": EVAL_BATCH, "allocator": "expandable"}))
    log("train wrote no run record: measuring the planner's own plan")
    return planner.fit(find_model(MODEL), seq=SEQ, effective_batch=EFFECTIVE_BATCH, base=base).recommended.plan


def repeats(part: int, item: str, kind: str, ckpt: Path, plan: TrainPlan, budget: Budget, **run) -> None:
    for i in range(3):
        if not budget.allows(kind):
            append_run(OUT / "trl_comparison.jsonl", skipped(part, item, "the call's time budget", i))
            continue
        rec = budget.ran(kind, stack_run(ckpt, plan, f"{SUITE}-{item}-{i}", budget.left(), **run))
        append_run(OUT / "trl_comparison.jsonl", tag(rec, part, item, i))


def part1(budget: Budget) -> None:
    ckpt, data = prepare(budget)
    record = {}
    if budget.allows("train"):
        record = budget.ran("train", train_cli(ckpt, data, WORK / "run-h200", budget.left()))
        append_run(OUT / "trl_train_runs.jsonl", tag(record, 1, "vramplan train"))
    else:
        append_run(OUT / "trl_train_runs.jsonl", skipped(1, "vramplan train", "the call's time budget"))
    repeats(1, "vramplan", "stack", ckpt, verified_plan(record), budget)
    if not budget.allows("capped"):
        append_run(OUT / "trl_capped.jsonl", skipped(1, "16 GiB cap, TRL", "the call's time budget"))
        return
    plan, found = capped_plan()
    log(f"16 GiB: longest 8B sequence through TRL {found['longest_seq_trl']}, through the plain Trainer "
        f"{found['longest_seq_hf']} (planner)")
    rec = stack_run(ckpt, plan, f"{SUITE}-cap16-trl", budget.left(), cap=CAP16, steps=3)
    append_run(OUT / "trl_capped.jsonl", tag(rec, 1, "16 GiB cap, TRL", planner=found, **predicted(plan, CAP16)))


def predicted(plan: TrainPlan, vram: int | None = None, gpu_name: str | None = None) -> dict:
    """The planner's peak (on a card with room) and required bytes for the plan on this GPU."""
    from vramplan.gpu_info import detect_gpu
    from vramplan.planner import Planner
    from vramplan.profiles import find_gpu, find_model
    from vramplan.store.calibrations import Calibrations
    gpu = find_gpu(gpu_name or detect_gpu()["name"])
    b = Planner(gpu, Calibrations.shipped(), vram).estimate(find_model(MODEL), plan)
    return {"predicted_peak_bytes": b.peak_bytes, "predicted_required_bytes": b.required_bytes}


def part2(budget: Budget) -> None:
    ckpt, data = prepare(budget)
    repeats(2, "seed recipe", "recipe", ckpt, recipe_plan(), budget, args=RECIPE_ARGS)
    if budget.allows("train"):
        record = train_cli(ckpt, data, WORK / "run-t4", budget.left(), "--gpu", "T4", "--memory-cap", "15GiB")
        append_run(OUT / "trl_train_runs.jsonl",
                   tag(record, 2, "vramplan train fp16 T4 cap", asked_cap_bytes=CAP_T4))
    else:
        append_run(OUT / "trl_train_runs.jsonl", skipped(2, "vramplan train fp16 T4 cap", "the call's time budget"))
    if not budget.allows("capped"):
        append_run(OUT / "trl_capped.jsonl", skipped(2, "16 GiB cap, plain Trainer", "the call's time budget"))
        return
    plan, found = capped_plan()
    hf = plan.with_(trainer="hf", fp32_adapters=False)
    rec = stack_run(ckpt, hf, f"{SUITE}-cap16-hf", budget.left(), cap=CAP16, steps=3)
    append_run(OUT / "trl_capped.jsonl", tag(rec, 2, "16 GiB cap, plain Trainer", planner=found,
                                             **predicted(hf, CAP16)))


def part3(budget: Budget) -> None:
    """`vramplan train` alone on a small model it was not tuned on (Llama-3.2-1B, 1024 tokens, effective batch
    8): a verification whose prediction is fixed by the commit before it runs."""
    global MODEL, SEQ, EFFECTIVE_BATCH
    MODEL, SEQ, EFFECTIVE_BATCH = "llama-3.2-1b", 1024, 8
    ckpt, data = prepare(budget)
    record = train_cli(ckpt, data, WORK / "run-small", budget.left())
    append_run(OUT / "trl_train_runs.jsonl", tag(record, 3, "vramplan train llama-3.2-1b"))


def main() -> None:
    global OUT
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", type=int, choices=(1, 2, 3), required=True)
    ap.add_argument("--budget-s", type=float, default=530, help="wall seconds this call may take (default 530)")
    ap.add_argument("--records", type=Path, default=OUT,
                    help="folder the records are appended to (default calibration/train; on a device, $OUT)")
    args = ap.parse_args()
    OUT = args.records
    budget = Budget(args.budget_s)
    log(f"part {args.part}, budget {args.budget_s:.0f} s, records in {OUT}")
    {1: part1, 2: part2, 3: part3}[args.part](budget)
    log(f"part {args.part} done in {time.time() - budget.t0:.0f} s")


if __name__ == "__main__":
    main()
