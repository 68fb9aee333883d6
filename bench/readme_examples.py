"""Regenerate every sample output in README.md from the command shown with it, so the README shows what the
commands print today.

    python bench/readme_examples.py           # rewrite the example blocks in README.md
    python bench/readme_examples.py --check   # exit 1, with a diff, when a block has drifted

A block is marked in the README as

    <!-- example: vramplan fit llama-3.1-8b --gpu T4 -->
    ```
    $ vramplan fit llama-3.1-8b --gpu T4
    ...what it prints...
    ```
    <!-- /example -->

and only what lies between the two comments is written. Each command runs in-process through vramplan.cli.main
with stdout captured; only commands that need no GPU and no network belong here. They run with an empty user data
folder and no VRAMPLAN_CALIBRATION, offline, so a reader's own calibrations never leak into the README.
"""
from __future__ import annotations

import argparse
import contextlib
import difflib
import io
import os
import re
import shlex
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

README = ROOT / "README.md"
BLOCK = re.compile(r"(<!-- example: (?P<command>.+?) -->\n)(?P<body>.*?)(<!-- /example -->)", re.S)
ISOLATION = {"VRAMPLAN_DATA_DIR": None, "VRAMPLAN_CALIBRATION": None, "HF_HUB_OFFLINE": "1"}
"""Environment of the runs: VRAMPLAN_DATA_DIR is pointed at an empty folder, the others set or removed."""


@contextlib.contextmanager
def isolated():
    """An empty user data folder, no calibration named by the environment, no network."""
    saved = {k: os.environ.get(k) for k in ISOLATION}
    with tempfile.TemporaryDirectory() as empty:
        for key, value in {**ISOLATION, "VRAMPLAN_DATA_DIR": empty}.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def output_of(command: str) -> str:
    """What `command` (starting with `vramplan`) prints on stdout; a command that errors is a broken example."""
    from vramplan.cli import main
    argv = shlex.split(command)
    if argv[:1] != ["vramplan"]:
        raise SystemExit(f"README example {command!r} does not start with vramplan")
    out, err = io.StringIO(), io.StringIO()
    with isolated(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv[1:])
    if code not in (0, 1):  # 1: fit or check saying no, which an example may well show
        raise SystemExit(f"README example {command!r} exited {code}: {err.getvalue().strip()}")
    return out.getvalue()


def render(command: str) -> str:
    return f"```\n$ {command}\n{output_of(command).rstrip()}\n```\n"


def regenerate(text: str) -> tuple[str, list[str]]:
    """The README with every example block rewritten, and the commands found."""
    commands: list[str] = []

    def block(m: re.Match) -> str:
        commands.append(m["command"])
        return m.group(1) + render(m["command"]) + m.group(4)

    return BLOCK.sub(block, text), commands


def check(readme: Path = README) -> list[str]:
    """A unified diff per drifted block (empty: the README is current)."""
    text = readme.read_text()
    new, _ = regenerate(text)
    if new == text:
        return []
    return list(difflib.unified_diff(text.splitlines(), new.splitlines(), "README.md", "README.md (regenerated)",
                                     lineterm="", n=1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 when a block has drifted")
    args = ap.parse_args(argv)
    if args.check:
        diff = check()
        if diff:
            print("\n".join(diff))
            print("README examples drifted: run python bench/readme_examples.py", file=sys.stderr)
            return 1
        print("README examples are current")
        return 0
    text = README.read_text()
    new, commands = regenerate(text)
    if not commands:
        print("no <!-- example: ... --> blocks in README.md", file=sys.stderr)
        return 1
    if new != text:
        README.write_text(new)
    print(f"{len(commands)} example(s) {'rewritten' if new != text else 'already current'}: " + "; ".join(commands))
    return 0


if __name__ == "__main__":
    sys.exit(main())
