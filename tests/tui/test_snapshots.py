"""Snapshot tests at fixed terminal sizes (pytest-textual-snapshot): what the user sees, key press by key press."""
import pytest

pytest.importorskip("pytest_textual_snapshot")

APP = "snapshot_app.py"


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_start_screen(snap_compare, size):
    assert snap_compare(APP, terminal_size=size)


def test_after_edits(snap_compare):
    assert snap_compare(APP, press=["s", "s", "g", "o"], terminal_size=(80, 24))


async def _fit(pilot):
    await pilot.press("f")
    await pilot.app.workers.wait_for_complete()  # fit runs in a worker
    await pilot.pause()


def test_fit_screen(snap_compare):
    assert snap_compare(APP, run_before=_fit, terminal_size=(100, 30))


def test_help_screen(snap_compare):
    assert snap_compare(APP, press=["question_mark"], terminal_size=(80, 24))
