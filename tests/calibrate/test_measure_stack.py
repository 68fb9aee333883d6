"""The stack-measuring worker's arguments and trainer, on CPU (the GPU runs are in calibration/stacks)."""
import pytest

pytest.importorskip("trl")
pytest.importorskip("torch")

from vramplan.calibrate.measure_stack import make_stack_trainer, stack_arguments, trainable_dtypes  # noqa: E402
from vramplan.plan import TrainPlan  # noqa: E402

PLAN = TrainPlan(seq=32, batch=2, quant="none", optim="adamw_torch", trainer="hf").to_dict()
EVAL = {"batch": 4, "samples": 8, "at_step": 2}


def spec(trainer: str, **more) -> dict:
    return {"plan": PLAN, "steps": 3, "stack": {"trainer": trainer}, "eval": EVAL,
            "args": {"use_cpu": True, "bf16": False}, "output_dir": "/tmp/vramplan-test-stack", **more}


def test_sftconfig_gets_the_plans_length_and_the_evaluation_schedule(tmp_path):
    args = stack_arguments(spec("trl"), PLAN, str(tmp_path))
    assert type(args).__name__ == "SFTConfig" and args.max_length == 32 and args.packing is False
    assert args.eval_steps == 2 and args.per_device_eval_batch_size == 4 and args.eval_strategy.value == "steps"
    hf = stack_arguments(spec("hf"), PLAN, str(tmp_path))
    assert type(hf).__name__ == "TrainingArguments" and hf.per_device_train_batch_size == 2


def test_both_stacks_build_on_a_tiny_model(tmp_path):
    from peft import get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from tests.synthetic import save_tokenizer
    from vramplan.calibrate.measure import lora_config
    cfg = AutoConfig.for_model("llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=2, vocab_size=3000)
    save_tokenizer(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    for trainer in ("trl", "hf"):
        model = get_peft_model(AutoModelForCausalLM.from_config(cfg), lora_config(PLAN))
        built = make_stack_trainer(spec(trainer, output_dir=str(tmp_path / trainer)), model, tok, [])
        assert type(built).__name__ == ("SFTTrainer" if trainer == "trl" else "Trainer")
        assert list(trainable_dtypes(built.model)) == ["float32"]  # not quantized: nothing cast to bf16


@pytest.mark.parametrize("trainer", ["trl", "hf"])
@pytest.mark.parametrize("offload", [False, True])
def test_partial_and_offloaded_checkpointing_reach_the_layers(tmp_path, monkeypatch, trainer, offload):
    """every_n_layers and offload go through both stacks' arguments to the Trainer, which checkpoints layer i when
    i % every_n_layers == 0 (here 2 of 3 layers at every 2) and trains with the checkpoints offloaded."""
    import torch
    import transformers.modeling_utils as mu
    from peft import get_peft_model
    offloaded = []

    def save_on_cpu(pin_memory=False, device_type="cuda"):  # CPU torch has no pinned allocator: the CUDA-only part
        offloaded.append(pin_memory)
        return torch.autograd.graph.save_on_cpu(pin_memory=False, device_type=device_type)
    monkeypatch.setattr(mu, "save_on_cpu", save_on_cpu)
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from tests.synthetic import save_tokenizer
    from vramplan.calibrate.measure import lora_config
    from vramplan.calibrate.measure_stack import checkpointed_layer_count
    plan = TrainPlan(seq=16, batch=1, quant="none", optim="adamw_torch", trainer="hf", checkpoint_every=2,
                     checkpoint_offload=offload).to_dict()
    cfg = AutoConfig.for_model("llama", hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                               num_attention_heads=4, num_key_value_heads=2, vocab_size=3000)
    save_tokenizer(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    model = get_peft_model(AutoModelForCausalLM.from_config(cfg), lora_config(plan))
    s = {**spec(trainer, output_dir=str(tmp_path / trainer)), "plan": plan, "eval": None, "steps": 1}
    built = make_stack_trainer(s, model, tok, [])
    assert built.args.gradient_checkpointing_kwargs == {"use_reentrant": False, "every_n_layers": 2,
                                                        **({"offload": True} if offload else {})}
    built.train()
    assert checkpointed_layer_count(built.model) == 2
    assert offloaded == ([True] * 2 if offload else [])  # each checkpointed layer's forward, pinned


def test_the_poller_stops_after_the_polled_steps_and_the_record_says_so(monkeypatch):
    from types import SimpleNamespace
    from vramplan.calibrate import measure_stack
    from vramplan.calibrate.measure_stack import PhasedNvmlPeak, eval_recorder
    monkeypatch.setattr(measure_stack, "nvml_used", lambda index=0: 1)  # no NVML on the CPU
    poller, record = PhasedNvmlPeak(interval_s=0.001), {}
    control = SimpleNamespace(should_evaluate=False)
    with poller:
        recorder = eval_recorder(poller, poll_steps=2, record=record)
        recorder.on_step_end(None, SimpleNamespace(global_step=1), control)
        assert poller._thread.is_alive() and "nvml_polled_steps" not in record
        recorder.on_step_end(None, SimpleNamespace(global_step=2), control)
        assert not poller._thread.is_alive() and record["nvml_polled_steps"] == 2
