"""`vramplan table --gpu GPU` / `--model MODEL`: compatibility tables that replace the blogs' static ones; with
--tokens (or --data) and --price, the time and the cost of the job on each GPU, the fastest and the cheapest named."""
from __future__ import annotations

from dataclasses import replace

from .. import flags
from ..errors import VramplanError
from ..planner import Planner
from ..search_moe import for_model
from ..plan import TrainPlan
from ..present.display import card_words
from ..present.table import table_lines, fastest_and_cheapest
from ..present.time_cost import Job, data_fields, data_line, parse_price, plan_figures
from ..profiles import find_gpu, find_model, gpu_catalog, model_catalog
from ..store.calibrations import Calibrations
from ..flags import positive_int
from .common import check_context, context_window, print_json
from .estimate import add_job_args, job_from_args


def register(sub) -> None:
    p = sub.add_parser("table", help="compatibility table over the catalog",
                       description="Every catalog model on one GPU (--gpu), or one model on every catalog GPU "
                                   "(--model): fits?, best plan, its speed, longest sequence that fits; with "
                                   "--tokens (or --model with --data) the time to train, with --price the cost on "
                                   "each priced GPU.")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--gpu", help="one GPU, every model")
    who.add_argument("--model", help="one model, every GPU")
    p.add_argument("--seq", type=positive_int("--seq"), default=2048, help="sequence length (default 2048)")
    p.add_argument("--effective-batch", type=positive_int("--effective-batch"), default=16)
    add_job_args(p)
    p.add_argument("--price", default=None, metavar="NAME=USD,...",
                   help="USD per GPU hour of the GPUs you can rent (e.g. A100-80GB=1.8,H100-80GB=2.9; with --gpu "
                        "one number): gives their cost; none is assumed for the others")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def prices_from_text(text: str | None, only_gpu=None) -> dict[str, float]:
    """{GPU profile name: USD per GPU hour} from NAME=PRICE,...; a bare number prices only_gpu (table --gpu)."""
    if not text:
        return {}
    out = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, eq, value = part.rpartition("=")
        if not eq:
            if only_gpu is None:
                raise VramplanError(f"--price {part}: which GPU? one model over every GPU takes NAME=PRICE pairs",
                                    hint="e.g. --price A100-80GB=1.8,H100-80GB=2.9")
            name, value = only_gpu.name, part
        gpu = find_gpu(name)
        if only_gpu is not None and gpu.name != only_gpu.name:
            raise VramplanError(f"--price {part}: {gpu.name} is not in this table (--gpu {only_gpu.name})")
        try:
            out[gpu.name] = parse_price(value)
        except ValueError as exc:
            raise VramplanError(f"--price {part}: {exc}") from None
    return out


def run(args) -> int:
    calibrations = Calibrations.shipped()
    if args.gpu:
        if args.data is not None:  # every model has its own tokenizer: no one count of the file
            raise VramplanError("--data: counts the tokens with one model's tokenizer; table --gpu spans every "
                                "catalog model", hint="use table --model MODEL --data FILE, or --tokens N")
        job = job_from_args(args, None, args.seq, None)
        gpu = find_gpu(args.gpu)
        prices = prices_from_text(args.price, only_gpu=gpu)
        planner = Planner(gpu, calibrations)
        rows = [row(planner, m, job, args, prices) for m in model_catalog()]
        title = f"every catalog model on {gpu.name} ({card_words(gpu.memory_mib, planner.capacity_bytes)}), seq {args.seq}"
    else:
        model = find_model(args.model)
        check_context(model, args.seq)  # one model: a sequence it cannot take is refused, as estimate does
        prices = prices_from_text(args.price)
        job = job_from_args(args, model, args.seq, None)
        rows = [row(Planner(g, calibrations), model, job, args, prices) for g in gpu_catalog()]
        title = f"{model.name} on every catalog GPU, seq {args.seq}"
    if not rows:
        raise VramplanError("the catalog is empty")
    # one model over the GPUs: which GPU is the fastest and the cheapest for the job (over models there is no
    # one job to compare)
    best = {} if args.gpu else fastest_and_cheapest(rows, key="gpu")
    if args.json:
        data = {k: v for k, v in data_fields(job.data).items() if k not in ("tokens_packed",)}
        print_json({"title": title, "seq": args.seq, "effective_batch": args.effective_batch, "tokens": job.tokens,
                    "epochs": job.epochs if job.tokens else None, **data, "prices_usd_per_gpu_hour": prices,
                    **best, "rows": rows})
        return 0
    counted = next((r["time_cost"] for r in rows if r["time_cost"]), None) if job.data else None
    print("\n".join(table_lines(title, rows, "model" if args.gpu else "gpu", best)
                    + ([data_line(counted) + "; the time takes them packed into full --seq sequences"]
                       if counted else [])))
    return 0


def row(planner: Planner, model, job: Job, args, prices: dict[str, float] | None = None) -> dict:
    """A table row; a model whose context is shorter than the sequence gets no plan (its positions past the
    context are untrained), only the longest sequence that fits within its context. A plan that fits gets its
    speed, and with the job its time and (priced GPUs) its cost: time_cost, as estimate's --json has it."""
    context, _ = context_window(model)
    if context is not None and args.seq > context:
        longest = planner.longest_seq(model, flags.plan_from_fields(for_model(model, flags.gpu_defaults(planner.gpu,
                                                                                                      {}))))
        return {"model": model.name, "gpu": planner.gpu.name, "params": model.total_params, "fits": False,
                "plan": None, "required_bytes": None, "tokens_per_s": None, "step_s": None, "longest_seq": longest,
                "beyond_context": True, "context": context, "time_cost": None}
    r = {**planner.table_row(model, args.seq, args.effective_batch), "beyond_context": False, "context": context}
    gpu = planner.gpu
    r["time_cost"] = None
    if r["plan"]:
        plan = TrainPlan.from_dict(r["plan"])
        priced = replace(job, price=(prices or {}).get(gpu.name))
        r["time_cost"] = plan_figures(model, gpu, plan, None, priced, tokens_per_s=r["tokens_per_s"])
    return r
