"""The one judgement of a breakdown against its card: the safety margin and the standing every output shows."""
from __future__ import annotations

SAFETY_MARGIN = 0.05
"""Share of the card kept free: covers the calibrated error bound (no under-prediction worse than -5%)."""

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
