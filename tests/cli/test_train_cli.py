"""`vramplan train` picks its stack: TRL's SFTTrainer at the installed release, fp16's way out, --trainer hf."""
from __future__ import annotations

import json

import pytest

from tests.cli.test_bad_input import CORPUS, run_cli

DATA = str(CORPUS / "data" / "ok.jsonl")


def dry(*more: str, gpu: str = "T4") -> tuple[object, dict, str]:
    code, out, err, escaped = run_cli(["train", "llama-3.1-8b", "--gpu", gpu, "--seq", "1024", "--dry-run",
                                       "--data", DATA, "--json", *more])
    assert escaped is None, escaped
    return code, (json.loads(out) if out.strip() else {}), err


@pytest.fixture
def installed(monkeypatch):
    def set_to(version):
        monkeypatch.setattr("vramplan.cli.train.installed_trl", lambda: version)
        monkeypatch.setattr("vramplan.train.sft.installed_trl", lambda: version)
    return set_to


def test_a_card_without_bf16_takes_the_fp32_adapter_way_out_when_the_dtype_is_left_open(installed):
    installed("1.16.0")
    code, d, err = dry()
    assert code == 0 and d["plan"]["dtype"] == "fp16" and d["plan"]["fp32_adapters"] is True
    assert d["sft_config"]["fp16"] is True and d["stack"]["fp32_adapters"] is True
    assert "adapters cast back to fp32" in err


def test_forced_fp16_through_trl_without_fp32_adapters_is_refused_with_the_ways_out(installed):
    installed("1.16.0")
    code, d, _ = dry("--dtype", "fp16")
    assert code == 2 and "fp16 QLoRA does not run through TRL" in d["error"]
    assert "--fp32-adapters" in d["hint"] and "--trainer hf" in d["hint"]
    code, d, _ = dry("--dtype", "fp16", "--fp32-adapters")
    assert code == 0 and d["plan"]["fp32_adapters"] is True


def test_train_plans_with_the_installed_release_and_names_it(installed):
    installed("1.12.0")
    code, d, err = dry(gpu="H200")
    assert code == 0 and d["plan"]["trl_version"] == "1.12" and d["stack"]["loss_path"] == "trl_chunked"
    assert "TRL 1.12.0 SFTTrainer, planned as release 1.12" in err


def test_an_unmodelled_installed_release_exits_2_naming_the_modelled_ones(installed):
    installed("0.19.1")
    code, d, _ = dry()
    assert code == 2 and "TRL 0.19.1" in d["error"] and "1.16" in d["hint"]


def test_a_trl_version_other_than_the_installed_exits_2(installed):
    installed("1.16.0")
    code, d, _ = dry("--trl-version", "1.15")
    assert code == 2 and "the installed TRL is 1.16.0" in d["error"]


def test_a_dry_run_without_trl_plans_the_release_asked_for_and_says_so(installed):
    installed(None)
    code, d, _ = dry("--trl-version", "1.7")
    assert code == 0 and d["plan"]["trl_version"] == "1.7" and "not installed" in d["stack"]["note"]


def test_trainer_hf_keeps_the_plain_trainer_and_its_training_arguments(installed):
    installed("1.16.0")
    code, d, _ = dry("--trainer", "hf")
    assert code == 0 and d["plan"]["trainer"] == "hf" and d["plan"]["fp32_adapters"] is False
    assert "max_length" not in d["training_arguments"] and "sft_config" not in d


def test_the_dry_run_prints_the_sftconfig_as_keyword_arguments(installed):
    installed("1.16.0")
    code, out, err, _ = run_cli(["train", "llama-3.1-8b", "--gpu", "H200", "--seq", "1024", "--dry-run",
                                 "--data", DATA, "--eval-batch", "4"])
    assert code == 0, err
    call = out[out.index("SFTConfig(\n"):]
    assert "    max_length=1024,\n" in call and "    per_device_eval_batch_size=4,\n" in call
    assert "    eval_strategy='steps',\n" in call and call.rstrip().endswith(")")
