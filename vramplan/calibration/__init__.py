"""Calibration data: measured runs (append-only records), the sweep that makes them, fits derived from them."""
