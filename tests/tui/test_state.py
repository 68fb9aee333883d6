"""PlanState: the TUI's plan edits, without Textual."""
from vramplan.tui.state import PlanState
from tests.profiles.moe_gate import moe_gate_open  # noqa: F401  (the fixture)


def test_gpus_key_cycles_gpu_counts_keeping_the_effective_batch():
    s = PlanState.create("llama-3.1-8b", "RTX-4090")
    assert s.plan.effective_batch == 16
    s.cycle("gpus")
    assert s.plan.gpus == 2 and s.plan.effective_batch == 16 and s.plan.parallel == "fsdp"
    assert s.breakdown().peak_allocated_bytes < PlanState.create("llama-3.1-8b", "RTX-4090").breakdown().peak_allocated_bytes
    s.cycle("parallel")
    assert s.plan.parallel == "ddp" and s.plan.kbit_prepare
    assert "--gpus 2 --parallel ddp" in s.train_command()
    for _ in range(3):
        s.cycle("gpus")
    assert s.plan.gpus == 1 and s.plan.kbit_prepare and "--gpus" not in s.train_command()


def test_exported_train_command_carries_the_offload_the_fit_picked():
    # the fault: the command dropped --offload and --allocator, so train planned 14.99 GiB on a 14.91 GiB T4
    import shlex

    from vramplan.cli import build_parser
    from vramplan.cli.common import given_plan_fields
    from vramplan.flags import plan_from_fields
    s = PlanState.create("qwen2.5-14b", "T4")
    s.cycle("gpus")
    result = s.fit()
    assert result.recommended.plan.offload
    s.apply(result.recommended.plan)
    cmd = s.train_command()
    assert "--offload" in cmd and "--allocator default" in cmd and "--gpus 2 --parallel fsdp" in cmd
    args = build_parser().parse_args(shlex.split(cmd)[1:])
    given = given_plan_fields(args, skip=("seq",))
    per_gpu = args.effective_batch // (given["batch"] * given["gpus"])
    assert plan_from_fields({**given, "seq": int(args.seq), "grad_accum": per_gpu}) == s.plan


def test_the_help_screen_names_every_declared_key():
    import re

    from vramplan.flags import tui_keys
    from vramplan.tui.screens import HELP
    named = set(re.findall(r"(?:^|\s)([a-zA-Z])(?: / [A-Z])?\s{2}", HELP))
    assert {key for key, _, _ in tui_keys()} <= named  # a new key in plan.py needs its line in screens.HELP


def test_an_moe_model_gets_dropout_0_while_its_experts_are_lora_targets(moe_gate_open):
    s = PlanState.create("olmoe-1b-7b", "A100-80GB")
    assert s.plan.dropout == 0.0
    s.breakdown()  # no Refusal: the plan is one peft runs
    while s.plan.targets == "all-linear":
        s.cycle("targets")
    assert s.plan.dropout == 0.05  # attention only: the experts stay frozen, the recipe's dropout is back
    while s.plan.targets != "all-linear":
        s.cycle("targets")
    assert s.plan.dropout == 0.0
    s.set_model("llama-3.1-8b")
    assert s.plan.dropout == 0.05
    s.set_model("qwen3-30b-a3b")
    assert s.plan.dropout == 0.0


def test_the_exported_command_keeps_the_trl_stack_and_leaves_its_release_to_train():
    s = PlanState.create("llama-3.1-8b", "T4")  # fp16: TRL's way out is casting the adapters back to fp32
    assert s.plan.trainer == "trl" and s.plan.fp32_adapters
    cmd = s.train_command()
    assert "--trainer trl" in cmd and "--fp32-adapters" in cmd and "--trl-version" not in cmd
    assert "--allocator default" in cmd  # the allocator the TUI planned, not the one train would pick
