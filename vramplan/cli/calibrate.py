"""`vramplan calibrate`: measure real QLoRA runs on this GPU, record them, refit the run-time parameters."""
from __future__ import annotations

from pathlib import Path

from ..calibrate.design import boundary, estimated_seconds, sweep
from ..errors import VramplanError
from ..plan import ALLOCATORS
from ..resources import data_dir


def register(sub) -> None:
    p = sub.add_parser("calibrate", help="measure QLoRA runs on this GPU and refit the memory model",
                       description="Runs a designed sweep of real QLoRA training steps (random-weight models built "
                                   "from profiles/, nothing downloaded), one fresh process per run, records each "
                                   "run append-only under OUT/runs/, then refits OUT/fits/. Needs the [train] extra.")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--quick", dest="kind", action="store_const", const="quick", help="24 runs: the base factors")
    kind.add_argument("--full", dest="kind", action="store_const", const="full", help="the whole sweep (default)")
    p.add_argument("--boundary", action="store_true",
                   help="also run 12 allocator-capped runs (12/16/24 GiB) that test the fits verdict")
    p.add_argument("--allocator", choices=ALLOCATORS, default="default",
                   help="measure with PyTorch's default caching allocator (the standard recipe) or with "
                        "expandable_segments:True (what `vramplan train` uses)")
    p.add_argument("--models", default=None, help="only these profiles (comma list)")
    p.add_argument("--out", type=Path, default=None, help="calibration folder (default: the package's calibration/)")
    p.add_argument("--dry-run", action="store_true", help="list the sweep and its estimated time; run nothing")
    p.add_argument("--refit", action="store_true", help="only refit OUT/fits from the recorded runs")
    p.add_argument("--timeout", type=int, default=600, help="seconds allowed per run (default 600)")
    p.set_defaults(func=run, kind="full")


def run(args) -> int:
    out = args.out or data_dir("calibration")
    if args.refit:
        from ..calibrate.solve import solve_all
        for path in solve_all(out):
            print(f"wrote {path}")
        return 0
    models = tuple(m.strip() for m in args.models.split(",")) if args.models else None
    if models:
        from ..profiles import find_model
        models = tuple(find_model(m).name for m in models)
    runs = sweep(args.kind, models, args.allocator)
    if args.boundary:
        runs += [r for r in boundary() if not models or r.model in models]
    if not runs:
        raise VramplanError("--models: none of these models is in the sweep",
                            hint="the sweep covers " + ", ".join(sorted({r.model for r in sweep('full')})))
    if args.dry_run:
        total = 0.0
        for i, r in enumerate(runs, 1):
            secs = estimated_seconds(r)
            total += secs
            print(f"{i:3d}. {r.describe()}  ~{secs:.0f} s")
        print(f"{len(runs)} runs over {len({r.model for r in runs})} architectures, about {total / 60:.0f} min "
              f"(plus one checkpoint build per architecture)")
        return 0
    _require_gpu()
    from ..calibrate.solve import solve_all
    from ..calibrate.sweep import default_cache, run_sweep
    path = run_sweep(runs, out, default_cache(), timeout_s=args.timeout)
    print(f"records: {path}")
    for fit_path in solve_all(out):
        print(f"wrote {fit_path}")
    return 0


def _require_gpu() -> None:
    """No GPU or no [train] extra: say so, write nothing."""
    try:
        import pynvml
        pynvml.nvmlInit()
        if pynvml.nvmlDeviceGetCount() < 1:
            raise RuntimeError("no device")
    except ImportError:
        raise VramplanError("calibrate needs the training libraries", hint="pip install 'vramplan[train]'") from None
    except Exception:
        raise VramplanError("no NVIDIA GPU found (NVML could not see one); nothing was measured or written",
                            hint="run calibrate on the machine with the GPU") from None
