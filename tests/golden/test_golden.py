"""The redesign keeps every prediction identical (except where a named fix changes it)."""
from vramplan.profiles import find_gpu, find_model

from .golden import load, predict


def test_golden_predictions_unchanged():
    _, entries = load()
    assert len(entries) > 1000
    changed = []
    for e in entries:
        got = predict(find_model(e["model"]), find_gpu(e["gpu"]), e["plan"])
        want = {k: e[k] for k in got}
        if got != want:
            changed.append((e["model"], e["gpu"], e["gpus"], e["plan"], {k: (want[k], got[k]) for k in got
                                                                           if got[k] != want[k]}))
    assert not changed, f"{len(changed)} predictions moved; first: {changed[0]}"
