"""PyTorch's caching allocator hands out blocks in multiples of 512 bytes."""

BLOCK = 512


def r512(nbytes: int | float) -> int:
    n = int(-(-int(nbytes) // BLOCK) * BLOCK)
    return max(n, BLOCK) if nbytes > 0 else 0


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)
