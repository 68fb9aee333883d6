"""`vramplan calibrate`: measure real QLoRA runs on this GPU, record them, refit the run-time parameters."""
from __future__ import annotations

from pathlib import Path

from ..calibrate.design import boundary, estimated_seconds, sweep
from ..errors import VramplanError
from ..plan import ALLOCATORS
from ..store import user


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
    p.add_argument("--out", type=Path, default=None,
                   help="calibration folder (default: your user data folder's calibration/, which every planning "
                        "command reads; VRAMPLAN_DATA_DIR moves it)")
    p.add_argument("--dry-run", action="store_true", help="list the sweep and its estimated time; run nothing")
    p.add_argument("--refit", action="store_true", help="only refit OUT/fits from the recorded runs")
    p.add_argument("--timeout", type=int, default=600, help="seconds allowed per run (default 600)")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end (the sweep, or what was "
                                                       "written) instead of the text")
    p.set_defaults(func=run, kind="full")


def output_folder(args) -> Path:
    """--out, else the user folder; never the installed package, which an upgrade replaces and which is often
    not writable (a checkout's calibration/ named with --out is how the shipped fits are refit)."""
    out = Path(args.out).expanduser() if args.out else user.user_calibration_dir()
    if user.inside_package(out):
        raise VramplanError(f"--out {out} is inside the installed package; nothing was written",
                            hint="leave --out out to write to your user data folder, or name a folder of your own")
    if out.exists() and not out.is_dir():
        raise VramplanError(f"--out {out}: is a file, not a folder")
    return out


def run(args) -> int:
    out = output_folder(args)
    if args.refit:
        if not any((out / "runs").glob("*.jsonl")):
            raise VramplanError(f"no recorded runs in {out / 'runs'}; nothing to refit",
                                hint="run `vramplan calibrate` on the GPU first, or name the folder with --out")
        _print_written(refit(out), args, out)
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
        if args.json:
            from .common import print_json
            print_json({"out": str(out), "runs": [{"run": r.describe(), "estimated_s": round(estimated_seconds(r))}
                                                  for r in runs],
                        "estimated_s": round(sum(estimated_seconds(r) for r in runs))})
            return 0
        total = 0.0
        for i, r in enumerate(runs, 1):
            secs = estimated_seconds(r)
            total += secs
            print(f"{i:3d}. {r.describe()}  ~{secs:.0f} s")
        print(f"{len(runs)} runs over {len({r.model for r in runs})} architectures, about {total / 60:.0f} min "
              f"(plus one checkpoint build per architecture); records and fits would go to {out}")
        return 0
    _require_gpu()
    from ..calibrate.sweep import default_cache, run_sweep
    # the sweep's progress goes to stderr (redrawn in place on a terminal), so stdout stays the result's
    path = run_sweep(runs, out, default_cache(), timeout_s=args.timeout)
    if not args.json:
        print(f"records: {path}")
    _print_written(refit(out), args, out)
    return 0


def refit(out: Path) -> list[Path]:
    """Refit the GPUs recorded in out, solved as if their records had shipped: the shipped GPUs' records stand
    in where out has none of its own (the expandable-segments and multi-GPU parameters, the capped runs of
    the fits verdict), as they do for the shipped fits. A folder of one GPU's sweep alone would otherwise get
    no expandable-segments slack and no multi-GPU parameters at all. Then out/speed_host: the machine's launch
    costs from its runs' step times (vramplan.calibrate.speed_host)."""
    import shutil
    import tempfile
    from ..calibrate.solve import solve_all
    from ..resources import data_dir
    shipped = data_dir("calibration")
    if out.resolve() == shipped.resolve():
        return solve_all(out)
    own = {p.stem for p in (out / "runs").glob("*.jsonl")}
    written = []
    with tempfile.TemporaryDirectory(prefix="vramplan-refit-") as tmp:
        for kind in ("runs", "multi_gpu"):
            (Path(tmp) / kind).mkdir()
            # out's records of a kind replace the shipped ones of the same GPU and kind (a sweep of one card
            # still lends that card's shipped multi-GPU runs)
            for path in (shipped / kind).glob("*.jsonl"):
                shutil.copyfile(path, Path(tmp) / kind / path.name)
            for path in (out / kind).glob("*.jsonl"):
                target = Path(tmp) / kind / path.name
                if kind == "runs" and not _has_default_allocator_runs(path):
                    # the memory fit rests on the standard recipe's runs: expandable-segments runs alone add
                    # their slack to the shipped ones of the GPU, or, with none shipped, cannot be fitted
                    if not target.exists():
                        raise VramplanError(f"{path}: every run here used expandable segments; the memory fit "
                                            "needs runs with PyTorch's default allocator too",
                                            hint="run `vramplan calibrate --quick` (default allocator) on this "
                                                 "GPU, then --refit")
                    with target.open("a") as f:
                        f.write(path.read_text())
                    continue
                shutil.copyfile(path, target)
        for path in solve_all(Path(tmp)):
            if path.stem in own:
                target = out / "fits" / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                written.append(target)
    # the runs' step times: this machine's launch costs on top of the shipped speed fit
    from ..calibrate.speed_host import write_host_fits
    return written + write_host_fits(out, own)


def _has_default_allocator_runs(path: Path) -> bool:
    from ..calibrate.records import load_runs, record_allocator
    return any(record_allocator(r) == "default" for r in load_runs(path))


def _print_written(paths: list[Path], args, out: Path) -> None:
    if args.json:
        from .common import print_json
        print_json({"out": str(out), "written": [str(p) for p in paths], "read_by_default": args.out is None})
        return
    for path in paths:
        print(f"wrote {path}")
    if paths and args.out is None:
        print("estimate, fit, check, table, tui and train now plan this GPU with it (`vramplan calibration list`)")
    elif paths:
        print(f"planning commands read it with --calibration {out} (or VRAMPLAN_CALIBRATION)")


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
