"""Through the real entry point, as users run it."""
import json
import subprocess
import sys

import pytest

from vramplan import decisions as D
from vramplan.units import GiB


def vramplan(*args):
    proc = subprocess.run([sys.executable, "-m", "vramplan", *args], capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def test_estimate_json_contract():
    code, out, _ = vramplan("estimate", "llama-3.1-8b", "--gpu", "T4", "--json")
    assert code == 0
    d = json.loads(out)
    for key in ("peak_bytes", "peak_allocated_bytes", "components", "peak_phase", "fits", "gpu", "plan",
                "assumptions"):
        assert key in d
    assert isinstance(d["peak_bytes"], int) and sum(d["components"].values()) == d["peak_bytes"]
    assert d["plan"]["dtype"] == "fp16"  # T4 has no bf16
    assert any("transformers 5" in a for a in d["assumptions"])


def test_estimate_table_shows_verdict_dominant_part_and_biggest_saving():
    code, out, _ = vramplan("estimate", "qwen2.5-7b", "--gpu", "rtx4090", "--seq", "4096", "--batch", "2",
                            "--trainer", "hf")
    assert code == 0
    assert "DOES NOT FIT:" in out and "short" in out and "dominant: logits + loss buffers" in out
    assert "on a card with room nvidia-smi would show" in out
    assert "biggest saving: --seq 2048" in out and "of card" in out
    code, out, _ = vramplan("estimate", "qwen2.5-7b", "--gpu", "rtx4090")
    assert "FITS with the 5% safety margin:" in out and "to spare" in out


def test_estimate_vram_flag_changes_the_verdict():
    _, out, _ = vramplan("estimate", "llama-3.1-8b", "--gpu", "H100", "--vram", "8GiB", "--json")
    d = json.loads(out)
    assert d["fits"] is False and d["capacity_bytes"] == 8 * GiB


def test_fit_json_contract_and_plan_fields():
    code, out, _ = vramplan("fit", "llama-3.1-8b", "--gpu", "A100-80GB", "--json")
    assert code == 0
    d = json.loads(out)
    plan = d["recommended"]["plan"]
    for key in ("rank", "micro_batch", "grad_accum", "dtype", "optim", "gradient_checkpointing"):
        assert key in plan
    assert plan["micro_batch"] * plan["grad_accum"] == 16
    assert d["recommended"]["required_bytes"] <= d["limit_bytes"]
    assert d["gpu"]["name"] == "A100-80GB" and d["alternatives"]


def test_fit_when_nothing_fits_says_why_and_what_would():
    code, out, _ = vramplan("fit", "llama-3.1-70b", "--gpu", "RTX-4090", "--json")
    assert code == 1
    d = json.loads(out)
    assert d["recommended"] is None and d["reasons"]
    assert d["suggestions"]["gpus"] and d["suggestions"]["smaller_models"]


def test_table_over_models_and_over_gpus():
    code, out, _ = vramplan("table", "--gpu", "T4", "--json")
    rows = json.loads(out)["rows"]
    assert code == 0 and len(rows) >= 30
    assert {r["model"] for r in rows if r["fits"]} and {r["model"] for r in rows if not r["fits"]}
    code, out, _ = vramplan("table", "--model", "llama-3.1-8b")
    assert code == 0 and "H200" in out and "longest seq" in out


def test_catalog_listings():
    assert len(json.loads(vramplan("gpus", "--json")[1])) >= 25
    assert len(json.loads(vramplan("models", "--json")[1])) >= 30


@pytest.mark.parametrize("args, needle", [
    (["estimate", "llama-3.1-9b", "--gpu", "T4"], "llama-3.1-8b"),
    (["estimate", "llama-3.1-8b", "--gpu", "T5"], "did you mean"),
    (["estimate", "llama-3.1-8b", "--gpu", "T4", "--rank", "0"], "--rank"),
    (["estimate", "llama-3.1-8b", "--gpu", "T4", "--seq", "-5"], "--seq"),
    (["estimate", "llama-3.1-8b", "--gpu", "T4", "--optim", "adam_fancy"], "--optim"),
    (["estimate", "llama-3.1-8b", "--gpu", "T4", "--vram", "lots"], "--vram"),
    (["estimate", "/nonexistent/config.json", "--gpu", "T4"], "no such file"),
])
def test_bad_input_is_one_clear_line_and_exit_2(args, needle):
    code, out, err = vramplan(*args)
    assert code == 2 and needle in err and "Traceback" not in err


def test_malformed_local_config_is_exit_2(tmp_path):
    (tmp_path / "config.json").write_text("{oops")
    code, _, err = vramplan("estimate", str(tmp_path), "--gpu", "T4")
    assert code == 2 and "malformed JSON" in err and "Traceback" not in err


def test_calibrate_dry_run_lists_the_sweep_without_a_gpu():
    code, out, _ = vramplan("calibrate", "--dry-run", "--boundary")
    assert code == 0 and "58 runs over 8 architectures" in out


def test_calibrate_without_gpu_writes_nothing(tmp_path):
    code, _, err = vramplan("calibrate", "--quick", "--out", str(tmp_path))
    assert code == 2 and "Traceback" not in err
    assert not any(tmp_path.iterdir())


HEAVY = ("torch", "transformers", "pandas", "scipy")


@pytest.mark.parametrize("command", [
    ["fit", "llama-3.1-8b", "--gpu", "T4", "--json"], ["estimate", "qwen2.5-7b", "--gpu", "2xRTX-4090", "--json"],
    ["check", "llama-3.1-8b", "--gpu", "T4", "--json"], ["table", "--model", "qwen2.5-0.5b", "--json"],
])
def test_the_planning_path_imports_no_heavy_library(command):
    code = ("import sys, vramplan.cli, vramplan.search, vramplan.memory, vramplan.planner, vramplan.tui.app, "
            "vramplan.tui.state, vramplan.cli.train; "
            f"from vramplan.cli import main; main({command!r}); "
            f"heavy = [m for m in {HEAVY!r} if m in sys.modules]; assert not heavy, heavy")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_check_exit_codes_and_json(tmp_path):
    assert vramplan("check", "llama-3.1-8b", "--gpu", "A100-80GB")[0] == 0
    code, out, _ = vramplan("check", "llama-3.1-8b", "--gpu", "T4", "--seq", "4096", "--trainer", "hf", "--json")
    d = json.loads(out)
    assert code == 1 and d["fits"] is False
    assert d["nearest_fit"] is None or d["nearest_fit"]["seq"] == 4096  # the nearest plan keeps the sequence
    code, out, _ = vramplan("check", "llama-3.1-8b", "--gpu", "T4", "--seq", "2048", "--batch", "4", "--trainer", "hf")
    assert code == 1 and "FAIL" in out and "dominant:" in out and "fits instead" in out
    assert vramplan("check", "llama-3.1-8b", "--gpu", "T9")[0] == 2


def test_check_reads_a_config_and_flags_win(tmp_path):
    path = tmp_path / "axolotl.yml"
    path.write_text("base_model: Qwen/Qwen2.5-7B\nadapter: qlora\nload_in_4bit: true\nlora_r: 16\n"
                    "micro_batch_size: 8\nsequence_len: 4096\nwandb_project: x\nnot_a_key: 1\n")
    code, out, _ = vramplan("check", "--gpu", "RTX-4090", "--config", str(path), "--json")
    d = json.loads(out)
    assert code == 1 and d["breakdown"]["plan"]["batch"] == 8 and d["breakdown"]["model"] == "qwen2.5-7b"
    assert d["config"]["unknown"] == ["not_a_key"] and d["config"]["ignored"] == ["wandb_project"]
    code, out, err = vramplan("check", "--gpu", "RTX-4090", "--config", str(path), "--batch", "1", "--seq", "1024")
    assert code == 0 and "not_a_key" in err
    (tmp_path / "bad.yml").write_text("a: [")
    code, _, err = vramplan("check", "--gpu", "T4", "--config", str(tmp_path / "bad.yml"))
    assert code == 2 and "malformed YAML" in err and "Traceback" not in err


def test_fit_on_2x_name_plans_per_gpu_and_compares_with_one():
    code, out, err = vramplan("fit", "llama-3.1-8b", "--gpu", "2xRTX-4090", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["gpus"] == 2 and result["recommended"]["plan"]["gpus"] == 2 and "one_gpu" in result
    assert result["reasons"][0]["code"] in D.GPUS and "GPUs" in result["reasons"][0]["text"]
    _, text, _ = vramplan("fit", "llama-3.1-8b", "--gpu", "2xRTX-4090")
    assert "on 2 x RTX-4090" in text and "layout" in text


def test_conflicting_gpu_counts_are_a_clear_error():
    code, _, err = vramplan("estimate", "llama-3.1-8b", "--gpu", "2xH200", "--gpus", "4")
    assert code == 2 and "names 2 GPUs" in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["estimate", "fit", "check", "table", "gpus", "models", "calibrate", "train", "tui"])
def test_every_command_prints_its_help(command):
    code, out, err = vramplan(command, "--help")
    assert code == 0, err
    assert out.startswith("usage: vramplan " + command) and "Traceback" not in err


def test_estimate_names_the_default_allocators_upper_bound():
    code, out, _ = vramplan("estimate", "llama-3.1-8b", "--gpu", "2xH200", "--seq", "4096")
    assert code == 0 and "upper bound:" in out and "--allocator expandable avoids it" in out
    code, out, _ = vramplan("estimate", "llama-3.1-8b", "--gpu", "2xH200", "--seq", "4096", "--allocator", "expandable")
    assert code == 0 and "upper bound:" not in out


def test_the_table_says_its_longest_seq_is_another_plans():
    code, out, _ = vramplan("table", "--gpu", "T4")
    assert code == 0 and "longest seq: of the leanest plan (micro-batch 1, checkpointing" in out
