"""vramplan: memory planner and hardware compatibility analyzer for QLoRA fine-tuning."""
__version__ = "0.1.0"
