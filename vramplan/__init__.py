"""vramplan: memory planner and hardware compatibility analyzer for QLoRA fine-tuning."""
__version__ = "0.1.0"


def preflight(model, gpu="auto", vram_bytes=None, **plan):
    """Will this QLoRA job fit? See vramplan.verdict.preflight. Imports no torch."""
    from .verdict import preflight as _preflight
    return _preflight(model, gpu, vram_bytes, **plan)


__all__ = ["preflight", "__version__"]
