"""One judgement everywhere: estimate, check, fit and the TUI say the same for every plan `vramplan table` gives."""
import json

import pytest

from tests.cli.test_cli import vramplan
from vramplan import flags
from vramplan.planner import Planner
from vramplan.profiles import find_gpu, find_model
from vramplan.store.calibrations import Calibrations
from vramplan.tui.result import verdict_text
from vramplan.verdict import FITS, standing


@pytest.mark.parametrize("gpu", ["T4", "RTX-4090"])
def test_estimate_check_fit_and_the_tui_agree_on_every_table_plan(gpu):
    planner = Planner(find_gpu(gpu), Calibrations.shipped())
    code, out, _ = vramplan("table", "--gpu", gpu, "--json")
    rows = [r for r in json.loads(out)["rows"] if r["plan"]]
    assert rows
    for row in rows[:12]:
        model = find_model(row["model"])
        plan = flags.plan_from_fields({k: v for k, v in row["plan"].items()
                                       if k not in ("micro_batch", "effective_batch")})
        b = planner.estimate(model, plan)
        judged = standing(b)
        assert judged == FITS  # table shows fit's recommendations: they fit with the margin
        assert planner.judge(model, plan).standing == judged
        assert "FITS with the 5% safety margin" in verdict_text(b)
        code, out, _ = vramplan("check", row["model"], "--gpu", gpu, *flags.command_args(plan))
        assert code == 0 and "OK: FITS with the 5% safety margin" in out
        code, out, _ = vramplan("estimate", row["model"], "--gpu", gpu, *flags.command_args(plan))
        assert "FITS with the 5% safety margin" in out
