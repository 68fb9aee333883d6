"""Partial and offloaded checkpointing on the command line: refused by name (exit 2, with the way out) while
profiles/checkpointing_modes.json does not list the mode; answered where it does (as it ships)."""
import json
import shlex
from pathlib import Path

import pytest

from tests.cli.test_bad_input import run_cli
from tests.profiles.checkpointing_gate import checkpointing_gate_closed  # noqa: F401  (the fixture)

DATA = Path(__file__).parent / "corpus" / "data" / "ok.jsonl"
COMMANDS = ("estimate llama-3.2-1b --gpu RTX-4090", "check llama-3.2-1b --gpu RTX-4090",
            f"train llama-3.2-1b --gpu RTX-4090 --seq 512 --dry-run --data {DATA}")


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("mode, flag", [("--checkpoint-every 2", "--checkpoint-every"),
                                        ("--checkpoint-offload", "--checkpoint-offload")])
def test_an_unmeasured_mode_is_refused_by_name(command, mode, flag, checkpointing_gate_closed):
    argv = shlex.split(f"{command} {mode}")
    code, out, err, escaped = run_cli(argv)
    assert escaped is None and code == 2 and "Traceback" not in out + err
    assert flag in err and "profiles/checkpointing_modes.json" in err
    code, out, _, _ = run_cli(argv + ["--json"])
    obj = json.loads(out)
    assert code == 2 and flag in obj["error"] and "full checkpointing" in obj["hint"]


def test_without_checkpointing_the_fields_are_refused():
    code, _, err, escaped = run_cli(shlex.split("estimate llama-3.2-1b --gpu RTX-4090 --no-gradient-checkpointing "
                                                "--checkpoint-every 2"))
    assert escaped is None and code == 2 and "turns off" in err


@pytest.mark.parametrize("command", COMMANDS)
def test_the_shipped_gate_answers_both_modes(command):
    code, out, err, escaped = run_cli(shlex.split(f"{command} --checkpoint-every 2 --checkpoint-offload"))
    assert escaped is None and code in (0, 1), err
    assert "not been checked against GPU runs" not in out + err


def test_the_open_gate_answers_with_the_mode_in_the_plan():
    code, out, err, escaped = run_cli(shlex.split("estimate llama-3.2-1b --gpu RTX-4090 --checkpoint-every 2 "
                                                  "--checkpoint-offload --json"))
    assert escaped is None and code == 0, err
    obj = json.loads(out)
    assert obj["plan"]["checkpoint_every"] == 2 and obj["plan"]["checkpoint_offload"] is True
