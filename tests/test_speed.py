"""The fitted speed model: its form, which parameters a GPU gets, and the time/cost figures of estimate and fit."""
import json
import subprocess
import sys

import pytest

from vramplan.memory import estimate
from vramplan.plan import TrainPlan
from vramplan.present.time_cost import Job, duration, figures
from vramplan.profiles import find_gpu, find_model
from vramplan.speed import FEATURES, features, predicted_step_seconds, predicted_tokens_per_second
from vramplan.speed_fits import SpeedParams, load_speed_fits, params_from_speed_fits, speed_params
from vramplan.store.calibrations import Calibrations

CAL = Calibrations.shipped()
H100, H200, T4 = find_gpu("H100-80GB"), find_gpu("H200"), find_gpu("T4")
LLAMA = find_model("llama-3.1-8b")


def _b(model, gpu, plan):
    return estimate(model, gpu, plan, CAL.params(gpu))


def _step(plan, gpu=H100, model=LLAMA, params=None):
    return predicted_step_seconds(model, gpu, plan, _b(model, gpu, plan), params)


# -- the form ---------------------------------------------------------------------------------------------------

def test_a_step_is_its_micro_batches_plus_the_step_constant():
    params = SpeedParams(matmul_tflops=500, stream_gbs=2000, kernel_s=1e-5, micro_batch_s=0.01, step_s=0.05)
    one, four = _step(TrainPlan(batch=2, grad_accum=1), params=params), _step(TrainPlan(batch=2, grad_accum=4),
                                                                              params=params)
    assert four - 0.05 == pytest.approx(4 * (one - 0.05))


def test_checkpointing_adds_a_recompute_pass_and_the_fused_head_recomputes_its_matmul():
    plan = TrainPlan(batch=2, trainer="hf")
    on, off = features(LLAMA, plan, _b(LLAMA, H100, plan)), features(
        LLAMA, plan.with_(gradient_checkpointing=False), _b(LLAMA, H100, plan.with_(gradient_checkpointing=False)))
    i = FEATURES.index("kernel_launches")
    # forward + recompute + backward against forward + backward: the forward's launches once more
    forward = LLAMA.layers * (7 * 3 + 7 * 8 + 2 * 7 + 15)
    assert on[i] - off[i] == forward
    assert on[0] > 1.4 * off[0]
    fused = TrainPlan(batch=2, trainer="trl", trl_version="1.16")
    hf_x, trl_x = features(LLAMA, plan, _b(LLAMA, H100, plan)), features(LLAMA, fused, _b(LLAMA, H100, fused))
    assert trl_x[0] > hf_x[0]  # the head's matmul once more in backward
    assert trl_x[1] < hf_x[1]  # no tokens x vocab fp32 buffers


def test_fewer_adapted_linears_are_fewer_adapter_launches():
    allp, qv = TrainPlan(), TrainPlan(targets=("q_proj", "v_proj"))
    a, q = features(LLAMA, allp, _b(LLAMA, H100, allp)), features(LLAMA, qv, _b(LLAMA, H100, qv))
    i = FEATURES.index("kernel_launches")
    # five linears without an adapter: its 8 forward launches in forward and recompute, 8 in backward
    assert a[i] - q[i] == LLAMA.layers * 5 * (2 * 8 + 8)


def test_llm_int8_launches_more_kernels_than_nf4():
    nf4, int8 = TrainPlan(), TrainPlan(quant="int8")
    i = FEATURES.index("kernel_launches")
    x4, x8 = features(LLAMA, nf4, _b(LLAMA, H100, nf4)), features(LLAMA, int8, _b(LLAMA, H100, int8))
    assert x8[i] - x4[i] == LLAMA.layers * 7 * (2 * (8 - 3) + (5 - 3))


def test_larger_micro_batches_amortize_the_per_call_cost():
    small, large = TrainPlan(batch=1, grad_accum=16), TrainPlan(batch=16, grad_accum=1)
    tps = [predicted_tokens_per_second(LLAMA, H100, p, _b(LLAMA, H100, p)) for p in (small, large)]
    assert tps[1] > 1.2 * tps[0]


def test_more_gpus_add_their_measured_costs():
    one = TrainPlan(batch=1, grad_accum=2)
    ddp, fsdp = one.with_(gpus=2, parallel="ddp", trainer="hf"), one.with_(gpus=2, parallel="fsdp", trainer="hf")
    params = speed_params(H200)
    assert params.multi_gpu_from == "NVIDIA H200" and params.fsdp_unit_s > 0
    base = _step(one.with_(trainer="hf"), H200)
    assert _step(ddp, H200) > base and _step(fsdp, H200) > _step(ddp, H200)


# -- which parameters a GPU gets ----------------------------------------------------------------------------------

def test_calibrated_gpus_read_their_own_fit_and_say_so():
    for gpu in (H100, H200):
        p = speed_params(gpu)
        assert p.measured and p.runs >= 60 and "fitted on NVIDIA" in p.source and "for each model predicted by a fit without it" in p.source
        assert p.matmul_tflops <= gpu.tensor_tflops_16bit + 1e-6 and p.stream_gbs <= gpu.bandwidth_gbs + 1e-6


def test_a_gpu_without_runs_scales_its_datasheet_by_the_hopper_efficiencies():
    fits = load_speed_fits()
    p = params_from_speed_fits(fits, T4)
    mm = sum(f["efficiency"]["matmul"] for f in fits) / len(fits)
    assert not p.measured and "T4 not measured" in p.source and "datasheet" in p.source
    assert p.matmul_tflops == pytest.approx(T4.tensor_tflops_16bit * mm)
    assert p.kernel_s == pytest.approx(sum(f["params"]["kernel_s"] for f in fits) / len(fits))


def test_a_gpu_without_multi_gpu_runs_borrows_the_fitted_multi_gpu_costs_and_says_whose():
    from vramplan.speed_fits import speed_source
    own, h200 = speed_params(H100), speed_params(H200)
    assert own.measured and own.multi_gpu_from == "NVIDIA H200" and own.fsdp_unit_s == h200.fsdp_unit_s
    assert "fitted on NVIDIA H200 x 2" in speed_source(find_gpu("RTX-4090"), TrainPlan(gpus=2, trainer="hf"))
    assert "GPUs:" not in speed_source(H100, TrainPlan())


def test_without_any_fit_the_built_in_roofline_says_it_is_one():
    p = params_from_speed_fits((), T4)
    assert not p.measured and "built-in roofline" in p.source and p.kernel_s == 0


def test_the_shipped_fits_are_what_the_solver_writes():
    for fit in load_speed_fits():
        assert set(fit["params"]) >= {"matmul_tflops", "stream_gbs", "kernel_s", "micro_batch_s", "step_s"}
        assert fit["error"]["loao_mae_pct"] > 0 and fit["runs"] == sum(fit["sources"].values())


# -- time and cost ------------------------------------------------------------------------------------------------

def test_time_and_cost_follow_from_the_step():
    plan = TrainPlan(batch=2, grad_accum=8, seq=2048)
    params = speed_params(H100)
    d = figures(plan, 1000.0, params, params.source, Job(tokens=10_000_000, epochs=2, price=3.0))
    assert d["step_s"] == pytest.approx(32.768) and d["tokens_per_step"] == 32768
    assert d["optimizer_steps"] == 611  # ceil(20M / 32,768)
    assert d["train_s"] == pytest.approx(611 * 32.768, rel=1e-4)
    assert d["cost_usd"] == pytest.approx(d["train_s"] / 3600 * 3.0, abs=0.01)
    none = figures(plan, 1000.0, params, params.source, Job())
    assert none["train_s"] is None and none["cost_usd"] is None and none["price_usd_per_gpu_hour"] is None


def test_durations_read_as_people_say_them():
    assert duration(45) == "45 s" and duration(600) == "10 min" and duration(9300) == "2 h 35 min"
    assert duration(3 * 86400 + 4 * 3600) == "3 d 4 h"


def vramplan(*args):
    proc = subprocess.run([sys.executable, "-m", "vramplan", *args], capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def test_estimate_prints_speed_time_and_cost_and_json_carries_them():
    code, out, _ = vramplan("estimate", "llama-3.1-8b", "--gpu", "H100-80GB", "--tokens", "20M", "--epochs", "3",
                            "--price", "2.5")
    assert code == 0
    assert "tokens/s" in out and "s per optimizer step" in out and "fitted on NVIDIA H100" in out
    assert "3 epochs of 20,000,000 tokens" in out and "USD at 2.5 USD per GPU hour" in out
    code, out, _ = vramplan("estimate", "llama-3.1-8b", "--gpu", "H100-80GB", "--tokens", "20M", "--price", "2.5",
                            "--json")
    d = json.loads(out)
    for key in ("tokens_per_s", "step_s", "train_s", "cost_usd", "speed_source"):
        assert d[key] is not None and d["time_cost"][key] == d[key]
    assert d["cost_usd"] == pytest.approx(d["train_s"] / 3600 * 2.5, abs=0.01)


def test_fit_prints_the_fitted_speed_and_no_invented_price():
    code, out, _ = vramplan("fit", "llama-3.1-8b", "--gpu", "T4")
    assert code == 0
    assert "T4 not measured: its datasheet" in out and "s per optimizer step" in out
    assert "give --data FILE or --tokens N" in out and "USD" not in out
    code, out, _ = vramplan("fit", "llama-3.1-8b", "--gpu", "T4", "--tokens", "1000000", "--json")
    d = json.loads(out)
    assert d["train_s"] > 0 and d["cost_usd"] is None and d["time_cost"]["price_usd_per_gpu_hour"] is None
    assert d["recommended"]["tokens_per_s"] == d["tokens_per_s"]
    assert all("step_s" in a and "tokens_per_s" in a for a in d["alternatives"])


@pytest.mark.parametrize("args", [("--price", "-1"), ("--price", "nan"), ("--tokens", "0"), ("--tokens", "lots"),
                                  ("--epochs", "0", "--tokens", "1M"), ("--epochs", "2")])
def test_bad_time_and_price_values_exit_2(args):
    for command in ("estimate", "fit"):
        code, out, err = vramplan(command, "llama-3.2-1b", "--gpu", "T4", *args)
        assert code == 2 and "error" in err
        code, out, _ = vramplan(command, "llama-3.2-1b", "--gpu", "T4", *args, "--json")
        assert code == 2 and json.loads(out)["exit_code"] == 2


# -- what was not measured, said by name ------------------------------------------------------------------------

def test_what_no_run_measured_is_named():
    from vramplan.speed_fits import not_measured
    two = TrainPlan(gpus=2, parallel="fsdp", trainer="hf")
    assert not_measured(H200, TrainPlan()) == [] and not_measured(H200, two) == []
    assert [x["code"] for x in not_measured(H200, two.with_(gpus=4))] == ["gpu_count"]
    assert not_measured(H200, two.with_(gpus=4))[0]["measured_counts"] == [2]
    rtx = [x["code"] for x in not_measured(find_gpu("RTX-4090"), two)]
    assert rtx == ["gpu", "multi_gpu_gpu"]
    only_fsdp = SpeedParams(matmul_tflops=500, stream_gbs=2000, measured=True, multi_gpu_from="NVIDIA H200",
                            multi_gpu_layouts=((2, "fsdp", False),))
    assert [x["code"] for x in not_measured(H200, two.with_(parallel="ddp"), only_fsdp)] == ["layout"]
    assert [x["code"] for x in not_measured(H200, two, SpeedParams(matmul_tflops=1, stream_gbs=1, measured=True))] \
        == ["multi_gpu_built_in"]


def test_the_words_of_what_was_not_measured():
    from vramplan.present.time_cost import not_measured_words
    from vramplan.speed_fits import not_measured
    words = not_measured_words(not_measured(H200, TrainPlan(gpus=4, parallel="ddp", trainer="hf")))
    assert words == ["note: not measured on 4 GPUs (the multi-GPU runs used 2): the per-unit and per-step costs "
                     "are taken as they were there"]
    assert not_measured_words([{"code": "gpu", "gpu": "T4"}]) == []  # the speed source line says that one


# -- fit's objective and table's prices ---------------------------------------------------------------------------

def test_fit_by_cost_needs_a_price_and_names_the_cost_of_every_plan():
    code, _, err = vramplan("fit", "llama-3.1-8b", "--gpu", "2xRTX-4090", "--objective", "cost")
    assert code == 2 and "--objective cost: needs --price" in err
    code, out, _ = vramplan("fit", "llama-3.1-8b", "--gpu", "2xRTX-4090", "--objective", "cost", "--json")
    assert code == 2 and "--price" in json.loads(out)["error"]
    code, out, _ = vramplan("fit", "llama-3.1-8b", "--gpu", "2xRTX-4090", "--objective", "cost", "--price", "0.4",
                            "--json")
    d = json.loads(out)
    assert code == 0 and d["objective"] == "cost"
    plans = [d["recommended"]] + d["alternatives"]
    assert all(p["cost_per_million_tokens_usd"] >= d["recommended"]["cost_per_million_tokens_usd"] for p in plans)
    for p in plans:
        gpus = p["plan"]["gpus"]
        assert p["cost_per_million_tokens_usd"] == pytest.approx(0.4 * gpus / p["tokens_per_s"] / 3600 * 1e6, rel=1e-3)
        assert ("not measured" in p["speed_source"]) and (gpus == 1 or p["speed_not_measured"])
    code, out, _ = vramplan("fit", "llama-3.1-8b", "--gpu", "2xRTX-4090", "--objective", "cost", "--price", "0.4")
    assert "ranked by cost per token" in out and "costs least per token" in out


def test_table_names_the_fastest_and_the_cheapest_gpu_for_the_job():
    code, out, _ = vramplan("table", "--model", "llama-3.1-8b", "--tokens", "20M", "--epochs", "3", "--price",
                            "A100-80GB=1.8,H100-80GB=2.9,RTX-4090=0.4", "--json")
    d = json.loads(out)
    assert code == 0 and d["prices_usd_per_gpu_hour"] == {"A100-80GB": 1.8, "H100-80GB": 2.9, "RTX-4090": 0.4}
    timed = [r for r in d["rows"] if r["time_cost"]]
    priced = [r for r in timed if r["time_cost"]["cost_usd"] is not None]
    assert {r["gpu"] for r in priced} == {"A100-80GB", "H100-80GB", "RTX-4090"}
    assert d["fastest"]["gpu"] == max(timed, key=lambda r: r["time_cost"]["tokens_per_s"])["gpu"]
    assert d["cheapest"]["gpu"] == min(priced, key=lambda r: r["time_cost"]["cost_usd"])["gpu"]
    for r in priced:
        tc = r["time_cost"]
        assert tc["train_s"] == pytest.approx(tc["optimizer_steps"] * tc["step_s"], rel=1e-3)
        assert tc["cost_usd"] == pytest.approx(tc["train_s"] / 3600 * tc["price_usd_per_gpu_hour"], abs=0.01)
    code, out, _ = vramplan("table", "--model", "llama-3.1-8b", "--tokens", "20M", "--price", "RTX-4090=0.4")
    assert code == 0 and "cheapest of the priced: RTX-4090" in out and "fastest: " in out and "tokens/s" in out


@pytest.mark.parametrize("price,message", [("3", "which GPU?"), ("NoSuchGPU=3", "unknown GPU"),
                                           ("T4=-1", "cannot be negative"), ("T4=abc", "not a number")])
def test_table_prices_are_refused_by_name(price, message):
    code, _, err = vramplan("table", "--model", "llama-3.2-1b", "--price", price)
    assert code == 2 and message in err


def test_table_over_models_takes_one_number_for_its_gpu_only():
    code, out, _ = vramplan("table", "--gpu", "T4", "--price", "0.35", "--json")
    assert code == 0 and json.loads(out)["prices_usd_per_gpu_hour"] == {"T4": 0.35}
    code, _, err = vramplan("table", "--gpu", "T4", "--price", "L4=0.7")
    assert code == 2 and "L4 is not in this table" in err
