"""Pre-flight hooks for other pipelines."""
