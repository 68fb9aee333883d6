"""`vramplan tui [MODEL] [--gpu GPU]`: the interactive explorer."""
from __future__ import annotations

import sys

from ..errors import VramplanError
from ..profiles import find_gpu, find_model


def register(sub) -> None:
    p = sub.add_parser("tui", help="explore plans in a terminal app",
                       description="Pick model and GPU, edit the plan with single keys, see the memory re-planned "
                                   "at once; f fits, e writes the plan, ? lists the keys.")
    p.add_argument("model", metavar="MODEL", nargs="?", default=None, help="model to start with (default llama-3.1-8b)")
    p.add_argument("--gpu", default=None, help="GPU to start with (default RTX-4090)")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.model:
        find_model(args.model)  # bad names fail here, with close matches, before the screen opens
    if args.gpu:
        find_gpu(args.gpu)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        # without a terminal the app waits forever for keys that never come and draws escape codes into a pipe
        raise VramplanError("the TUI needs a terminal (stdin or stdout is not one)",
                            hint="run it in a terminal; scripts get the same numbers from estimate/fit --json")
    try:
        from ..tui import create_app
        app = create_app(args.model, args.gpu)
    except ImportError:
        raise VramplanError("the TUI needs Textual", hint="pip install textual") from None
    app.run()
    return 0
