"""`vramplan` entry point: registers the subcommands; each lives in its own module (parse -> core -> display).

Heavy modules (torch, transformers) are imported only inside the commands that need them.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys

from ..errors import VramplanError

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vramplan", description="Memory planner for QLoRA fine-tuning: will it fit, and with which settings?")
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"vramplan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from . import calibrate, calibration, catalog, check, estimate, fit, table, train, tui
    for module in (estimate, fit, check, table, catalog, calibrate, train, tui, calibration):
        module.register(sub)
    return parser




def _error(message: str, hint: str | None, code: int, as_json: bool) -> int:
    """One line on stderr; with --json one object on stdout (error, hint, exit_code) instead."""
    if as_json:
        json.dump({"error": message, "hint": hint, "exit_code": code}, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(f"vramplan: error: {message}" + (f" ({hint})" if hint else ""), file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    as_json = "--json" in argv
    parser = build_parser()
    if as_json:  # argparse's own errors (a bad flag value) become JSON too
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                args = parser.parse_args(argv)
        except SystemExit as stop:
            if stop.code in (0, None):
                raise
            text = err.getvalue().strip().splitlines()
            return _error(text[-1].split("error: ", 1)[-1] if text else "bad arguments", "see --help", 2, True)
    else:
        args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except VramplanError as exc:
        return _error(exc.message, exc.hint, exc.exit_code, as_json)
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("vramplan: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    sys.exit(main())
