"""`vramplan table --gpu GPU` / `--model MODEL`: compatibility tables that replace the blogs' static ones."""
from __future__ import annotations

from .. import flags
from ..errors import VramplanError
from ..planner import Planner
from ..profiles import find_gpu, find_model, gpu_catalog, model_catalog
from ..store.calibrations import Calibrations
from ..units import GiB
from ..flags import positive_int
from .common import check_context, context_window, print_json


def register(sub) -> None:
    p = sub.add_parser("table", help="compatibility table over the catalog",
                       description="Every catalog model on one GPU (--gpu), or one model on every catalog GPU "
                                   "(--model): fits?, best plan, longest sequence that fits.")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--gpu", help="one GPU, every model")
    who.add_argument("--model", help="one model, every GPU")
    p.add_argument("--seq", type=positive_int("--seq"), default=2048, help="sequence length (default 2048)")
    p.add_argument("--effective-batch", type=positive_int("--effective-batch"), default=16)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    calibrations = Calibrations.shipped()
    if args.gpu:
        gpu = find_gpu(args.gpu)
        planner = Planner(gpu, calibrations)
        rows = [row(planner, m, args.seq, args.effective_batch) for m in model_catalog()]
        title = f"every catalog model on {gpu.name} ({gpu.memory_mib / 1024:.1f} GiB), seq {args.seq}"
    else:
        model = find_model(args.model)
        check_context(model, args.seq)  # one model: a sequence it cannot take is refused, as estimate does
        rows = [row(Planner(g, calibrations), model, args.seq, args.effective_batch) for g in gpu_catalog()]
        title = f"{model.name} on every catalog GPU, seq {args.seq}"
    if not rows:
        raise VramplanError("the catalog is empty")
    if args.json:
        print_json({"title": title, "seq": args.seq, "effective_batch": args.effective_batch, "rows": rows})
        return 0
    key = "model" if args.gpu else "gpu"
    print(title)
    print(f"{key:30s} {'fits':>4s}  {'GiB':>6s}  {'best plan':44s} {'longest seq':>11s}")
    for r in rows:
        p = r["plan"]
        plan = (f"r{p['rank']} {p['batch']}x{p['grad_accum']} {'ckpt' if p['gradient_checkpointing'] else 'no-ckpt'} "
                f"{p['optim']} {p['dtype']}") if p else "-"
        if r.get("beyond_context"):
            plan = f"seq beyond its context ({r['context']:,})"
        gib = f"{r['required_bytes'] / GiB:6.2f}" if r["required_bytes"] else "     -"
        print(f"{r[key]:30s} {'yes' if r['fits'] else 'no':>4s}  {gib}  {plan:44s} {r['longest_seq'] or '-':>11}")
    return 0


def row(planner: Planner, model, seq: int, effective_batch: int) -> dict:
    """A table row; a model whose context is shorter than the sequence gets no plan (its positions past the
    context are untrained), only the longest sequence that fits within its context."""
    context, _ = context_window(model)
    if context is not None and seq > context:
        longest = planner.longest_seq(model, flags.plan_from_fields(flags.gpu_defaults(planner.gpu, {})))
        return {"model": model.name, "gpu": planner.gpu.name, "params": model.total_params, "fits": False,
                "plan": None, "required_bytes": None, "tokens_per_s_estimate": None, "longest_seq": longest,
                "beyond_context": True, "context": context}
    return {**planner.table_row(model, seq, effective_batch), "beyond_context": False, "context": context}
