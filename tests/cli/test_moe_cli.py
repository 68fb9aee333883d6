"""fit, table and check on Mixture-of-Experts models with the measured-families gate opened in the test."""
import json

import pytest

from vramplan import decisions as D
from vramplan.cli import build_parser, main
from tests.profiles.moe_gate import moe_gate_open  # noqa: F401  (the fixture)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_fit_qwen3_30b_on_a_4090_gives_the_memory_verdict(moe_gate_open, capsys):
    code, out, err = run(capsys, "fit", "qwen3-30b-a3b", "--gpu", "RTX-4090")
    assert code == 1 and not err
    assert "NOTHING FITS" in out and "MoE experts (not quantized) (108.0 GiB)" in out
    assert "left in 16 bits they would take 54.0 GiB, but that path was not measured" in out
    assert "H200" in out and "lora dropout 0" in out
    code, out, _ = run(capsys, "fit", "qwen3-30b-a3b", "--gpu", "RTX-4090", "--json")
    codes = [r["code"] for r in json.loads(out)["reasons"]]
    assert D.EXPERTS_KBIT_PREPARE in codes and D.PARAMWRAPPER_DROPOUT not in codes


def test_no_kbit_prepare_on_an_moe_model_is_refused_by_name(moe_gate_open, capsys):
    code, out, err = run(capsys, "fit", "qwen3-30b-a3b", "--gpu", "H100-80GB", "--no-kbit-prepare")
    assert code == 2 and not out
    assert "--no-kbit-prepare" in err and "were not measured" in err
    code, out, _ = run(capsys, "estimate", "olmoe-1b-7b", "--gpu", "H200", "--dropout", "0", "--no-kbit-prepare",
                       "--json")
    assert code == 2 and json.loads(out)["error"]


def test_a_typed_dropout_with_expert_targets_is_refused_with_flags_fit_has(moe_gate_open, capsys):
    code, out, err = run(capsys, "fit", "olmoe-1b-7b", "--gpu", "A100-80GB", "--dropout", "0.05")
    assert code == 2 and not out
    assert "lora.ParamWrapper does not work with lora_dropout != 0" in err
    assert "--dropout 0" in err and "--targets q_proj,k_proj,v_proj,o_proj" in err
    parsed = build_parser().parse_args(["fit", "olmoe-1b-7b", "--gpu", "A100-80GB", "--dropout", "0",
                                        "--targets", "q_proj,k_proj,v_proj,o_proj"])
    assert parsed.dropout == 0.0 and parsed.targets == "q_proj,k_proj,v_proj,o_proj"


def test_fit_with_attention_targets_keeps_the_dropout_and_freezes_the_experts(moe_gate_open, capsys):
    code, out, _ = run(capsys, "fit", "olmoe-1b-7b", "--gpu", "A100-80GB", "--targets", "q_proj,k_proj,v_proj,o_proj",
                       "--json")
    result = json.loads(out)
    assert code == 0 and result["recommended"]["plan"]["dropout"] == 0.05
    lora = next(r for r in result["reasons"] if r["code"] == D.EXPERTS_LORA)
    assert lora["wrapped"] == [] and "frozen" in lora["text"]


@pytest.mark.parametrize("args", [("--model", "qwen3-30b-a3b"), ("--gpu", "RTX-4090")])
def test_table_answers_moe_rows_with_fits_or_not(moe_gate_open, capsys, args):
    code, out, err = run(capsys, "table", *args)
    assert code == 0 and not err
    assert "LoRA on qwen3_moe's routed experts" in out
    _, out, _ = run(capsys, "table", *args, "--json")
    rows = {r["model"] + r["gpu"]: r for r in json.loads(out)["rows"]}
    assert rows["qwen3-30b-a3bRTX-4090"]["fits"] is False
    assert rows["qwen3-30b-a3bRTX-4090"]["experts_lora"]["dropout"] == 0.0


def test_check_judges_an_moe_plan_and_refuses_a_typed_dropout(moe_gate_open, capsys):
    code, out, err = run(capsys, "check", "qwen3-30b-a3b", "--gpu", "RTX-4090")
    assert code == 1 and not err
    assert "DOES NOT FIT" in out and "dominant: MoE experts (not quantized)" in out and "lora dropout 0" in out
    assert out.count("LoRA on qwen3_moe's routed experts") == 1
    code, out, _ = run(capsys, "check", "olmoe-1b-7b", "--gpu", "A100-80GB", "--json")
    verdict = json.loads(out)
    assert code == 0 and verdict["advice"][1]["code"] == D.EXPERTS_LORA
    code, _, err = run(capsys, "check", "olmoe-1b-7b", "--gpu", "A100-80GB", "--dropout", "0.1")
    assert code == 2 and "--dropout 0" in err


def test_estimate_plans_an_moe_model_as_fit_does_when_the_dropout_is_left_open(moe_gate_open, capsys):
    code, out, _ = run(capsys, "estimate", "olmoe-1b-7b", "--gpu", "H200", "--json")
    assert code in (0, 1) and json.loads(out)["plan"]["dropout"] == 0.0
    code, out, err = run(capsys, "estimate", "olmoe-1b-7b", "--gpu", "H200", "--dropout", "0.05")
    assert code == 2 and "lora.ParamWrapper does not work with lora_dropout != 0" in err


def test_partial_or_offloaded_checkpointing_of_an_moe_model_is_refused_and_never_chosen(moe_gate_open, capsys):
    for flag in (["--checkpoint-every", "2"], ["--checkpoint-offload"]):
        code, out, err = run(capsys, "estimate", "olmoe-1b-7b", "--gpu", "H200", *flag)
        assert code == 2 and not out and "measured on dense models only" in err
    for gpu in ("H200", "A100-80GB", "A100-40GB"):
        code, out, _ = run(capsys, "fit", "olmoe-1b-7b", "--gpu", gpu, "--json")
        plans = [json.loads(out)["recommended"]] + json.loads(out)["alternatives"]
        for c in filter(None, plans):
            assert c["plan"]["checkpoint_every"] == 1 and not c["plan"]["checkpoint_offload"]
