"""The one judgement of a breakdown against its card, and every JSON that carries it saying the same."""
import json

from tests.cli.test_bad_input import run_cli
from vramplan.margin import DOES_NOT_FIT, FITS, INSIDE_MARGIN, margin_limit, standing_of
from vramplan.planner import Planner
from vramplan.plan import TrainPlan
from vramplan.profiles import find_gpu, find_model
from vramplan.store.calibrations import Calibrations


def test_the_standing_has_three_sides_split_at_the_margin_and_at_the_capacity():
    cap = 100 * 2**30
    assert standing_of(margin_limit(cap), cap) == FITS
    assert standing_of(margin_limit(cap) + 1, cap) == INSIDE_MARGIN == standing_of(cap, cap)
    assert standing_of(cap + 1, cap) == DOES_NOT_FIT


def _inside_margin_plan():
    """llama-3.1-8b on a T4 at micro-batch 3, judged against a capacity 3% above what it needs: inside the margin."""
    model = find_model("llama-3.1-8b")
    plan = TrainPlan(batch=3, dtype="fp16", fp32_adapters=True)
    need = Planner(find_gpu("T4"), Calibrations.shipped()).estimate(model, plan).required_bytes
    vram_gib = round(need / 0.97 / 2**30, 2)
    b = Planner(find_gpu("T4"), Calibrations.shipped(), int(vram_gib * 2**30)).estimate(model, plan)
    assert b.standing == INSIDE_MARGIN
    return vram_gib, b


def test_a_breakdowns_json_fits_is_the_standing_and_says_within_capacity_apart():
    _, b = _inside_margin_plan()
    d = b.to_dict()
    assert b.within_capacity and not b.fits and d["within_capacity"] is True
    assert d["fits"] is False and d["standing"] == INSIDE_MARGIN


def test_check_json_says_fits_once_whether_read_at_the_top_or_in_the_breakdown():
    vram, _ = _inside_margin_plan()
    args = ["llama-3.1-8b", "--gpu", "T4", "--batch", "3", "--vram", f"{vram}GiB", "--json"]
    code, out, _, escaped = run_cli(["check", *args])
    d = json.loads(out)
    assert escaped is None and code == 1
    assert d["fits"] is d["breakdown"]["fits"] is False and d["standing"] == d["breakdown"]["standing"] == INSIDE_MARGIN
    code, out, _, _ = run_cli(["estimate", *args])
    assert json.loads(out)["fits"] is False and json.loads(out)["standing"] == INSIDE_MARGIN
