"""Training data: JSON Lines or JSON, as alpaca records, chat `messages`, or plain `text`.

Every record is checked before any GPU work; an error names the line (JSON Lines) or index (JSON) and the fault.
Torch-free: `vramplan train` reads its data here, and `--data` on estimate, fit and table counts the same records.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import VramplanError

ROLES = {"system", "user", "assistant", "tool"}


@dataclass(frozen=True)
class Example:
    """One training example as a prompt part (no loss) and a response part (loss), or a chat."""

    kind: str  # "alpaca", "messages" or "text"
    prompt: str = ""
    response: str = ""
    messages: tuple = ()


def load_examples(path: str | Path) -> list[Example]:
    path = Path(path)
    if not path.is_file():
        raise VramplanError(f"--data {path}: no such file" if not path.exists() else f"--data {path}: not a file")
    text = read_text(path)
    if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
        rows = _loads(text, path)
        if not isinstance(rows, list):
            raise VramplanError(f"--data {path}: a JSON file must hold a list of records")
        items = [(f"record {i}", row) for i, row in enumerate(rows)]
    else:
        items = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            items.append((f"line {n}", _loads(line, path, f"line {n}")))
    if not items:
        raise VramplanError(f"--data {path}: no records")
    return [parse_record(row, f"--data {path}: {where}") for where, row in items]


def read_text(path: Path) -> str:
    """The file as text. Editors on Windows write a byte-order mark, so one is accepted; any other byte that is
    not UTF-8 means a binary file or another encoding, which json would only report as a decode crash."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise VramplanError(f"--data {path}: cannot be read ({exc.strerror})") from None
    if b"\0" in raw[:8192]:
        raise VramplanError(f"--data {path}: a binary file, not JSON Lines or JSON text",
                            hint="give the .jsonl/.json training records, UTF-8 encoded")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise VramplanError(f"--data {path}: not UTF-8 text (byte {exc.start} is 0x{raw[exc.start]:02x})",
                            hint="save the file as UTF-8 (JSON text is UTF-8)") from None


def _loads(text: str, path: Path, line: str | None = None):
    """One JSON document: the whole file (line None) or one line of a JSON Lines file."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise VramplanError(f"--data {path}: {line} is not JSON ({exc.msg})" if line else
                            f"--data {path}: malformed JSON ({exc.msg}, line {exc.lineno} column {exc.colno})") from None
    except RecursionError:  # json recurses once per nesting level; no training record nests this deep
        raise VramplanError(f"--data {path}: {line + ': ' if line else ''}nested too deeply to be a training "
                            "record") from None


def parse_record(row, where: str) -> Example:
    if not isinstance(row, dict):
        raise VramplanError(f"{where}: expected an object, got {type(row).__name__}")
    if "messages" in row:
        msgs = row["messages"]
        if not isinstance(msgs, list) or not msgs:
            raise VramplanError(f"{where}: messages must be a non-empty list")
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
                raise VramplanError(f"{where}: messages[{i}] needs a role ({', '.join(sorted(ROLES))}) and a "
                                    "string content")
        if msgs[-1]["role"] != "assistant":
            raise VramplanError(f"{where}: the last message must be the assistant's (it is what is learned)")
        return Example("messages", messages=tuple((m["role"], m["content"]) for m in msgs))
    if "instruction" in row or "output" in row:
        for key in ("instruction", "output"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise VramplanError(f"{where}: alpaca records need a non-empty string {key!r}")
        if "input" in row and not isinstance(row["input"], str):
            raise VramplanError(f"{where}: 'input' must be a string")
        return Example("alpaca", prompt=alpaca_prompt(row["instruction"], row.get("input", "")),
                       response=row["output"])
    if "text" in row:
        if not isinstance(row["text"], str) or not row["text"].strip():
            raise VramplanError(f"{where}: 'text' must be a non-empty string")
        return Example("text", response=row["text"])
    raise VramplanError(f"{where}: no known fields", hint="use instruction/input/output, messages, or text")


def alpaca_prompt(instruction: str, input_text: str = "") -> str:
    if input_text:
        return f"### Instruction:\n{instruction}\n\n### Input:\n{input_text}\n\n### Response:\n"
    return f"### Instruction:\n{instruction}\n\n### Response:\n"
