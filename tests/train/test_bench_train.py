"""bench/train_vs_recipe.py's runs as specified, and bench/train_report.py's table from its records."""
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
pytest.importorskip("trl")

import train_report  # noqa: E402
import train_vs_recipe as bench  # noqa: E402
from vramplan.calibrate.records import append_run  # noqa: E402
from vramplan.units import GiB  # noqa: E402


def test_the_recipe_is_the_seed_as_written_through_sfttrainer():
    plan = bench.recipe_plan()
    assert (plan.rank, plan.alpha, plan.batch, plan.grad_accum, plan.seq) == (64, 64, 2, 8, 2048)
    assert plan.optim == "paged_adamw_32bit" and plan.gradient_checkpointing and plan.attn == "eager"
    assert plan.trainer == "trl" and plan.eval_batch == 8 and plan.effective_batch == 16


def test_the_capped_plan_fits_16_gib_through_trl_and_not_through_the_plain_trainer():
    plan, found = bench.capped_plan("H200")
    assert plan.seq == found["longest_seq_trl"] > found["longest_seq_hf"]
    assert bench.predicted(plan, bench.CAP16, "H200")["predicted_required_bytes"] <= bench.CAP16
    assert bench.predicted(plan.with_(trainer="hf"), bench.CAP16, "H200")["predicted_required_bytes"] > bench.CAP16


def test_a_stack_run_hands_the_worker_the_plan_its_cap_and_evaluation(monkeypatch, tmp_path):
    seen = {}

    def fake_run(cmd, **kw):
        seen.update(json.loads(Path(cmd[3]).read_text()))
        Path(cmd[4]).write_text(json.dumps({"status": "ok", "tokens_per_s": 1.0, "nvml": {"peak": GiB}}))
        return type("P", (), {"returncode": 0, "stderr": ""})()

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    rec = bench.stack_run(tmp_path, bench.recipe_plan(), "k", 100, cap=bench.CAP16, args=bench.RECIPE_ARGS)
    assert rec["status"] == "ok" and seen["memory_cap_bytes"] == bench.CAP16 and seen["args"]["max_grad_norm"] == 0.3
    assert seen["eval"] == {"batch": 8, "samples": 16, "at_step": bench.STEPS - 1}
    assert seen["stack"] == {"trainer": "trl", "fp32_adapters": False} and seen["plan"]["attn"] == "eager"


def stack_record(item, tokens_per_s, peak_gib, status="ok", call="2026-01-01T00:00:00", **bench_more):
    plan = bench.recipe_plan().to_dict()
    rec = {"status": status, "tokens_per_s": tokens_per_s, "nvml": {"before_init": 0, "peak": int(peak_gib * GiB)},
           "spec_plan": plan, "gpu": {"name": "NVIDIA H200", "driver": "580.1"},
           "versions": {"torch": "2.11", "trl": "1.16.0"},
           "memory_cap": {"memory_cap_bytes": bench_more.pop("cap", None)}}
    bench.tag(rec, 1, item, **bench_more)
    rec["bench"]["call"] = call
    return rec


def test_the_report_prints_the_speed_ratio_the_capped_runs_and_the_verification_errors(tmp_path):
    old = stack_record("vramplan", 10.0, 1.0, call="2025-01-01T00:00:00")
    for rec in [old] + [stack_record("vramplan", s, 20.0) for s in (3000, 3100, 2900)] + \
            [stack_record("seed recipe", s, 30.0) for s in (1500, 1400, 1600)]:
        append_run(tmp_path / "trl_comparison.jsonl", rec)
    planner = {"gpu_profile": "H200", "longest_seq_trl": 6912, "longest_seq_hf": 2560}
    append_run(tmp_path / "trl_capped.jsonl", stack_record("16 GiB cap, TRL", 2.0, 14.9, cap=bench.CAP16,
                                                            planner=planner, predicted_peak_bytes=int(15.1 * GiB),
                                                            predicted_required_bytes=int(14.5 * GiB)))
    append_run(tmp_path / "trl_capped.jsonl", stack_record("16 GiB cap, plain Trainer", 0, 15.9, status="oom",
                                                            cap=bench.CAP16))
    verification = {"plan": bench.recipe_plan().to_dict(), "status": "ok", "predicted_peak_bytes": int(10.2 * GiB),
                    "measured_peak_bytes": 10 * GiB, "error_pct": 2.0}
    train = {"status": "ok", "plan": bench.recipe_plan().to_dict(), "verifications": [verification]}
    append_run(tmp_path / "trl_train_runs.jsonl", bench.tag(train, 1, "vramplan train"))
    text = train_report.report(tmp_path)
    assert "Speed ratio, vramplan / recipe: **2.00x**" in text  # the older call's run is superseded
    assert "| 3 of 3 | 3,000 (2,900-3,100) | 20.00 GiB |" in text
    assert "| 16 GiB cap, TRL |" in text and "| 14.90 GiB | 15.10 GiB (14.50 GiB) |" in text
    assert "| 16 GiB cap, plain Trainer |" in text and "| oom | - |" in text
    assert "6912 tokens through TRL and 2560 through the plain Trainer" in text
    assert "| 10.20 GiB (-) | 10.00 GiB | +2.0% |" in text and "NVIDIA H200 (driver 580.1)" in text


def test_the_report_says_when_there_are_no_records(tmp_path):
    assert "no records" in train_report.report(tmp_path)


def test_both_parts_run_every_item_and_append_its_records(monkeypatch, tmp_path):
    """The GPU parts' wiring on the CPU: the workers and `vramplan train` answered by fakes, the checkpoint a folder."""
    import torch
    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        if "train" in cmd[:4]:  # `python -m vramplan train ...`
            out = Path(cmd[cmd.index("--output") + 1])
            out.mkdir(parents=True, exist_ok=True)
            plan = bench.recipe_plan().with_(rank=16, batch=4, grad_accum=4).to_dict()
            (out / "run_record.json").write_text(json.dumps({"plan": plan, "verifications": [], "steps": 4}))
            return type("P", (), {"returncode": 0, "stdout": "{}"})()
        spec = json.loads(Path(cmd[3]).read_text())
        status = "oom" if spec["stack"]["trainer"] == "hf" else "ok"
        Path(cmd[4]).write_text(json.dumps({"status": status, "tokens_per_s": 100.0, "nvml": {"peak": GiB},
                                            "timestamp": "t"}))
        return type("P", (), {"returncode": 0, "stderr": ""})()

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    monkeypatch.setattr(bench, "build_checkpoint", lambda model, work, device: work / model)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr("vramplan.gpu_info.detect_gpu", lambda index=0: {"name": "NVIDIA H200", "driver": "x"})
    monkeypatch.setattr(bench, "WORK", tmp_path / "work")
    monkeypatch.setattr(bench, "OUT", tmp_path / "records")
    bench.part1(bench.Budget(10_000))
    bench.part2(bench.Budget(10_000))
    items = [json.loads(line)["bench"]["item"] for f in sorted((tmp_path / "records").glob("*.jsonl"))
             for line in f.read_text().splitlines()]
    assert items.count("vramplan") == 3 and items.count("seed recipe") == 3
    assert {"vramplan train", "vramplan train fp16 T4 cap", "16 GiB cap, TRL",
            "16 GiB cap, plain Trainer"} <= set(items)
    t4 = next(c for c in calls if "T4" in c)
    assert t4[t4.index("--memory-cap") + 1] == "15GiB"
    assert "Speed ratio" in train_report.report(tmp_path / "records")


def test_a_part_out_of_time_records_what_it_skipped(monkeypatch, tmp_path):
    import torch
    monkeypatch.setattr(bench, "build_checkpoint", lambda model, work, device: work / model)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(bench, "WORK", tmp_path / "work")
    monkeypatch.setattr(bench, "OUT", tmp_path / "records")
    bench.part2(bench.Budget(0))
    rows = [json.loads(line) for f in (tmp_path / "records").glob("*.jsonl") for line in f.read_text().splitlines()]
    assert len(rows) == 5 and all(r["status"] == "skipped" for r in rows)


def test_without_a_run_record_the_planners_own_plan_is_measured(monkeypatch):
    monkeypatch.setattr("vramplan.gpu_info.detect_gpu", lambda index=0: {"name": "NVIDIA H200"})
    monkeypatch.setattr("vramplan.gpu_info.nvml_memory", lambda index=0: {"free": 139 * GiB})
    plan = bench.verified_plan({"status": "failed"})
    assert plan.trainer == "trl" and plan.eval_batch == 8 and plan.seq == 2048 and plan.effective_batch == 16
