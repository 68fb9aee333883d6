"""FSDP's and DDP's costs of the speed model, fitted on the 2 x H200 runs on top of the one-GPU terms."""
import pytest

pytest.importorskip("scipy")

from vramplan.calibrate import speed_multi_gpu as M  # noqa: E402
from vramplan.calibrate import speed_solve as S  # noqa: E402

HOPPER = [r for r in S.with_features(S.speed_rows()) if r["profile"].architecture == "hopper"]


def test_multi_gpu_costs_fit_the_two_gpu_runs():
    multi = S.by_gpu(M.multi_gpu_rows())["NVIDIA H200"]
    params = S.solve(HOPPER, "NVIDIA H200")
    fitted = M.solve_multi_gpu(multi, params)
    assert 0 < fitted["fsdp_unit_s"] < 2e-3 and 0 <= fitted["ddp_step_s"] < 0.5
    from dataclasses import replace
    held = S.summarize(M.multi_gpu_loao(multi, replace(params, **fitted)))
    assert held["mae_pct"] <= 11  # 10.2% since the one-GPU terms fit tokens/s on the Hopper GPUs together
