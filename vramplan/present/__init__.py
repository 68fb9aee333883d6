"""Decisions and Breakdowns -> English, tables and bars, for the CLI, the TUI and --json."""
from .display import bar, breakdown_table, model_json, model_lines, plan_line
from .reasons import said, say

__all__ = ["bar", "breakdown_table", "model_json", "model_lines", "plan_line", "say", "said"]
