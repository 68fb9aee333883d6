"""`vramplan` entry point: registers the subcommands; each lives in its own module (parse -> core -> display).

Heavy modules (torch, transformers) are imported only inside the commands that need them.
"""
from __future__ import annotations

import argparse
import sys

from ..errors import VramplanError

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vramplan", description="Memory planner for QLoRA fine-tuning: will it fit, and with which settings?")
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"vramplan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from . import calibrate, catalog, check, estimate, fit, table, train, tui
    for module in (estimate, fit, check, table, catalog, calibrate, train, tui):
        module.register(sub)
    return parser




def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except VramplanError as exc:
        print(f"vramplan: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("vramplan: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    sys.exit(main())
