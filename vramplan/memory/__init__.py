"""Pure byte accounting of a QLoRA training step. No torch."""
from .breakdown import LABELS, PHASES, Breakdown
from .calibration import DEFAULT_CALIBRATION, Calibration
from .estimate import LIBRARY_VERSIONS, estimate

__all__ = ["Breakdown", "DEFAULT_CALIBRATION", "LABELS", "LIBRARY_VERSIONS", "PHASES", "Calibration", "estimate"]
