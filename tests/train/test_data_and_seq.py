import json
from functools import partial

import pytest

from vramplan.errors import VramplanError
from vramplan.plan import TrainPlan
from vramplan.train.arguments import training_kwargs
from vramplan.train.data import load_examples
from vramplan.train.seqlen import choose_seq
from vramplan.train.verify import Trial, verify
from vramplan.units import GiB

HfPlan = partial(TrainPlan, trainer="hf")  # the plain Trainer: what these figures were measured on


def write(tmp_path, lines, name="d.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_three_formats_in_json_lines_and_json(tmp_path):
    rows = [{"instruction": "Say hi", "input": "", "output": "hi"},
            {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+2?"},
                          {"role": "assistant", "content": "4"}]},
            {"text": "plain"}]
    ex = load_examples(write(tmp_path, [json.dumps(r) for r in rows]))
    assert [e.kind for e in ex] == ["alpaca", "messages", "text"]
    assert ex[0].prompt.endswith("### Response:\n") and ex[0].response == "hi"
    as_json = tmp_path / "d.json"
    as_json.write_text(json.dumps(rows))
    assert load_examples(as_json) == ex


@pytest.mark.parametrize("line, message", [
    ("{not json", "line 2 is not JSON"),
    ('{"instruction": "x"}', "line 2: alpaca records need a non-empty string 'output'"),
    ('{"messages": [{"role": "user", "content": "q"}]}', "line 2: the last message must be the assistant"),
    ('{"messages": [{"role": "robot", "content": "q"}]}', "line 2: messages[0] needs a role"),
    ('{"prompt": "x"}', "line 2: no known fields"),
    ('[1]', "line 2: expected an object"),
])
def test_malformed_lines_are_named_before_any_gpu_work(tmp_path, line, message):
    path = write(tmp_path, ['{"text": "fine"}', line])
    with pytest.raises(VramplanError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_examples(path)


def test_sequence_choice_from_token_lengths():
    lengths = list(range(1, 1001))  # 1..1000 tokens
    c = choose_seq(lengths)
    assert c.seq == 1024 and c.truncated == 0 and c.percentile == 99  # p99 = 990 -> rounded up to 1024
    c = choose_seq([100] * 99 + [5000])
    assert c.seq == 128 and c.truncated == 1 and "1 example(s) longer" in c.describe()
    assert choose_seq([5000] * 10, max_positions=4096).seq == 4096


def test_plan_maps_to_training_arguments():
    k = training_kwargs(HfPlan(batch=2, grad_accum=8, optim="paged_adamw_32bit", dtype="fp16").to_dict(), "out",
                        max_steps=50, save_steps=25)
    assert (k["per_device_train_batch_size"], k["gradient_accumulation_steps"], k["max_steps"]) == (2, 8, 50)
    assert k["fp16"] and not k["bf16"] and k["optim"] == "paged_adamw_32bit" and k["save_steps"] == 25
    assert k["gradient_checkpointing_kwargs"] == {"use_reentrant": False}


def test_verification_steps_down_on_oom_and_on_a_peak_over_the_limit():
    plans = [HfPlan(batch=8, grad_accum=2, gradient_checkpointing=False), HfPlan(batch=4, grad_accum=4),
             HfPlan(batch=2, grad_accum=8)]
    outcomes = iter([Trial("oom"), Trial("ok", peak_bytes=30 * GiB), Trial("ok", peak_bytes=20 * GiB)])
    said = []
    result = verify(plans, lambda p: next(outcomes), 24 * GiB, say=said.append)
    assert result.plan == plans[2] and len(result.tried) == 3
    assert "ran out of memory; stepping down" in said[0] and "over 24.00 GiB" in said[1] and said[2].startswith("verified")


def test_verification_stops_on_errors_that_are_not_memory():
    result = verify([HfPlan(), HfPlan(batch=2)], lambda p: Trial("error", error="bad checkpoint"), 2**34,
                    say=lambda s: None)
    assert result.plan is None and len(result.tried) == 1 and "failed: bad checkpoint" in result.log[0]


def test_under_a_memory_cap_finishing_is_passing_and_running_out_steps_down():
    plans = [HfPlan(batch=4, grad_accum=4), HfPlan(batch=2, grad_accum=8)]
    outcomes = iter([Trial("oom"), Trial("ok", peak_bytes=15 * GiB)])
    said = []
    result = verify(plans, lambda p: next(outcomes), int(14.9 * GiB), say=said.append, capped=True)
    assert result.plan == plans[1] and "ran out of memory" in said[0]
    assert "peak 15.00 GiB under the memory cap of 14.90 GiB" in said[1]
