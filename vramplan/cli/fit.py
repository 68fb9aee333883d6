"""`vramplan fit MODEL --gpu GPU`: the fastest plan that fits, with alternatives, or why nothing fits."""
from __future__ import annotations

from .. import flags
from ..errors import VramplanError
from ..search import OBJECTIVES
from ..search_moe import for_model
from ..flags import positive_int
from ..planner import Planner
from ..present import model_json, model_lines
from ..present.fit import fit_json, fit_lines
from ..present.time_cost import lines as time_cost_lines
from ..profiles import find_gpu, find_model
from ..store.calibrations import Calibrations
from .common import check_context, add_multi_gpu_args, gpus_from_args, print_json, vram_from_args
from ..present.time_cost import plan_figures
from .estimate import add_time_args, job_from_args, time_cost_json


STACK_FIELDS = ("trainer", "trl_version", "eval_batch", "allocator")
"""The plan fields fit takes as given rather than searching: which stack runs, how it evaluates, which allocator."""
LORA_FIELDS = ("dropout", "targets", "kbit_prepare")
"""Also taken as given: the LoRA dropout and targets (left open, an MoE model whose experts are targets gets dropout
0, peft's rule) and whether prepare_model_for_kbit_training runs."""


def register(sub) -> None:
    p = sub.add_parser("fit", help="recommend the fastest plan that fits",
                       description="Search rank, micro-batch x accumulation, optimizer and checkpointing for the "
                                   "fastest QLoRA plan that fits the GPU with a safety margin.")
    p.add_argument("model", metavar="MODEL", help="catalog name, hub id, config.json or model folder")
    p.add_argument("--gpu", required=True, help="catalog GPU name (vramplan gpus); 2xNAME for two of them")
    p.add_argument("--seq", type=positive_int("--seq"), default=2048, help="sequence length (default 2048)")
    p.add_argument("--effective-batch", type=positive_int("--effective-batch"), default=16,
                   help="sequences per optimizer step (default 16)")
    p.add_argument("--rank", type=positive_int("--rank"), default=None, help="fix the LoRA rank")
    p.add_argument("--vram", default=None, help="judge against this much memory instead (e.g. 22GiB)")
    add_multi_gpu_args(p, search=True)
    flags.add_arguments(p.add_argument_group("training stack and evaluation"), names=STACK_FIELDS, only_given=True)
    flags.add_arguments(p.add_argument_group("LoRA and preparation"), names=LORA_FIELDS, only_given=True)
    add_time_args(p)
    p.add_argument("--objective", choices=OBJECTIVES, default="time",
                   help="rank plans by time (tokens/s, the default) or by cost per token (needs --price; with "
                        "--gpus N one GPU competes too)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    model, gpu = find_model(args.model), find_gpu(args.gpu)
    check_context(model, args.seq)
    job = job_from_args(args, model, args.seq, args.price)
    if args.objective == "cost" and job.price is None:
        raise VramplanError("--objective cost: needs --price (USD per GPU hour); none is assumed",
                            hint="e.g. --objective cost --price 2.5, or --objective time")
    planner = Planner(gpu, Calibrations.shipped(), vram_from_args(args))
    gpus = gpus_from_args(args) or 1
    stack = for_model(model, flags.given_fields(args, STACK_FIELDS + LORA_FIELDS))
    # the stack and evaluation as typed, checked on this many GPUs (the search sets the rest)
    base = flags.plan_from_fields(flags.gpu_defaults(gpu, {**stack, "gpus": gpus})) if stack else None
    result = planner.fit(model, seq=args.seq, effective_batch=args.effective_batch, rank=args.rank,
                         gpus=gpus, parallel=args.parallel, base=base, objective=args.objective)
    rec = result.recommended
    tc = plan_figures(model, gpu, rec.plan, rec.breakdown, job) if rec else None
    if args.json:
        print_json({**fit_json(result, job.price), **model_json(model), **(time_cost_json(tc) if tc else {})})
    else:
        print("\n".join(model_lines(model, args.model) + fit_lines(result, time_cost_lines(tc) if tc else [])))
    return 0 if result.recommended else 1
