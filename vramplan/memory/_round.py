"""PyTorch's caching allocator hands out blocks in multiples of 512 bytes, from segments it sizes by rule."""

from ..units import MiB

BLOCK = 512


def r512(nbytes: int | float) -> int:
    n = int(-(-int(nbytes) // BLOCK) * BLOCK)
    return max(n, BLOCK) if nbytes > 0 else 0


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def segment_bytes(nbytes: int) -> int:
    """The segment the default allocator cudaMallocs for a request no cached block fits: 2 MiB for a small one,
    20 MiB for one under 10 MiB, else the request rounded up to 2 MiB; a later request reuses the segment only if
    it is no larger (c10/cuda/CUDACachingAllocator.cpp: get_allocation_size, kRoundLarge)."""
    size = r512(nbytes)
    if size <= MiB:
        return 2 * MiB
    if size < 10 * MiB:
        return 20 * MiB
    return ceil_div(size, 2 * MiB) * 2 * MiB
