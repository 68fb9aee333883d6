"""Pure byte accounting of a QLoRA training step. No torch."""
from .breakdown import LABELS, PHASES, Breakdown
from .estimate import LIBRARY_VERSIONS, estimate
from .runtime import DEFAULT_RUNTIME, RuntimeParams

__all__ = ["Breakdown", "DEFAULT_RUNTIME", "LABELS", "LIBRARY_VERSIONS", "PHASES", "RuntimeParams", "estimate"]
