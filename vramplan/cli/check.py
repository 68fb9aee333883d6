"""`vramplan check`: a pre-flight gate for scripts and CI. Exit 0 fits, 1 does not, 2 bad input."""
from __future__ import annotations

import sys

from .. import config_file, flags
from .. import decisions as D
from ..errors import VramplanError
from ..stacks import check_loss_type
from ..memory import LABELS
from ..planner import Planner
from ..present import model_json, model_lines, plan_line, say
from ..present.display import card_words
from ..present.reasons import against_words, reasons_json, room_words, standing_words
from ..profiles import find_model
from ..search_moe import experts_lora, for_model
from ..store.calibrations import Calibrations
from ..units import GiB
from ..verdict import resolve_gpu
from .common import check_context, add_plan_args, given_plan_fields, print_json, vram_from_args


def register(sub) -> None:
    p = sub.add_parser("check", help="pre-flight gate: exit 0 if the job fits, 1 if not, 2 on bad input",
                       description="Judge a QLoRA job before it starts. Plan from flags and/or --config (a JSON or "
                                   "YAML of TrainingArguments / LoraConfig / BitsAndBytesConfig fields, or an "
                                   "axolotl config); flags win over the file.")
    p.add_argument("model", metavar="MODEL", nargs="?", default=None,
                   help="model (default: the config's base_model / model_name_or_path)")
    p.add_argument("--gpu", required=True, help="catalog GPU name, or auto (the detected GPU's free memory)")
    p.add_argument("--config", default=None, help="an existing training setup to read the plan from")
    add_plan_args(p, only_given=True)
    p.add_argument("--vram", default=None, help="judge against this much memory instead (e.g. 22GiB)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    cfg = config_file.load(args.config) if args.config else config_file.ConfigPlan()
    model_name = args.model or cfg.model
    if not model_name:
        raise VramplanError("check: no MODEL given and the config names none", hint="pass MODEL")
    model = find_model(model_name)
    gpu, capacity = resolve_gpu(args.gpu, vram_from_args(args))
    fields = dict(cfg.plan)
    fields.update(given_plan_fields(args))
    plan = flags.plan_from_fields(for_model(model, flags.gpu_defaults(gpu, fields)))
    check_context(model, plan.seq)
    if cfg.loss_type is not None and plan.trainer == "trl":
        check_loss_type(cfg.loss_type, plan.trl_version)
    verdict = Planner(gpu, Calibrations.shipped(), capacity).judge(model, plan)
    moe = experts_lora(model, plan)  # an MoE model's: what its experts get, first after the verdict's NEEDS
    if moe and moe not in verdict.advice:
        verdict.advice.insert(1, moe)
    if args.json:
        out = verdict.to_dict()
        out["advice"] = reasons_json(verdict.advice)
        out["config"] = {"file": args.config, "read": cfg.read, "ignored": cfg.ignored, "unknown": cfg.unknown}
        print_json({**out, **model_json(model)})
    else:
        b = verdict.breakdown
        for line in model_lines(model, model_name):
            print(line)
        on = f"{plan.gpus} x {gpu.name}" if plan.gpus > 1 else gpu.name
        print(f"{model.name} on {on} ({card_words(gpu.memory_mib, verdict.capacity_bytes, plan.gpus)})")
        print(f"plan: {plan_line(plan.to_dict())}")
        status = ("OK: " if verdict.fits else "FAIL: ") + standing_words(verdict.standing)
        room = f" ({room_words(verdict.peak_bytes)})" if verdict.peak_bytes != verdict.required_bytes else ""
        print(f"{status}: {against_words(verdict.required_bytes, verdict.capacity_bytes)}{room}")
        dom, dom_bytes = b.dominant()
        print(f"dominant: {LABELS.get(dom, dom)} {dom_bytes / GiB:.2f} GiB ({b.peak_phase} phase)")
        for r in verdict.advice:
            if r.code != D.NEEDS:  # said above
                print(f"  - {say(r)}")
        if args.config:
            print(f"config {args.config}: read {', '.join(cfg.read) or 'nothing'}")
            if cfg.unknown:
                print(f"config: unknown keys (not used): {', '.join(cfg.unknown)}", file=sys.stderr)
    return 0 if verdict.fits else 1
