"""`vramplan gpus` and `vramplan models`: the catalogs."""
from __future__ import annotations

from ..profiles import gpu_catalog, model_catalog
from .common import print_json


def register(sub) -> None:
    g = sub.add_parser("gpus", help="list the GPU catalog")
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=run_gpus)
    m = sub.add_parser("models", help="list the model catalog")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=run_models)


def run_gpus(args) -> int:
    gpus = gpu_catalog()
    if args.json:
        print_json([{**g.summary(), "aliases": list(g.aliases)} for g in gpus])
        return 0
    print(f"{'name':18s} {'memory':>9s} {'cc':>4s} {'bf16':>4s} {'GB/s':>6s} {'TFLOPS':>7s}  aliases")
    for g in gpus:
        print(f"{g.name:18s} {g.memory_mib:6d} MiB {g.compute_capability:4.1f} {'yes' if g.bf16 else 'no':>4s} "
              f"{g.bandwidth_gbs:6.0f} {g.tensor_tflops_16bit:7.1f}  {', '.join(g.aliases[:3])}")
    return 0


def run_models(args) -> int:
    models = model_catalog()
    if args.json:
        print_json([{**m.summary(), "aliases": list(m.aliases), "source": m.source} for m in models])
        return 0
    print(f"{'name':30s} {'params':>8s} {'layers':>6s} {'hidden':>6s} {'vocab':>7s}  hub id")
    for m in models:
        print(f"{m.name:30s} {m.total_params / 1e9:7.2f}B {m.layers:6d} {m.hidden:6d} {m.vocab:7d}  {m.hub_id}")
    return 0
