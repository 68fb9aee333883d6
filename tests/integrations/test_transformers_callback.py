"""The Trainer callback on CPU, against small real model objects (bitsandbytes 4-bit works on CPU)."""
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("bitsandbytes")

from vramplan.integrations.transformers_callback import PreflightCallback, PreflightError, plan_from_model  # noqa
from vramplan.plan import TrainPlan  # noqa: E402
from vramplan.calibrate import measure  # noqa: E402

TINY = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 512, "tie_word_embeddings": False}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from transformers import AutoConfig, AutoModelForCausalLM
    folder = tmp_path_factory.mktemp("tiny")
    AutoModelForCausalLM.from_config(AutoConfig.for_model("llama", **TINY), dtype=torch.bfloat16).save_pretrained(folder)
    return str(folder)


def trainer_for(checkpoint, tmp_path, plan: TrainPlan, callback, prepare: bool = True):
    p = plan.to_dict()
    if prepare:
        model = dict(measure.load_for_training(checkpoint, p, device_map={"": "cpu"}))["peft"]
    else:  # a recipe without prepare_model_for_kbit_training
        from peft import get_peft_model
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained(checkpoint, quantization_config=measure.quantization_config(p),
                                                     device_map={"": "cpu"})
        model = get_peft_model(model, measure.lora_config(p))
    trainer = measure.make_trainer(model, p, 1, str(tmp_path), callbacks=[callback], use_cpu=True)
    return trainer, model


def test_a_job_that_fits_passes_and_trains(checkpoint, tmp_path):
    cb = PreflightCallback(gpu="L4")
    trainer, _ = trainer_for(checkpoint, tmp_path, TrainPlan(rank=8, batch=2, seq=64), cb)
    trainer.train()
    assert cb.verdict.fits and cb.plan.seq == 64  # read from the training data
    assert cb.plan.rank == 8 and cb.plan.quant == "nf4" and cb.plan.kbit_prepare


def test_an_oversized_job_stops_before_the_first_step(checkpoint, tmp_path):
    cb = PreflightCallback(gpu="L4", vram_bytes=512 * 2**20)
    trainer, _ = trainer_for(checkpoint, tmp_path, TrainPlan(rank=8, batch=2, seq=64), cb)
    with pytest.raises(PreflightError, match="DOES NOT FIT") as err:
        trainer.train()
    assert "needs" in str(err.value) and trainer.state.global_step == 0


def test_a_recipe_without_prepare_and_other_targets_is_read_as_it_is(checkpoint, tmp_path):
    plan = TrainPlan(rank=4, alpha=8, dropout=0.0, targets=("q_proj", "v_proj"), batch=1, seq=32, quant="fp4",
                     double_quant=False, optim="adamw_torch")
    cb = PreflightCallback(gpu="L4", seq=32)
    trainer, model = trainer_for(checkpoint, tmp_path, plan, cb, prepare=False)
    seen = plan_from_model(model, trainer.args, 32)
    assert seen.kbit_prepare is False and seen.targets == ("q_proj", "v_proj") and seen.rank == 4
    assert (seen.quant, seen.double_quant, seen.dropout, seen.optim) == ("fp4", False, 0.0, "adamw_torch")


def sft_trainer_for(checkpoint, tmp_path, callback):
    """The seed recipe's shape on CPU: a prepared 4-bit peft model handed to TRL's SFTTrainer."""
    pytest.importorskip("trl")
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer
    from tests.synthetic import save_tokenizer
    save_tokenizer(checkpoint)
    p = TrainPlan(rank=8, batch=2, seq=32, trainer="hf").to_dict()
    model = dict(measure.load_for_training(checkpoint, p, device_map={"": "cpu"}))["peft"]
    data = Dataset.from_dict({"input_ids": torch.randint(0, 500, (4, 32)).tolist()})
    args = SFTConfig(output_dir=str(tmp_path), use_cpu=True, max_steps=1, per_device_train_batch_size=2,
                     max_length=32, report_to=[], bf16=False, eval_strategy="steps", eval_steps=1,
                     per_device_eval_batch_size=4)
    return SFTTrainer(model=model, args=args, train_dataset=data, eval_dataset=data,
                      processing_class=AutoTokenizer.from_pretrained(checkpoint), callbacks=[callback])


def test_an_sftconfig_is_read_as_trl_at_the_installed_release(checkpoint, tmp_path):
    import importlib.metadata
    from vramplan.stacks import normalize_release
    cb = PreflightCallback(gpu="L4", seq=32)
    trainer = sft_trainer_for(checkpoint, tmp_path, cb)
    seen = plan_from_model(trainer.model, trainer.args, 32)
    assert seen.trainer == "trl" and seen.trl_version == normalize_release(importlib.metadata.version("trl"))
    assert seen.eval_batch == 4 and not seen.fp32_adapters  # SFTTrainer cast the adapters to bf16


def test_fp16_through_sfttrainer_is_stopped_unless_the_adapters_are_cast_back(checkpoint, tmp_path):
    from vramplan.errors import VramplanError
    trainer = sft_trainer_for(checkpoint, tmp_path, PreflightCallback(gpu="L4", seq=32))
    trainer.args.fp16 = True  # what a T4 recipe sets; the first optimizer step would fail on bf16 gradients
    with pytest.raises(VramplanError, match="fp16 QLoRA does not run through TRL's SFTTrainer"):
        plan_from_model(trainer.model, trainer.args, 32)
    for p in trainer.model.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    assert plan_from_model(trainer.model, trainer.args, 32).fp32_adapters
