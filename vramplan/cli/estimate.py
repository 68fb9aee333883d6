"""`vramplan estimate MODEL --gpu GPU [plan flags] [--json]`: the memory breakdown of one plan."""
from __future__ import annotations

from ..store.calibrations import Calibrations
from ..memory import LABELS, Breakdown
from ..planner import Planner
from ..profiles import find_gpu, find_model
from ..units import GiB
from .common import add_plan_args, add_vram_arg, plan_from_args, print_json, vram_from_args
from ..present import bar, breakdown_table, model_json, model_lines, plan_line


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
    saving = biggest_saving(planner, model, plan, b)
    if args.json:
        d = b.to_dict()
        d["gpu"] = gpu.summary()
        d["model_summary"] = model.summary()
        d["biggest_saving"] = saving
        print_json({**d, **model_json(model)})
        return 0
    print("\n".join(model_lines(model, args.model) + render(b, model, gpu, saving)))
    return 0


def biggest_saving(planner: Planner, model, plan, b: Breakdown) -> dict | None:
    """The one plan change that lowers the peak the most."""
    options = []
    if plan.batch > 1:
        options.append((f"--batch {plan.batch // 2} with --grad-accum {plan.grad_accum * 2}",
                        plan.with_(batch=plan.batch // 2, grad_accum=plan.grad_accum * 2)))
    if not plan.gradient_checkpointing:
        options.append(("gradient checkpointing on", plan.with_(gradient_checkpointing=True)))
    if plan.seq > 256:
        options.append((f"--seq {plan.seq // 2}", plan.with_(seq=plan.seq // 2)))
    if plan.optim not in ("paged_adamw_8bit", "adamw_8bit", "sgd"):
        options.append(("--optim adamw_8bit", plan.with_(optim="adamw_8bit")))
    if plan.rank > 8:
        options.append((f"--rank {plan.rank // 2}", plan.with_(rank=plan.rank // 2)))
    if plan.quant in ("int8", "none"):
        options.append(("--quant nf4", plan.with_(quant="nf4")))
    if plan.attn == "eager":
        options.append(("--attn sdpa", plan.with_(attn="sdpa")))
    best = None
    for label, alt in options:
        saved = b.peak_bytes - planner.estimate(model, alt).peak_bytes
        if saved > 0 and (best is None or saved > best["saves_bytes"]):
            best = {"change": label, "saves_bytes": saved}
    return best


def render(b: Breakdown, model, gpu, saving: dict | None) -> list[str]:
    limit_note = f"{b.capacity_bytes / GiB:.2f} GiB usable"
    n = b.plan.get("gpus", 1)
    lines = [f"{model.name} on {f'{n} x ' if n > 1 else ''}{gpu.name} ({gpu.memory_mib / 1024:.1f} GiB"
             f"{' each' if n > 1 else ''}, {limit_note})",
             f"plan: {plan_line(b.plan)}", ""]
    lines += breakdown_table(b)
    lines += ["", f"  {bar(b.required_bytes, b.capacity_bytes)}  needs {b.required_bytes / GiB:.2f} of "
                  f"{b.capacity_bytes / GiB:.2f} GiB"]
    verdict = "FITS" if b.fits else "DOES NOT FIT"
    lines.append(f"\n{verdict}: needs {b.required_bytes / GiB:.2f} GiB to run (peak as nvidia-smi shows it on a "
                 f"card with room: {b.peak_bytes / GiB:.2f} GiB); "
                 + (f"{b.headroom_bytes / GiB:.2f} GiB to spare" if b.fits
                    else f"{-b.headroom_bytes / GiB:.2f} GiB short"))
    dom, dom_bytes = b.dominant()
    lines.append(f"dominant: {LABELS.get(dom, dom)} ({dom_bytes / GiB:.2f} GiB), peak in the {b.peak_phase} phase")
    if saving:
        lines.append(f"biggest saving: {saving['change']} (-{saving['saves_bytes'] / GiB:.2f} GiB)")
    if b.fragmentation_event_bytes:
        lines.append(f"upper bound: {(b.peak_bytes + b.fragmentation_event_bytes) / GiB:.2f} GiB if PyTorch's "
                     f"default allocator re-splits a logits segment (+{b.fragmentation_event_bytes / GiB:.2f} GiB; "
                     "measured in some runs, not predictable from the plan); --allocator expandable avoids it")
    lines.append(f"calibration: {b.calibration['source']}")
    return lines
