"""A card's memory is said one way in every output: its total, the capacity judged against, the limit."""
import pytest

from tests.cli.test_bad_input import CORPUS, run_cli
from vramplan.present.display import card_words
from vramplan.units import GiB

T4 = "15.0 GiB: 14.56 GiB usable, limit 13.83 GiB with the 5% safety margin"


def test_the_words_name_total_usable_and_limit():
    assert card_words(15360, 20 * GiB) == ("15.0 GiB; judged against 20.00 GiB, more than the card has, limit 19.00 GiB "
                                           "with the 5% safety margin")
    assert card_words(15360, 14 * GiB) == "15.0 GiB: 14.00 GiB usable, limit 13.30 GiB with the 5% safety margin"
    assert card_words(24576, 23 * GiB, gpus=2).startswith("24.0 GiB each: 23.00 GiB usable")


def test_a_capacity_above_the_cards_total_is_said_to_be_judged_against():
    words = card_words(15360, 22 * GiB)
    assert words.startswith("15.0 GiB; judged against 22.00 GiB, more than the card has") and "usable" not in words


@pytest.mark.parametrize("command", [
    ["fit", "llama-3.1-8b", "--gpu", "T4"],
    ["estimate", "llama-3.1-8b", "--gpu", "T4"],
    ["check", "llama-3.1-8b", "--gpu", "T4"],
    ["train", "llama-3.1-8b", "--gpu", "T4", "--seq", "1024", "--dry-run", "--data",
     str(CORPUS / "data" / "ok.jsonl"), "--trainer", "hf"],
])
def test_every_command_names_the_card_the_same_way(command):
    code, out, err, escaped = run_cli(command)
    assert escaped is None and code in (0, 1), err
    assert f"T4 ({T4})" in out.splitlines()[0] + out.splitlines()[1]
    assert "card 14.91" not in out and "(15.0 GiB):" not in out
