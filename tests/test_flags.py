"""The flag declarations: every plan field has one, and a plan survives being written as flags and read back."""
import dataclasses

import pytest

from vramplan import flags
from vramplan.cli import build_parser
from vramplan.cli.common import plan_from_args
from vramplan.plan import TrainPlan
from vramplan.profiles import find_gpu, find_model

PLANS = [
    TrainPlan(),
    TrainPlan(rank=64, alpha=16, dropout=0.0, targets=("q_proj", "v_proj"), batch=4, grad_accum=2, seq=4096,
              dtype="fp16", optim="adamw_torch_fused", gradient_checkpointing=False, attn="eager", quant="fp4",
              double_quant=False, kbit_prepare=False, allocator="expandable", trainer="hf"),
    TrainPlan(gpus=2, parallel="ddp", quant="int8", trainer="hf"),
    TrainPlan(gpus=4, offload=True, optim="adamw_torch", batch=2, trainer="hf"),
    TrainPlan(trl_version="1.4", eval_batch=8),
    TrainPlan(dtype="fp16", fp32_adapters=True, eval_batch=2),
]


def test_every_plan_field_is_declared_with_a_flag():
    for f in dataclasses.fields(TrainPlan):
        flag = f.metadata.get("flag")
        assert isinstance(flag, flags.Flag), f.name
        assert set(flag.keys) <= set(flags.TOOLS), (f.name, flag.keys)  # a key under another name is never read


@pytest.mark.parametrize("plan", PLANS, ids=range(len(PLANS)))
def test_a_plan_round_trips_through_its_flags(plan):
    args = build_parser().parse_args(["estimate", "llama-3.1-8b", "--gpu", "T4", *flags.command_args(plan)])
    assert plan_from_args(args, find_gpu("T4"), find_model("llama-3.1-8b")) == plan


def test_the_plan_line_names_what_changed():
    line = flags.plan_line(PLANS[3].to_dict())
    assert line.startswith("r=16 micro-batch 2 x accum 1, seq 2048") and "4 GPUs, FSDP full shard + CPU offload" in line
