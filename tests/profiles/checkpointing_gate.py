"""Opening or closing the measured-checkpointing gate (profiles/checkpointing_modes.json) inside a test."""
import pytest

from vramplan.profiles import checkpointing


@pytest.fixture
def checkpointing_gate_open(monkeypatch):
    """Partial and offloaded checkpointing count as measured."""
    monkeypatch.setattr(checkpointing, "measured_checkpointing_modes", lambda: frozenset(checkpointing.MODES))
    yield


@pytest.fixture
def checkpointing_gate_closed(monkeypatch):
    """No mode beyond full checkpointing counts as measured (the gate as it shipped before any run)."""
    monkeypatch.setattr(checkpointing, "measured_checkpointing_modes", lambda: frozenset())
    yield
