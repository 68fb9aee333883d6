"""Pure byte accounting of a QLoRA training step. No torch."""
from .breakdown import LABELS, PHASES, Breakdown
from .estimate import LIBRARY_VERSIONS, estimate
from .calibration import DEFAULT_CALIBRATION, Calibration

__all__ = ["Breakdown", "DEFAULT_CALIBRATION", "LABELS", "LIBRARY_VERSIONS", "PHASES", "Calibration", "estimate"]
