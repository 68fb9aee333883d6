"""`vramplan estimate MODEL --gpu GPU [plan flags] [--json]`: the memory breakdown of one plan."""
from __future__ import annotations

from ..planner import Planner
from ..present import say
from ..present.display import estimate_lines
from ..profiles import find_gpu, find_model
from ..store.calibrations import Calibrations
from .common import add_plan_args, add_vram_arg, plan_from_args, print_json, vram_from_args
from ..present import model_json, model_lines


def register(sub) -> None:
    p = sub.add_parser("estimate", help="memory breakdown of one training plan",
                       description="Predict the peak GPU memory of one QLoRA training plan, component by component.")
    p.add_argument("model", metavar="MODEL", help="catalog name, hub id, config.json or model folder")
    p.add_argument("--gpu", required=True, help="catalog GPU name (vramplan gpus)")
    add_plan_args(p)
    add_vram_arg(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    model, gpu = find_model(args.model), find_gpu(args.gpu)
    plan = plan_from_args(args, gpu)
    planner = Planner(gpu, Calibrations.shipped(), vram_from_args(args))
    b = planner.estimate(model, plan)
    saving = planner.biggest_saving(model, plan, b)
    saving = {"change": say(saving), "saves_bytes": saving["saves_bytes"]} if saving else None
    if args.json:
        d = b.to_dict()
        d["gpu"] = gpu.summary()
        d["model_summary"] = model.summary()
        d["biggest_saving"] = saving
        print_json({**d, **model_json(model)})
        return 0
    print("\n".join(model_lines(model, args.model) + estimate_lines(b, model, gpu, saving)))
    return 0
