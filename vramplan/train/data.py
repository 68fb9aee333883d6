"""The training data `vramplan train` reads: the records of vramplan.data_records (shared with the planning
commands' --data, which must not import this package's torch-side modules)."""
from ..data_records import ROLES, Example, alpaca_prompt, load_examples, parse_record, read_text

__all__ = ["ROLES", "Example", "alpaca_prompt", "load_examples", "parse_record", "read_text"]
