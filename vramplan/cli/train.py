"""`vramplan train`: plan for this GPU, verify the plan with real steps, then train."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .. import decisions as D
from .. import flags
from ..allocator_choice import plan_allocator_numbers
from ..decisions import reason
from ..errors import VramplanError
from ..plan import TrainPlan
from ..planner import Planner
from ..profiles import find_model
from ..margin import SAFETY_MARGIN
from ..store.calibrations import Calibrations
from ..train.sft import installed_trl, run_kwargs, run_release, stack_fields
from ..stacks import default_trl_release, trl_profile
from ..train.data import load_examples
from ..train.seqlen import choose_seq
from ..layout import check_card
from ..units import GiB, parse_size
from ..verdict import resolve_gpu
from ..flags import positive_int
from .common import (add_plan_args, check_context, given_plan_fields, positive_float, print_json, progress_to_stderr,
                     vram_from_args)
from ..present import model_json, plan_line, say
from ..present.display import card_words
from ..present.reasons import fit_reasons
from ..workers import WORKERS


def register(sub) -> None:
    p = sub.add_parser("train", help="plan, verify on the GPU, then train",
                       description="Plan for the GPU found (or named), verify the plan with a few real steps at the "
                                   "longest sequence (stepping down if it runs out of memory), then run the full "
                                   "QLoRA training and save the adapter, tokenizer and a run record.")
    p.add_argument("model", metavar="MODEL", help="local model folder, or a catalog name / hub id (downloads)")
    p.add_argument("--data", required=True, help="JSON Lines or JSON: alpaca, chat `messages`, or `text` records")
    p.add_argument("--output", type=Path, default=Path("vramplan-run"), help="output folder (default vramplan-run)")
    p.add_argument("--gpu", default="auto", help="auto (detected, free memory) or a catalog name")
    p.add_argument("--seq", default="auto", help="sequence length, or auto (from the data's token lengths)")
    p.add_argument("--effective-batch", type=positive_int("--effective-batch"), default=16)
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=positive_float("--epochs"), default=1.0,
                        help="passes over the data (default 1; fractions allowed)")
    length.add_argument("--max-steps", type=positive_int("--max-steps"), default=None)
    p.add_argument("--save-steps", type=positive_int("--save-steps"), default=200, help="adapter checkpoints")
    p.add_argument("--merge", action="store_true", help="also write a merged 16-bit model")
    p.add_argument("--overwrite", action="store_true", help="allow writing into an existing output folder")
    p.add_argument("--dry-run", action="store_true", help="print the plan and training arguments; no GPU, no torch")
    p.add_argument("--vram", default=None, help="plan for this much memory instead of what the GPU has free")
    p.add_argument("--memory-cap", default=None, metavar="SIZE",
                   help="keep verification and training within SIZE as nvidia-smi shows it (PyTorch's allocator "
                        "capped at SIZE less the CUDA context) and plan for no more: rehearse a smaller card's "
                        "run on a larger GPU, e.g. --gpu T4 --memory-cap 15GiB")
    p.add_argument("--json", action="store_true",
                   help="one JSON object on stdout (the dry run's plan, or the run's outcome); progress on stderr")
    add_plan_args(p, only_given=True, skip=("seq",))
    p.set_defaults(func=run)


def model_source(name: str):
    """(architecture, what from_pretrained loads)."""
    arch = find_model(name)
    local = Path(name).expanduser()
    return arch, str(local.resolve() if local.is_dir() else (local.parent if local.is_file() else arch.hub_id or name))


def run(args) -> int:
    if not args.json:
        return _run(args)[0]
    # a real run launches worker processes that inherit file descriptor 1: point it at stderr too
    with progress_to_stderr(fd_level=not args.dry_run):
        code, result = _run(args)
    print_json(result)
    return code


def check_output(out: Path, overwrite: bool, dry_run: bool) -> str | None:
    """The output folder is checked before any work: a path that cannot be a folder is refused; an existing,
    non-empty folder is never written into without --overwrite (a dry run, which writes nothing, only says so)."""
    if out.exists() and not out.is_dir():
        raise VramplanError(f"--output {out}: is a file, not a folder", hint="choose a folder path")
    for parent in out.resolve().parents:  # the nearest existing ancestor is where the folder will be made
        if parent.exists():
            if not parent.is_dir():
                raise VramplanError(f"--output {out}: {parent} is a file, so no folder can be made under it",
                                    hint="choose a folder path")
            if not out.exists() and not os.access(parent, os.W_OK | os.X_OK):
                raise VramplanError(f"--output {out}: {parent} is not writable", hint="choose a writable folder")
            break
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        problem = f"--output {out}: exists and is not empty"
        if not dry_run:
            raise VramplanError(problem, hint="choose another folder or --overwrite")
        return problem + "; the run will stop there unless --overwrite"
    return None


def _run(args) -> tuple[int, dict]:
    out = args.output
    output_note = check_output(out, args.overwrite, args.dry_run)
    arch, source = model_source(args.model)
    examples = load_examples(args.data)  # every record checked before any GPU work
    given = given_plan_fields(args, skip=("seq",))  # train's own --seq is a number or auto
    gpus = given.get("gpus", 1)
    stack_note = pin_stack(given, args.dry_run)
    gpu, capacity = resolve_gpu(args.gpu, vram_from_args(args), count=gpus)
    planner = Planner(gpu, Calibrations.shipped(), capacity)
    cap = parse_size(args.memory_cap, "--memory-cap") if args.memory_cap else None
    if cap and gpus > 1:
        raise VramplanError("--memory-cap: the multi-GPU launch has no allocator cap", hint="use one GPU")
    if cap and cap < planner.capacity_bytes:
        planner, capacity = Planner(gpu, Calibrations.shipped(), cap), cap
    seq, seq_note = resolve_seq(args, source, examples, arch)
    context_note = check_context(arch, seq) if args.seq != "auto" else None  # auto is capped at the context
    if args.effective_batch % gpus:
        raise VramplanError(f"--effective-batch {args.effective_batch} does not split evenly over {gpus} GPUs",
                            hint=f"use a multiple of {gpus}")
    candidates, result = plan_candidates(args, planner, arch, seq, given)
    plan = candidates[0]
    allocators = plan_allocator_numbers(plan, lambda p: planner.estimate(arch, p))
    summary = {"model": arch.summary(), **model_json(arch), "source": source,
               "data": {"file": str(args.data), "examples": len(examples)},
               "gpu": gpu.summary(), "gpus": gpus, "capacity_bytes": planner.capacity_bytes, "seq": seq, "seq_note": seq_note,
               "context_note": context_note, "plan": plan.to_dict(), "stack": stack_summary(plan, stack_note),
               "fallbacks": [c.to_dict() for c in candidates[1:]], "safety_margin": SAFETY_MARGIN,
               "allocator": {**allocators, "given": "allocator" in given}, "memory_cap_bytes": cap, "output": str(out),
               "output_note": output_note}
    say_plan(summary, result, len(candidates) - 1)
    if args.dry_run:
        b = planner.estimate(arch, plan)  # what the first verification will be checked against
        summary["predicted_peak_bytes"], summary["predicted_required_bytes"] = b.peak_bytes, b.required_bytes
        print(f"predicted: nvidia-smi peak {b.peak_bytes / GiB:.2f} GiB on a card with room, needs "
              f"{b.required_bytes / GiB:.2f} GiB ({b.peak_phase} phase)")
        return 0, dry_run(args, plan, summary)
    if gpus > 1:
        record = _train_multi(args, arch, source, planner, candidates, out)
    else:
        record = _train(args, arch, source, examples, planner, candidates, out)
    return 0, {**summary, "dry_run": False, "run_record": str(out / "run_record.json"),
               "adapter": str(out / "adapter"), "record": record}


def pin_stack(given: dict, dry_run: bool) -> str | None:
    """Train plans with the stack it runs: TRL's SFTTrainer at the installed release on one GPU (--trainer hf:
    the plain Trainer; several GPUs run the plain Trainer). A dry run where TRL is not installed plans the
    release asked for (or the newest modelled) and says so."""
    if given.get("trainer") is None and given.get("gpus", 1) > 1:
        given["trainer"] = "hf"
    if given.setdefault("trainer", "trl") != "trl":
        return None
    installed = installed_trl()
    if installed is None and dry_run:
        given.setdefault("trl_version", default_trl_release())
        return f"TRL is not installed here: planned for TRL {given['trl_version']}; a real run plans with the " \
               "installed release"
    given["trl_version"] = run_release(given.get("trl_version"), installed)
    return None


def stack_summary(plan: TrainPlan, note: str | None) -> dict:
    return {**stack_fields(plan), "note": note}


def stack_line(stack: dict) -> str:
    """The stack in words: which trainer, which release it is planned as, its loss path."""
    if stack["trainer"] == "hf":
        return "transformers Trainer (full tokens x vocab logits, fp32 loss)"
    ran = f"TRL {stack['installed']}" if stack["installed"] else "TRL"
    words = (f"{ran} SFTTrainer, planned as release {stack['release']}: {stack['loss_path']} "
             f"({trl_profile()['paths'][stack['loss_path']].split(':')[0]})")
    if stack["fp32_adapters"]:
        words += "; adapters cast back to fp32 after the trainer is built (fp16's way out of TRL's bf16 cast)"
    return words + (f"; {stack['note']}" if stack["note"] else "")


def dry_run(args, plan: TrainPlan, summary: dict) -> dict:
    """The plan's trainer arguments, as train would build them: SFTConfig's keyword arguments for TRL (printed
    as the call), TrainingArguments' for the plain Trainer; several GPUs add the accelerate configuration."""
    out, gpus = args.output, plan.gpus
    kwargs = run_kwargs(plan, str(out / "checkpoints"), evaluate=True, eval_steps=args.save_steps,
                        max_steps=args.max_steps or -1, epochs=args.epochs, save_steps=args.save_steps,
                        logging_steps=1)
    summary["dry_run"] = True
    if summary["output_note"]:
        print(summary["output_note"])
    if plan.trainer == "trl":
        summary["sft_config"] = kwargs
        print("SFTConfig(\n" + "".join(f"    {k}={v!r},\n" for k, v in kwargs.items()) + ")")
    else:
        summary["training_arguments"] = kwargs
        print(f"training arguments{' (per GPU)' if gpus > 1 else ''}:\n" + json.dumps(kwargs, indent=2))
    if gpus > 1:
        from ..train.distributed import plan_accelerate_config
        summary["accelerate_config"] = plan_accelerate_config(plan.to_dict())
        print(f"accelerate configuration (written to {out / 'accelerate_config.yaml'}):\n"
              + json.dumps(summary["accelerate_config"], indent=2))
    return summary


def plan_candidates(args, planner: Planner, arch, seq: int, given: dict) -> tuple[list[TrainPlan], object]:
    """The plan to verify first and its fallbacks: the typed plan as is when plan flags were given, else fit's
    recommendation and alternatives (and the fit result, None for a typed plan). Without --allocator, planned
    with PyTorch's default allocator, then again with expandable segments where they need less or the default
    allocator may re-split a logits segment (vramplan.allocator_choice)."""
    if "allocator" in given:
        return _candidates(args, planner, arch, seq, given)
    plans, result = _candidates(args, planner, arch, seq, {**given, "allocator": "default"})
    numbers = plan_allocator_numbers(plans[0], lambda p: planner.estimate(arch, p))
    if numbers["train_allocator"] == "default":
        return plans, result
    return _candidates(args, planner, arch, seq, {**given, "allocator": "expandable"})


def _candidates(args, planner: Planner, arch, seq: int, given: dict) -> tuple[list[TrainPlan], object]:
    gpu, gpus = planner.gpu, given.get("gpus", 1)
    base = flags.plan_from_fields(flags.gpu_defaults(gpu, {"seq": seq, **given}))
    check_card(base, gpu)  # fit re-derives the dtype per card, so a typed bf16 on a T4 is refused here
    if {"batch", "grad_accum", "gradient_checkpointing", "optim", "rank"} & set(given):
        return [base.with_(grad_accum=max(1, args.effective_batch // (base.batch * gpus)))
                if "grad_accum" not in given else base], None
    result = planner.fit(arch, seq=seq, effective_batch=args.effective_batch, base=base,
                         parallel=given.get("parallel") if gpus > 1 else None)
    if result.recommended is None:
        raise VramplanError("no plan fits: " + "; ".join(fit_reasons(result)), hint="shorter --seq or a bigger GPU")
    return [c.plan for c in [result.recommended] + result.alternatives], result


def say_plan(summary: dict, result, fallbacks: int) -> None:
    """The plan in words (on stdout, or stderr under --json); what only words carry goes into the summary too."""
    gpus, capacity = summary["gpus"], summary["capacity_bytes"]
    print(f"model: {summary['model']['name']} ({summary['source']}); data: {summary['data']['examples']} examples "
          f"from {summary['data']['file']}")
    print(f"gpu: {f'{gpus} x ' if gpus > 1 else ''}{summary['gpu']['name']} "
          f"({card_words(summary['gpu']['memory_mib'], capacity, gpus)})")
    print(summary["seq_note"])
    if summary["context_note"]:
        print(summary["context_note"])
    print(f"plan: {plan_line(summary['plan'])}")
    print(f"stack: {stack_line(summary['stack'])}")
    print("allocator: " + say(reason(D.ALLOCATOR, allocator=summary["plan"]["allocator"], **summary["allocator"])))
    if result is not None:
        print(f"  ({SAFETY_MARGIN:.0%} safety margin; {fallbacks} fallback plan(s) if verification fails)")
        if result.versus_one_gpu:
            summary["versus_one_gpu"] = say(result.versus_one_gpu)
            print(f"  {summary['versus_one_gpu']}")


def resolve_seq(args, source: str, examples, arch) -> tuple[int, str]:
    if args.seq != "auto":
        try:
            seq = int(args.seq)
        except ValueError:
            raise VramplanError(f"--seq: {args.seq!r} is neither a number nor auto") from None
        if seq <= 0:
            raise VramplanError("--seq must be positive")
        return seq, f"--seq {seq} (given)"
    if args.dry_run:  # the torch-free count --data uses: the tokenizer.json and its chat template
        folder = Path(source)
        if not (folder / "tokenizer.json").is_file():
            raise VramplanError("--seq auto in a dry run needs a local model folder with tokenizer.json",
                                hint="pass --seq N")
        from ..data_tokens import token_lengths
        try:
            lengths, _ = token_lengths(examples, folder, str(args.data))
        except VramplanError as exc:
            raise VramplanError(f"--seq auto: {exc.message}", hint="pass --seq N") from None
    else:
        from ..train.run import encode, load_tokenizer
        tok = load_tokenizer(source)
        lengths = [len(encode(e, tok)["input_ids"]) for e in examples]
    choice = choose_seq(lengths, arch.max_position_embeddings)
    return choice.seq, choice.describe()


def _verify_into(args, arch, planner: Planner, candidates, out: Path, trial, capped: bool = False):
    """Real steps of each candidate until one fits; then the (emptied, with --overwrite) output folder, the
    prediction for the verified plan and each verification's predicted against measured peak."""
    from ..train.verify import verify
    checked = verify(candidates, trial, planner.capacity_bytes, capped=capped)
    tried = [verification_row(planner.estimate(arch, plan), plan, t) for plan, t in checked.tried]
    if checked.plan is None:
        raise VramplanError("no plan survived verification: " + "; ".join(checked.log))
    if out.exists() and args.overwrite:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return checked, planner.estimate(arch, checked.plan), tried


def verification_row(predicted, plan: TrainPlan, trial) -> dict:
    """One verification: its plan, outcome, predicted peak (on a card with room) and required bytes (what a card
    without room needs), the measured peak, and the peak's error."""
    row = {"plan": plan.to_dict(), "status": trial.status, "predicted_peak_bytes": predicted.peak_bytes,
           "predicted_required_bytes": predicted.required_bytes, "measured_peak_bytes": trial.peak_bytes or None,
           "tokens_per_s": trial.tokens_per_s or None}
    if trial.status == "ok" and trial.peak_bytes:
        row["error_pct"] = round(100 * (predicted.peak_bytes - trial.peak_bytes) / trial.peak_bytes, 2)
    if trial.error:
        row["error"] = trial.error
    return row


def _train(args, arch, source, examples, planner: Planner, candidates, out: Path) -> dict:
    from ..train.run import train_full, verification_trial
    from ..calibrate.measure import apply_allocator
    from ..train.sft import stack_versions
    from ..speed import predicted_tokens_per_second
    from ..speed_fits import speed_source
    apply_allocator(candidates[0].to_dict())  # read when CUDA starts: before torch touches the GPU
    import torch
    if not torch.cuda.is_available():
        raise VramplanError("train needs a CUDA GPU for verification and training", hint="use --dry-run here")
    # within the memory planned for: a cap above it would let the allocator's cache pass the verification limit
    cap = min(parse_size(args.memory_cap, "--memory-cap"), planner.capacity_bytes) if args.memory_cap else None
    checked, predicted, tried = _verify_into(args, arch, planner, candidates, out,
                                             lambda plan: verification_trial(source, plan, memory_cap_bytes=cap),
                                             capped=cap is not None)
    plan = checked.plan
    speed = predicted_tokens_per_second(arch, planner.gpu, plan, predicted)
    record = train_full(source, examples, plan, out, max_steps=args.max_steps or -1, epochs=args.epochs,
                        save_steps=args.save_steps, merge=args.merge, predicted_tokens_per_s=speed,
                        memory_cap_bytes=cap)
    record.update({"model": arch.name, "source": source, "gpu": planner.gpu.name, "versions": stack_versions(),
                   "verification": checked.log, "verifications": tried,
                   "predicted_peak_bytes": predicted.peak_bytes, "predicted_required_bytes": predicted.required_bytes,
                   "verified_peak_bytes": checked.trial.peak_bytes, "predicted_tokens_per_s": round(speed, 1),
                   "speed_source": speed_source(planner.gpu, plan, arch)})
    (out / "run_record.json").write_text(json.dumps(record, indent=2) + "\n")
    if record.get("warning"):
        print(f"warning: {record['warning']}")
    print(f"done: adapter in {out / 'adapter'}, run record in {out / 'run_record.json'}")
    return record


def _train_multi(args, arch, source, planner: Planner, candidates, out: Path) -> dict:
    """Verify on every rank, write the accelerate configuration and launch spec into the output folder, launch."""
    from ..train.multi_gpu import collect_ranks, rank_verification_trial, run_launch, write_launch
    gpus = candidates[0].gpus
    checked, predicted, tried = _verify_into(args, arch, planner, candidates, out,
                                             lambda plan: rank_verification_trial(source, plan))
    plan = checked.plan
    spec_path, cmd = write_launch(out, source, args.data, plan, max_steps=args.max_steps or -1, epochs=args.epochs,
                                  save_steps=args.save_steps)
    print(f"launching {gpus} ranks: accelerate launch --config_file {out / 'accelerate_config.yaml'} "
          f"-m {WORKERS['rank_train']} {spec_path}")
    code = run_launch(cmd)
    ranks = collect_ranks(out)
    record = {"model": arch.name, "source": source, "gpu": planner.gpu.name, "gpus": gpus, "plan": plan.to_dict(),
              "accelerate_config": str(out / "accelerate_config.yaml"), "launch": cmd, "exit_code": code,
              "verification": checked.log, "verifications": tried,
              "verified_rank_peaks_bytes": list(checked.trial.rank_peaks),
              "predicted_peak_bytes_per_gpu": predicted.peak_bytes,
              "predicted_required_bytes_per_gpu": predicted.required_bytes, "ranks": ranks}
    if ranks:
        record.update({k: ranks[0].get(k) for k in ("steps", "train_loss", "seconds", "tokens_per_s")})
        record["measured_nvml_peak_bytes_per_rank"] = [r["measured_nvml_peak_bytes"] for r in ranks]
    (out / "run_record.json").write_text(json.dumps(record, indent=2) + "\n")
    if code != 0 or len(ranks) < gpus:
        raise VramplanError(f"the {gpus}-GPU training failed (exit {code}, {len(ranks)} of {gpus} ranks finished)",
                            hint=f"see the output above; the launch is recorded in {out / 'run_record.json'}")
    peaks = ", ".join(f"{p / GiB:.2f}" for p in record["measured_nvml_peak_bytes_per_rank"])
    print(f"measured peak per rank: {peaks} GiB (predicted {predicted.peak_bytes / GiB:.2f} GiB per GPU)")
    if args.merge:
        from ..train.run import merge_adapter
        record["merged"] = str(merge_adapter(source, out / "adapter", out / "merged"))
        (out / "run_record.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"done: adapter in {out / 'adapter'}, run record in {out / 'run_record.json'}")
    return record
