"""Opening the measured-MoE gate (profiles/moe_families.json) inside a test, for every family modelled."""
import pytest

from vramplan.profiles import catalog, experts


@pytest.fixture
def moe_gate_open(monkeypatch):
    """Every family of profiles/experts.FAMILIES counts as measured; the catalog is re-read with it and after."""
    monkeypatch.setattr(experts, "measured_families", lambda: frozenset(experts.FAMILIES))
    catalog._model_files.cache_clear()
    yield
    monkeypatch.undo()
    catalog._model_files.cache_clear()


@pytest.fixture
def moe_gate_closed(monkeypatch):
    """No family counts as measured, whatever profiles/moe_families.json lists: the refusals of an unmeasured
    family stay tested once families are listed."""
    monkeypatch.setattr(experts, "measured_families", lambda: frozenset())
    catalog._model_files.cache_clear()
    yield
    monkeypatch.undo()
    catalog._model_files.cache_clear()
