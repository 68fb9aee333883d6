"""Choose the sequence length from the data's token lengths."""
from __future__ import annotations

from dataclasses import dataclass

PERCENTILE = 99
ROUND_TO = 64


@dataclass(frozen=True)
class SeqChoice:
    seq: int
    percentile: int
    truncated: int
    examples: int
    longest: int

    def describe(self) -> str:
        return (f"--seq {self.seq}: the {self.percentile}th percentile of {self.examples} examples' token lengths, "
                f"rounded up to a multiple of {ROUND_TO}; {self.truncated} example(s) longer than that are "
                f"truncated (longest: {self.longest} tokens)")


def choose_seq(lengths: list[int], max_positions: int | None = None, percentile: int = PERCENTILE) -> SeqChoice:
    if not lengths:
        raise ValueError("no lengths")
    ordered = sorted(lengths)
    k = min(len(ordered) - 1, max(0, -(-len(ordered) * percentile // 100) - 1))
    seq = -(-ordered[k] // ROUND_TO) * ROUND_TO
    if max_positions:
        seq = min(seq, max_positions)
    return SeqChoice(seq, percentile, sum(1 for n in lengths if n > seq), len(lengths), ordered[-1])
