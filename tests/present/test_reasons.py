"""Every decision code has its English, and the English is built from the decision's numbers."""
import pytest

from vramplan import decisions as D
from vramplan.decisions import reason
from vramplan.planner import Planner
from vramplan.present.reasons import TEXT, say
from vramplan.profiles import find_gpu, find_model
from vramplan.store.calibrations import Calibrations


def test_every_code_has_words():
    codes = {v for k, v in vars(D).items() if k.isupper() and isinstance(v, str)}
    assert codes == set(TEXT)


def test_words_come_from_the_numbers():
    result = Planner(find_gpu("T4"), Calibrations.shipped()).fit(find_model("llama-3.1-70b"), seq=2048)
    first = result.reasons[0]
    assert say(first).startswith(f"even the leanest plan (micro-batch 1, checkpointing, rank {first['rank']}) needs")
    assert say(D.reason(D.SHORTER_SEQ, seq=1024)) == "a shorter sequence fits: up to 1024 tokens"


@pytest.mark.parametrize("allocator, given, default_gib, expandable_gib, resplit, words", [
    ("expandable", False, 12.0, 12.5, 0, "this plan needs 0.50 GiB more than with PyTorch's default allocator"),
    ("expandable", False, 12.5, 12.0, 0, "this plan needs 0.50 GiB less than with PyTorch's default allocator"),
    ("expandable", False, 12.0, 12.0, 1, "needs the same as with PyTorch's default allocator, and avoids its step-2"),
    ("default", False, 12.0, 12.5, 0, "expandable segments would need 0.50 GiB more here, so `vramplan train` keeps"),
    ("default", False, 12.5, 12.0, 0, "`vramplan train` sets expandable_segments:True, which needs 0.50 GiB less"),
    ("default", True, 12.0, 12.0, 1, "as given; expandable segments would need the same here, and avoid its step-2"),
])
def test_the_allocator_reason_says_which_needs_more_the_right_way_round(allocator, given, default_gib, expandable_gib,
                                                                         resplit, words):
    from vramplan.units import GiB
    r = reason(D.ALLOCATOR, allocator=allocator, given=given, default_required_bytes=int(default_gib * GiB),
               expandable_required_bytes=int(expandable_gib * GiB), resplit_bytes=resplit * GiB,
               train_allocator="default" if default_gib < expandable_gib and not resplit else "expandable")
    assert words in say(r)
