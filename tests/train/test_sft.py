"""TRL's SFTTrainer as train builds it: the release check, the SFTConfig keyword arguments, the fp32 way out."""
import json

import pytest

from vramplan.errors import VramplanError
from vramplan.plan import TrainPlan
from vramplan.train.progress import Progress, format_duration
from vramplan.train.run import eval_split, verification_trial
from vramplan.train.sft import run_kwargs, run_release, sft_config_kwargs


def test_train_plans_with_the_installed_release():
    assert run_release(None, "1.16.0") == "1.16"
    assert run_release("1.16", "1.16.0") == "1.16"
    assert run_release(None, "1.7.1") == "1.7"


def test_an_unmodelled_installed_release_is_refused_naming_the_modelled_ones():
    with pytest.raises(VramplanError) as e:
        run_release(None, "0.19.1")
    assert "TRL 0.19.1 is not a release vramplan models" in str(e.value) and "1.0, 1.1" in e.value.hint


def test_a_trl_version_other_than_the_installed_one_is_refused():
    with pytest.raises(VramplanError) as e:
        run_release("1.15", "1.16.0")
    assert "the installed TRL is 1.16.0" in str(e.value)


def test_no_trl_installed_is_refused_with_the_way_out():
    with pytest.raises(VramplanError) as e:
        run_release(None, None)
    assert "vramplan[train]" in e.value.hint and "--trainer hf" in e.value.hint


def test_sft_config_caps_the_length_at_the_plan_and_packs_nothing():
    plan = TrainPlan(seq=1024, batch=4, grad_accum=4, gradient_checkpointing=False)
    kw = sft_config_kwargs(plan.to_dict(), "out", max_steps=5)
    assert kw["max_length"] == 1024 and kw["packing"] is False and kw["padding_free"] is False
    assert kw["per_device_train_batch_size"] == 4 and kw["gradient_checkpointing"] is False
    assert kw["max_steps"] == 5 and kw["bf16"] is True and kw["fp16"] is False
    json.dumps(kw)  # plain data: what the dry run prints


def test_run_kwargs_follow_the_stack_and_the_evaluation_batch():
    trl = run_kwargs(TrainPlan(eval_batch=8), "out", evaluate=True, eval_steps=50)
    assert trl["max_length"] == 2048 and trl["per_device_eval_batch_size"] == 8 and trl["eval_steps"] == 50
    hf = run_kwargs(TrainPlan(trainer="hf"), "out", evaluate=True)
    assert "max_length" not in hf and "eval_strategy" not in hf  # no evaluation batch: no evaluation


def test_a_tenth_is_held_out_for_evaluation_only_when_the_plan_evaluates():
    data = [{"input_ids": [i]} for i in range(25)]
    assert eval_split(data, 0) == (data, [])
    train, evals = eval_split(data, 4)
    assert [d["input_ids"][0] for d in evals] == [9, 19] and len(train) == 23
    train, evals = eval_split(data[:3], 4)
    assert len(evals) == 1 and len(train) == 2


@pytest.mark.parametrize("trainer", ["trl", "hf"])
def test_verification_runs_the_plans_stack_with_its_evaluation(monkeypatch, trainer):
    seen = {}

    def fake_run(cmd, **kw):
        seen["worker"] = cmd[2]
        seen["spec"] = json.loads(open(cmd[3]).read())
        with open(cmd[4], "w") as f:
            json.dump({"status": "ok", "nvml": {"before_init": 100, "peak": 5100}, "tokens_per_s": 9.0}, f)

    monkeypatch.setattr("vramplan.train.run.subprocess.run", fake_run)
    plan = TrainPlan(trainer=trainer, eval_batch=2 if trainer == "trl" else 0, dtype="fp16",
                     fp32_adapters=trainer == "trl")
    trial = verification_trial("/models/x", plan, memory_cap_bytes=15 << 30)
    assert seen["worker"] == "vramplan.calibrate.measure_stack" and trial.status == "ok" and trial.peak_bytes == 5000
    assert seen["spec"]["stack"] == {"trainer": trainer, "fp32_adapters": trainer == "trl"}
    assert seen["spec"]["memory_cap_bytes"] == 15 << 30
    if trainer == "trl":
        assert seen["spec"]["eval"] == {"batch": 2, "samples": 2, "at_step": 2}
        assert seen["spec"]["plan"]["loss_path"] == "trl_fused"
    else:
        assert seen["spec"]["eval"] is None and seen["spec"]["plan"]["loss_path"] == "hf_full"


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class Tty:
    def __init__(self, tty):
        self.text, self.tty = "", tty

    def write(self, s):
        self.text += s

    def flush(self):
        pass

    def isatty(self):
        return self.tty


def test_progress_measures_tokens_per_second_after_the_first_step_and_the_time_left():
    clock, out = Clock(), Tty(False)
    p = Progress(total_steps=40, tokens_per_step=1000, predicted_tokens_per_s=600, stream=out, clock=clock)
    clock.t = 30.0  # the first step (optimizer state, kernel warm-up) is not counted
    p.step_end(1)
    clock.t = 32.0
    p.step_end(2)  # not a line: piped output prints every 40 // 20 steps
    clock.t = 34.0
    p.loss = 1.5
    assert "500 tokens/s (predicted 600)" in p.line(3, 34.0) and "1m14s left" in p.line(3, 34.0)
    assert "loss 1.5000" in p.line(3, 34.0)
    assert out.text.count("\n") == 1 and "\r" not in out.text
    assert "step 2/40" in out.text and "500 tokens/s" in out.text


def test_progress_redraws_in_place_on_a_terminal():
    clock, out = Clock(), Tty(True)
    p = Progress(total_steps=2, tokens_per_step=10, stream=out, clock=clock)
    p.step_end(1)
    clock.t = 1.0
    p.step_end(2)
    assert out.text.startswith("\r[") and out.text.count("\r") == 2 and out.text.endswith("\n")
    assert "[########################] step 2/2" in out.text


def test_an_evaluation_gets_a_line_of_its_own_over_the_bar():
    out = Tty(True)
    p = Progress(total_steps=4, tokens_per_step=10, stream=out, clock=Clock())
    p.step_end(1)
    p.note("evaluation after step 1: loss 2.0000")
    bar_len = len(p.line(1, 0.0))
    assert out.text.endswith("\r" + "evaluation after step 1: loss 2.0000".ljust(bar_len) + "\n")


def test_durations_read_as_hours_minutes_seconds():
    assert format_duration(5) == "5s" and format_duration(75) == "1m15s" and format_duration(7260) == "2h01m"


def test_the_memory_cap_leaves_the_allocator_the_cap_less_the_cuda_context(monkeypatch):
    torch = pytest.importorskip("torch")
    from vramplan.train import memory_cap
    GiB = 1 << 30
    fractions = []
    monkeypatch.setattr(torch, "zeros", lambda *a, **k: None)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: type("P", (), {"total_memory": 140 * GiB}))
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda f, i: fractions.append(f))
    monkeypatch.setattr("vramplan.gpu_info.nvml_used", lambda index=0: 2 * GiB + GiB // 2)  # 0.5 GiB context
    out = memory_cap.cap_process(15 * GiB, 2 * GiB)
    assert out == {"memory_cap_bytes": 15 * GiB, "context_bytes": GiB // 2, "allocator_cap_bytes": 14.5 * GiB}
    assert fractions == [14.5 / 140]
