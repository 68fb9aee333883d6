"""Training stacks as a plan dimension: releases, loss paths, what cannot run, and the CLI's answers."""
import json

import pytest

from tests.cli.test_cli import vramplan
from vramplan.errors import VramplanError
from vramplan.layout import resolve
from vramplan.plan import TrainPlan
from vramplan.stacks import check_loss_type, loss_path, normalize_release, trl_releases


def test_every_release_from_1_0_to_1_16_has_its_measured_loss_path():
    assert trl_releases() == tuple(f"1.{i}" for i in range(17))
    paths = {r: loss_path("trl", r) for r in trl_releases()}
    # the measured groups (calibration/stacks): same peak within a group, different across
    assert {paths[r] for r in ("1.0", "1.1", "1.2", "1.6")} == {"trl_full"}
    assert {paths[r] for r in ("1.3", "1.4", "1.5")} == {"trl_full_copies"}
    assert {paths[f"1.{i}"] for i in range(7, 13)} == {"trl_chunked"}
    assert {paths["1.13"], paths["1.14"]} == {"trl_chunked_lowp"}
    assert {paths["1.15"], paths["1.16"]} == {"trl_fused"}
    assert loss_path("hf", "1.16") == "hf_full"


def test_release_spellings_and_unmodelled_releases():
    assert normalize_release("1.16.0") == normalize_release("v1.16") == "1.16"
    with pytest.raises(VramplanError, match="TRL 1.17 is not modelled") as e:
        normalize_release("1.17")
    assert "1.0, 1.1" in e.value.hint and "1.16" in e.value.hint


def test_sfttrainer_casts_a_quantized_models_adapters_to_bf16():
    assert resolve(TrainPlan()).trainable_itemsize == 2
    assert resolve(TrainPlan(trainer="hf")).trainable_itemsize == 4
    assert resolve(TrainPlan(quant="none")).trainable_itemsize == 4  # only quantized models are cast
    assert resolve(TrainPlan(dtype="fp16", fp32_adapters=True)).trainable_itemsize == 4


def test_fp16_through_sfttrainer_is_refused_with_the_ways_out():
    with pytest.raises(VramplanError, match="fp16 QLoRA does not run through TRL's SFTTrainer") as e:
        TrainPlan(dtype="fp16")
    assert "--dtype bf16" in e.value.hint and "--fp32-adapters" in e.value.hint and "--trainer hf" in e.value.hint
    TrainPlan(dtype="fp16", trainer="hf")  # the plain Trainer runs it
    TrainPlan(dtype="fp16", quant="none")  # nothing is cast without quantization


def test_the_refusal_is_what_the_gpu_measured():
    from vramplan.calibrate.stack_accuracy import stack_records
    failed = [r for r in stack_records() if r["plan"]["dtype"] == "fp16" and not r["stack"].get("fp32_adapters")]
    assert failed and all(r["status"] == "error" and "not implemented for 'BFloat16'" in r["error"] for r in failed)
    cast_back = [r for r in stack_records() if r["stack"].get("fp32_adapters")]
    assert cast_back and all(r["status"] == "ok" for r in cast_back)


def test_loss_type_against_the_release():
    check_loss_type("chunked_nll", "1.10")
    check_loss_type("chunked_nll", "1.16")  # an alias of the fused nll from 1.15
    check_loss_type("nll", "1.2")
    with pytest.raises(VramplanError, match="does not exist in TRL 1.2"):
        check_loss_type("chunked_nll", "1.2")
    with pytest.raises(VramplanError, match="not measured"):
        check_loss_type("nll", "1.10")


@pytest.mark.parametrize("args, needle", [
    (["--trainer", "dpo"], "--trainer"),
    (["--trl-version", "2.0"], "TRL 2.0 is not modelled"),
    (["--dtype", "fp16"], "fp16 QLoRA does not run through TRL's SFTTrainer"),
    (["--gpus", "2", "--trainer", "trl"], "over several GPUs is not measured"),
    (["--trainer", "hf", "--fp32-adapters"], "--fp32-adapters"),
    (["--eval-batch", "-1"], "--eval-batch"),
])
def test_bad_stack_input_exits_2_with_json_too(args, needle):
    code, out, err = vramplan("estimate", "llama-3.1-8b", "--gpu", "T4", *args)
    assert code == 2 and needle in err and "Traceback" not in err
    code, out, _ = vramplan("check", "llama-3.1-8b", "--gpu", "T4", *args, "--json")
    d = json.loads(out)
    assert code == 2 and d["exit_code"] == 2 and needle in d["error"] + (d["hint"] or "")


def test_every_output_names_the_stack_and_fit_never_recommends_what_cannot_run():
    code, out, _ = vramplan("estimate", "llama-3.1-8b", "--gpu", "T4")
    assert code == 0 and "TRL 1.16 SFTTrainer, adapters cast back to fp32" in out
    code, out, _ = vramplan("fit", "llama-3.1-8b", "--gpu", "T4", "--json")
    d = json.loads(out)
    rec = d["recommended"]["plan"]
    assert rec["trainer"] == "trl" and rec["dtype"] == "fp16" and rec["fp32_adapters"] is True
    codes = [r["code"] for r in d["reasons"]]
    assert "stack" in codes and "fp32_adapters_for_fp16" in codes
    code, out, _ = vramplan("estimate", "llama-3.1-8b", "--gpu", "H100", "--trainer", "hf")
    assert "transformers Trainer" in out


def test_the_fused_head_needs_a_fraction_of_the_full_logits():
    from vramplan.planner import Planner
    from vramplan.profiles import find_gpu, find_model
    from vramplan.store.calibrations import Calibrations
    planner = Planner(find_gpu("H200"), Calibrations.shipped())
    m = find_model("gemma-3-1b")
    hf, trl = (planner.estimate(m, TrainPlan(batch=4, seq=1024, trainer=t)) for t in ("hf", "trl"))
    assert "logits_loss" in hf.components and trl.peak_bytes < 0.3 * hf.peak_bytes
    old = planner.estimate(m, TrainPlan(batch=4, seq=1024, trl_version="1.4"))
    assert old.peak_bytes > hf.peak_bytes  # 1.3-1.5 copied the logits for their metrics


def test_evaluation_is_a_phase_of_its_own():
    from vramplan.planner import Planner
    from vramplan.profiles import find_gpu, find_model
    from vramplan.store.calibrations import Calibrations
    planner = Planner(find_gpu("H200"), Calibrations.shipped())
    m = find_model("llama-3.2-1b")
    train = planner.estimate(m, TrainPlan(batch=4, seq=1024, trainer="hf"))
    both = planner.estimate(m, TrainPlan(batch=4, seq=1024, trainer="hf", eval_batch=8))
    assert both.peak_phase == "evaluation" and "evaluation" in both.phases
    assert both.train_peak_bytes == train.peak_bytes < both.peak_bytes
    assert both.required_bytes > train.required_bytes


@pytest.mark.parametrize("args, needle", [
    (["--gpu", "T4", "--dtype", "bf16"], "has no bf16"),
    (["--gpu", "V100-16GB", "--dtype", "bf16", "--trainer", "hf"], "has no bf16"),
    (["--gpu", "T4", "--attn", "flash_attention_2"], "older than flash attention 2 supports"),
])
def test_what_the_card_cannot_run_is_refused(args, needle):
    for command in ("estimate", "check"):
        code, _, err = vramplan(command, "llama-3.1-8b", *args)
        assert code == 2 and needle in err and "Traceback" not in err
    code, _, err = vramplan("fit", "llama-3.1-8b", "--gpu", "A100-80GB")
    assert code == 0


def test_chunked_nll_did_not_exist_before_1_4():
    for release in ("1.0", "1.3"):
        with pytest.raises(VramplanError, match=f"does not exist in TRL {release}"):
            check_loss_type("chunked_nll", release)


def test_review_findings_stay_fixed():
    from vramplan.config_file import parse
    from vramplan.planner import Planner
    from vramplan.profiles import find_gpu, find_model
    from vramplan.store.calibrations import Calibrations
    assert parse({"eval_strategy": False, "per_device_eval_batch_size": 4}).plan["eval_batch"] == 0  # YAML `no`
    cfg = parse({"max_length": 1024, "loss_type": "nll", "packing": False})
    assert "loss_type" in cfg.read and "packing" in cfg.ignored and not cfg.unknown
    with pytest.raises(VramplanError, match="is a number, not a release"):
        normalize_release(1.10)
    with pytest.raises(VramplanError, match="evaluation over several GPUs"):
        TrainPlan(gpus=2, trainer="hf", eval_batch=8)
    with pytest.raises(VramplanError, match="without quantization"):
        TrainPlan(quant="none", fp32_adapters=True)
    planner = Planner(find_gpu("H100-80GB"), Calibrations.shipped())
    m = find_model("llama-3.1-8b")
    assert planner.estimate(m, TrainPlan(batch=4)).fragmentation_event_bytes == 0  # no full logits on TRL 1.16
    hf = TrainPlan(trainer="hf", batch=4, gradient_checkpointing=False, allocator="expandable", seq=1024)
    assert (planner.estimate(m, hf.with_(eval_batch=1)).required_bytes
            >= planner.estimate(m, hf).required_bytes)  # evaluation never lowers what the run needs
