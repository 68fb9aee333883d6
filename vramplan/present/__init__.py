"""Decisions and Breakdowns -> English, tables and bars, for the CLI, the TUI and --json."""
from .display import bar, breakdown_table, plan_line
from .reasons import say, said

__all__ = ["bar", "breakdown_table", "plan_line", "say", "said"]
