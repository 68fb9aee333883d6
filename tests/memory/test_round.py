from vramplan.memory._round import segment_bytes
from vramplan.units import MiB


def test_segments_follow_the_caching_allocators_size_classes():
    assert segment_bytes(1) == segment_bytes(MiB) == 2 * MiB  # small pool buffer
    assert segment_bytes(MiB + 1) == segment_bytes(10 * MiB - 512) == 20 * MiB  # split 20 MiB block
    assert segment_bytes(10 * MiB - 1) == 10 * MiB  # requests round to 512 bytes first
    assert segment_bytes(1503 * MiB) == 1504 * MiB  # rounded up to 2 MiB
    assert segment_bytes(2004 * MiB - 3 * MiB // 2) == 2004 * MiB
