"""The one judgement of a breakdown against its card: the safety margin and the standing every output shows."""
from __future__ import annotations

SAFETY_MARGIN = 0.05
"""Share of the usable memory a recommended plan leaves free, for the model's error: most measured peaks are
predicted within it, but not all (the allocator's cache at large micro-batches of 12-14B models, up to -10% in
calibration/speed_runs; README, Accuracy)."""

FITS, INSIDE_MARGIN, DOES_NOT_FIT = "fits", "fits_only_inside_margin", "does_not_fit"


def margin_limit(capacity: int) -> int:
    """The most a recommended plan may need: the capacity less the safety margin."""
    return int(capacity * (1 - SAFETY_MARGIN))


def standing_of(required: int, capacity: int) -> str:
    """Fits with the safety margin, fits only inside it, or does not fit, on what the run needs when the card is
    full."""
    if required <= margin_limit(capacity):
        return FITS
    return INSIDE_MARGIN if required <= capacity else DOES_NOT_FIT
