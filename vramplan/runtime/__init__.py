"""Everything that imports torch: measured runs, calibration sweeps, training. Imported lazily by the CLI."""
