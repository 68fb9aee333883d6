"""The measuring code on CPU: plan -> runner arguments, a tiny real QLoRA step through the same recipe code."""
from functools import partial
import json
import math

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")

from vramplan.calibrate import measure  # noqa: E402
from vramplan.memory.adapter import trainable_params  # noqa: E402
from vramplan.memory.weights import base_components  # noqa: E402
from vramplan.plan import TrainPlan  # noqa: E402
HfPlan = partial(TrainPlan, trainer="hf")  # the plain Trainer: what these figures were measured on
from vramplan.profiles import arch_from_config  # noqa: E402

TINY = {"model_type": "llama", "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512, "tie_word_embeddings": False}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from transformers import AutoConfig, AutoModelForCausalLM
    cfg = dict(TINY)
    folder = tmp_path_factory.mktemp("tiny")
    config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(folder)
    return str(folder)


def test_plan_maps_to_training_arguments(tmp_path):
    plan = HfPlan(batch=4, grad_accum=4, optim="paged_adamw_8bit", dtype="fp16",
                     gradient_checkpointing=True).to_dict()
    args = measure.training_arguments(plan, str(tmp_path), 7, use_cpu=True)
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps, args.max_steps) == (4, 4, 7)
    assert args.fp16 and not args.bf16 and args.optim.value == "paged_adamw_8bit"
    assert args.gradient_checkpointing and args.gradient_checkpointing_kwargs == {"use_reentrant": False}


def test_quantization_and_lora_configs_follow_the_plan():
    qc = measure.quantization_config(HfPlan(quant="nf4", double_quant=False).to_dict())
    assert qc.load_in_4bit and qc.bnb_4bit_quant_type == "nf4" and not qc.bnb_4bit_use_double_quant
    assert measure.quantization_config(HfPlan(quant="int8").to_dict()).load_in_8bit
    assert measure.quantization_config(HfPlan(quant="none").to_dict()) is None
    lc = measure.lora_config(HfPlan(rank=8, alpha=16, targets=("q_proj", "v_proj")).to_dict())
    assert lc.r == 8 and lc.lora_alpha == 16 and set(lc.target_modules) == {"q_proj", "v_proj"}


def test_random_tokens_are_unpadded_causal_lm_examples():
    data = measure.RandomTokens(3, 16, 100)
    item = data[1]
    assert len(data) == 3 and item["input_ids"].shape == (16,) and torch.equal(item["input_ids"], item["labels"])


@pytest.mark.parametrize("quant", ["nf4", "none"])
def test_tiny_recipe_step_on_cpu_matches_the_analytic_counts(checkpoint, tmp_path, quant):
    plan = HfPlan(rank=8, alpha=16, batch=2, seq=32, optim="adamw_torch", quant=quant).to_dict()
    stages = dict(measure.load_for_training(checkpoint, plan, device_map={"": "cpu"}))
    model = stages["peft"]
    arch = arch_from_config(TINY, name="tiny", origin="test")
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == trainable_params(arch, HfPlan(rank=8))
    if quant == "nf4":
        import bitsandbytes as bnb
        packed = sum(m.weight.numel() * m.weight.element_size() for m in model.modules()
                     if isinstance(m, bnb.nn.Linear4bit))
        assert packed == base_components(arch, HfPlan())["weights_4bit"]
        # prepare_model_for_kbit_training casts every non-4-bit 16-bit parameter to fp32
        assert {p.dtype for n, p in model.named_parameters() if "lora" not in n and p.dtype != torch.uint8} == \
            {torch.float32}
    result = measure.make_trainer(model, plan, 2, str(tmp_path), use_cpu=True).train()
    assert math.isfinite(result.training_loss)


def test_record_schema_of_a_failed_run_without_gpu(monkeypatch):
    """Without CUDA a run is recorded as an error with its message, not lost."""
    if torch.cuda.is_available():
        pytest.skip("has a GPU")
    monkeypatch.setattr(measure, "detect_gpu", lambda: {"name": "none"})
    monkeypatch.setattr(measure, "nvml_used", lambda index=0: 0)
    monkeypatch.setattr(measure, "nvml_memory", lambda index=0: {"reserved": 0})
    record = measure.run({"run_key": "k", "model": "tiny", "plan": HfPlan().to_dict(), "checkpoint": "/none"})
    assert record["status"] == "error" and record["error"] and record["schema"] == measure.SCHEMA
    assert json.loads(json.dumps(record))["run_key"] == "k"


@pytest.mark.gpu
def test_measured_tiny_run_on_gpu_matches_the_allocator_prediction(checkpoint, tmp_path):
    from vramplan.planner import Planner
    from vramplan.profiles import find_gpu
    from vramplan.store.calibrations import Calibrations
    plan = HfPlan(seq=256, batch=2)
    record = measure.run({"run_key": "gpu-test", "model": "tiny", "checkpoint": checkpoint, "plan": plan.to_dict(),
                          "steps": 3, "output_dir": str(tmp_path)})
    assert record["status"] == "ok", record.get("error")
    arch = arch_from_config(TINY, name="tiny", origin="test")
    planner = Planner(find_gpu(record["gpu"]["name"]), Calibrations.shipped())
    predicted = planner.estimate(arch, plan).peak_allocated_bytes
    assert predicted == pytest.approx(record["torch"]["max_allocated"], rel=0.25)
