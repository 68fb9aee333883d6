"""The TUI driven by key presses (Textual's Pilot): keys change the plan, and the numbers follow."""
import json

import pytest

pytest.importorskip("textual")

from vramplan.tui.app import create_app  # noqa: E402
from vramplan.tui.state import PlanState  # noqa: E402


def cell_values(app):
    table = app.query_one("#table")
    return {table.get_row_at(i)[0]: float(table.get_row_at(i)[1]) for i in range(table.row_count)}


async def test_keys_change_the_plan_and_the_numbers(tmp_path):
    app = create_app("llama-3.1-8b", "T4", output_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        before = cell_values(app)
        assert app.state.plan.seq == 2048 and app.state.plan.dtype == "fp16"  # T4 has no bf16
        assert app.state.plan.trainer == "trl" and app.state.plan.fp32_adapters  # fp16's way out through TRL
        await pilot.press("T")  # the plain Trainer, whose full logits grow with the sequence
        assert app.state.plan.trainer == "hf" and not app.state.plan.fp32_adapters
        before = cell_values(app)
        await pilot.press("s")
        assert app.state.plan.seq == 4096 and app.query_one("#seq").value == "4096"
        after = cell_values(app)
        assert after["logits + loss buffers"] > before["logits + loss buffers"]
        await pilot.press("g")
        assert app.state.plan.gradient_checkpointing is False
        assert "saved activations" in cell_values(app)
        await pilot.press("o")
        assert app.state.plan.optim == "adamw_8bit"
        await pilot.press("t")
        assert app.state.plan.targets == ("q_proj", "k_proj", "v_proj", "o_proj")
        await pilot.press("r", "R", "R")
        assert app.state.plan.rank == 8
        await pilot.press("u", "a", "d")
        p = app.state.plan
        # bf16 on a T4 is refused (notified), the last plan that runs stays: nothing exported can fail on the card
        assert (p.double_quant, p.attn, p.dtype) == (False, "eager", "fp16")


async def test_typing_a_model_and_a_gpu_replans(tmp_path):
    app = create_app("llama-3.1-8b", "T4", output_dir=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        app.set_focus(app.query_one("#gpu"))
        app.query_one("#gpu").value = ""
        await pilot.press(*"h200", "enter")
        assert app.state.gpu.name == "H200"
        assert "FITS" in str(app.query_one("#verdict").render())
        app.set_focus(app.query_one("#model"))
        app.query_one("#model").value = ""
        await pilot.press(*"llama-3.1-70b", "enter")
        assert app.state.model.name == "llama-3.1-70b"
        app.set_focus(app.query_one("#model"))
        app.query_one("#model").value = ""
        await pilot.press(*"no-such-model", "enter")
        assert app.state.model.name == "llama-3.1-70b"  # unchanged; the error is a notification


async def test_typed_numbers_apply_as_you_type(tmp_path):
    app = create_app("qwen2.5-7b", "RTX-4090", output_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        app.set_focus(app.query_one("#batch"))
        app.query_one("#batch").value = ""
        await pilot.press("4")
        assert (app.state.plan.batch, app.state.plan.grad_accum) == (4, 4)  # effective batch stays 16
        await pilot.press("escape", "b")
        assert (app.state.plan.batch, app.state.plan.grad_accum) == (8, 2)


async def test_fit_shows_the_recommendation_and_enter_applies_it(tmp_path):
    app = create_app("qwen2.5-7b", "A100-80GB", output_dir=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f")
        await app.workers.wait_for_complete()  # the fit runs off the UI thread
        await pilot.pause()
        screen = app.screen
        assert screen.__class__.__name__ == "FitScreen" and screen.choices
        chosen = screen.choices[0].plan
        assert chosen.effective_batch == 16 and chosen.batch > 1  # an 80 GB card takes bigger micro-batches
        await pilot.press("enter")
        assert app.state.plan == chosen and app.screen.__class__.__name__ != "FitScreen"


async def test_write_never_overwrites_and_copy_puts_the_command_on_the_clipboard(tmp_path):
    app = create_app("llama-3.2-3b", "L4", output_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("e", "e", "c")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "vramplan-plan-2.json", "vramplan-plan.json", "vramplan-train-2.sh", "vramplan-train.sh"]
    plan = json.loads((tmp_path / "vramplan-plan.json").read_text())
    assert plan["model"] == "llama-3.2-3b" and plan["train_command"].startswith("vramplan train meta-llama/")
    assert app.clipboard == plan["train_command"]


async def test_help_screen_opens_and_closes_and_q_quits(tmp_path):
    app = create_app(output_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        assert app.screen.__class__.__name__ == "HelpScreen"
        await pilot.press("escape")
        assert app.screen.__class__.__name__ != "HelpScreen"
        await pilot.press("q")
    assert app.return_code == 0


def test_state_targets_follow_the_model_layout():
    s = PlanState.create("phi-3-mini", "T4")
    assert s.target_choices() == ["all-linear", "qkv_proj,o_proj", "qkv_proj"]
    s.cycle("targets")
    s.set_model("llama-3.1-8b")  # qkv_proj does not exist there: back to all-linear
    assert s.plan.targets == "all-linear"


def test_train_command_round_trips_the_plan():
    s = PlanState.create("qwen2.5-7b", "A10G")
    s.cycle("gradient_checkpointing")
    cmd = s.train_command()
    assert "--no-gradient-checkpointing" in cmd and "--gpu A10G" in cmd and "Qwen/Qwen2.5-7B" in cmd


async def test_fit_runs_in_a_worker_and_comes_back_as_a_message(tmp_path):
    app = create_app("llama-3.2-1b", "T4", output_dir=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        worker = app.fit_in_background()  # what the f key starts: a thread worker, not a call on the UI thread
        assert worker.group == "fit"
        await worker.wait()
        await pilot.pause()  # FitReady reaches the app, which opens the fit screen
        assert app.screen.__class__.__name__ == "FitScreen" and app.screen.result.recommended


async def test_eval_and_stack_keys(tmp_path):
    app = create_app("llama-3.1-8b", "T4", output_dir=tmp_path)
    async with app.run_test(size=(100, 32)) as pilot:
        assert app.state.plan.eval_batch == 0
        await pilot.press("v", "v", "v")  # from no evaluation to 1, 2, 4
        await pilot.pause()
        assert app.state.plan.eval_batch == 4 and app.state.breakdown().peak_phase == "evaluation"
        await pilot.press("V")
        await pilot.pause()
        assert app.state.plan.eval_batch == 2
        await pilot.press("T")  # the plain Trainer: fp16 runs there without casting the adapters back
        await pilot.pause()
        assert app.state.plan.trainer == "hf" and not app.state.plan.fp32_adapters
        assert "--trainer hf" in app.state.train_command()


async def test_speed_time_and_cost_follow_the_plan_and_the_typed_job(tmp_path):
    app = create_app("llama-3.1-8b", "RTX-4090", output_dir=tmp_path)
    async with app.run_test(size=(100, 32)) as pilot:
        speed = str(app.query_one("#speed").render())
        tc = app.state.time_cost()
        assert f"~{tc['tokens_per_s']:,.0f} tokens/s, {tc['step_s']:.2f} s/step" in speed
        assert "datasheet x Hopper fit" in speed and "type the data set's tokens" in speed
        assert "type your USD per GPU hour" in speed
        app.set_focus(app.query_one("#tokens"))
        await pilot.press(*"20M", "enter")
        app.set_focus(app.query_one("#epochs"))
        await pilot.press(*"3", "enter")
        app.set_focus(app.query_one("#price"))
        await pilot.press(*"0.4", "enter")
        await pilot.pause()
        tc = app.state.time_cost()
        assert (app.state.job.tokens, app.state.job.epochs, app.state.job.price) == (20_000_000, 3.0, 0.4)
        assert tc["optimizer_steps"] == 1832 and tc["cost_usd"] == pytest.approx(tc["train_s"] / 3600 * 0.4, abs=0.01)
        speed = str(app.query_one("#speed").render())
        assert "time: 1,832 steps" in speed and f"cost: {tc['cost_usd']:,.2f} USD" in speed
        before = tc["train_s"]
        await pilot.press("b")  # micro-batch 2: faster steps, the same job
        await pilot.pause()
        assert app.state.time_cost()["train_s"] < before
        assert f"{app.state.time_cost()['cost_usd']:,.2f} USD" in str(app.query_one("#speed").render())
        app.set_focus(app.query_one("#price"))
        await pilot.press("end", *"x2", "enter")  # 0.4x2 is no price: refused, the last valid job stays
        await pilot.pause()
        assert app.state.job.price == 0.4 and app.query_one("#price").value == "0.4x2"
        app.query_one("#price").value = ""  # an empty field: no price, no cost
        await pilot.pause()
        assert app.state.job.price is None and "type your USD" in str(app.query_one("#speed").render())


def test_state_job_fields_parse_as_the_cli_does():
    s = PlanState.create("llama-3.2-1b", "T4")
    s.set_job("tokens", "1.5B")
    s.set_job("price", "0.35")
    assert s.job.tokens == 1_500_000_000 and s.job.price == 0.35
    s.set_job("tokens", "")
    assert s.job.tokens is None and s.time_cost()["train_s"] is None
    with pytest.raises(ValueError, match="epochs"):
        s.set_job("epochs", "0")
