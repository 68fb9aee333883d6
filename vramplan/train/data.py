"""Training data: JSON Lines or JSON, as alpaca records, chat `messages`, or plain `text`.

Every record is checked before any GPU work; an error names the line (JSON Lines) or index (JSON) and the fault.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import VramplanError

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
        raise VramplanError(f"--data {path}: no such file")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise VramplanError(f"--data {path}: malformed JSON ({exc})") from None
        if not isinstance(rows, list):
            raise VramplanError(f"--data {path}: a JSON file must hold a list of records")
        items = [(f"record {i}", row) for i, row in enumerate(rows)]
    else:
        items = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                items.append((f"line {n}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise VramplanError(f"--data {path}: line {n} is not JSON ({exc.msg})") from None
    if not items:
        raise VramplanError(f"--data {path}: no records")
    return [parse_record(row, f"--data {path}: {where}") for where, row in items]


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
