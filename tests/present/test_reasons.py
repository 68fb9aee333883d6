"""Every decision code has its English, and the English is built from the decision's numbers."""
from vramplan import decisions as D
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
