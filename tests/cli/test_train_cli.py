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


def test_a_run_verifies_trains_through_sfttrainer_and_records_the_stack(tmp_path, monkeypatch, installed):
    """The real run on the CPU: verification replaced by a measured-looking trial (it needs CUDA), training real."""
    pytest.importorskip("trl")
    pytest.importorskip("bitsandbytes")
    torch = pytest.importorskip("torch")
    from transformers import AutoConfig, AutoModelForCausalLM

    from tests.synthetic import save_tokenizer, write_dataset
    from vramplan.train import run as train_run
    from vramplan.train.verify import Trial
    installed("1.16.0")
    model = tmp_path / "tiny"
    save_tokenizer(model, vocab_words=200)
    AutoModelForCausalLM.from_config(AutoConfig.for_model(
        "llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=256), dtype=torch.bfloat16).save_pretrained(model)
    data = write_dataset(tmp_path / "d.jsonl", n=24, min_words=5, max_words=20, vocab_words=200)
    real_train = train_run.train_full
    answers = iter([True])  # train's own check says yes; the CPU run after it sees the truth
    monkeypatch.setattr(torch.cuda, "is_available", lambda: next(answers, False))
    monkeypatch.setattr(train_run, "verification_trial", lambda src, plan, **kw: Trial("ok", 2 << 30, 1000.0))
    monkeypatch.setattr(train_run, "train_full", lambda *a, **kw: real_train(*a, **kw, use_cpu=True))
    out = tmp_path / "run"
    code, stdout, err, escaped = run_cli(["train", str(model), "--data", str(data), "--gpu", "H200", "--seq", "64",
                                          "--max-steps", "2", "--eval-batch", "2", "--save-steps", "1",
                                          "--output", str(out), "--json"])
    assert escaped is None and code == 0, err
    record = json.loads((out / "run_record.json").read_text())
    assert record["stack"] == {"trainer": "trl", "loss_path": "trl_fused", "release": "1.16", "installed": "1.16.0",
                               "fp32_adapters": False}
    assert record["versions"]["trl"] and record["steps"] == 2 and record["predicted_tokens_per_s"] > 0
    (v,) = record["verifications"]
    assert v["status"] == "ok" and v["measured_peak_bytes"] == 2 << 30
    assert v["error_pct"] == round(100 * (v["predicted_peak_bytes"] - (2 << 30)) / (2 << 30), 2)
    assert (out / "adapter" / "adapter_config.json").exists() and (out / "adapter" / "tokenizer.json").exists()
    assert json.loads(stdout)["record"]["stack"]["release"] == "1.16"  # stdout holds the one object
    assert "step 2/2" in err and "evaluation after step 1: loss" in err  # the progress bar went to stderr
    assert "{'loss'" not in err + stdout  # the Trainer's own log printer is replaced by the bar


def test_a_memory_cap_over_several_gpus_is_refused_before_the_dry_run_plans(installed):
    installed("1.16.0")
    code, d, err = dry("--gpus", "2", "--trainer", "hf", "--memory-cap", "10GiB", gpu="H200")
    assert code == 2 and "--memory-cap" in d["error"]


def test_a_dry_run_says_the_peak_its_first_verification_is_checked_against(tmp_path, capsys):
    from vramplan.cli import main
    from tests.synthetic import write_dataset
    data = write_dataset(tmp_path / "d.jsonl", n=8, min_words=64, max_words=200)
    code = main(["train", "llama-3.2-1b", "--data", str(data), "--seq", "512", "--gpu", "H200", "--dry-run",
                 "--output", str(tmp_path / "run"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["predicted_peak_bytes"] >= out["predicted_required_bytes"] > 0


def test_without_allocator_train_takes_the_one_whose_plan_needs_less_and_says_why(installed):
    installed("1.16.0")
    code, d, err = dry()  # TRL's fused path: the measured reserve under expandable segments is the larger
    a = d["allocator"]
    assert code == 0 and d["plan"]["allocator"] == a["train_allocator"] == "default" and not a["given"]
    assert a["expandable_required_bytes"] > a["default_required_bytes"] and "so `vramplan train` keeps it" in err
    code, d, err = dry("--trainer", "hf")  # full logits: the default allocator may re-split a logits segment
    assert d["plan"]["allocator"] == "expandable" and d["allocator"]["resplit_bytes"] > 0 and "re-split" in err
    code, d, err = dry("--trainer", "hf", "--allocator", "default")
    assert d["plan"]["allocator"] == "default" and d["allocator"]["given"] and "as given" in err
    assert d["capacity_bytes"] > 0 and "T4 (15.0 GiB: " in err
