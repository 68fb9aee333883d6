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
    cb = PreflightCallback(gpu="T4")
    trainer, _ = trainer_for(checkpoint, tmp_path, TrainPlan(rank=8, batch=2, seq=64), cb)
    trainer.train()
    assert cb.verdict.fits and cb.plan.seq == 64  # read from the training data
    assert cb.plan.rank == 8 and cb.plan.quant == "nf4" and cb.plan.kbit_prepare


def test_an_oversized_job_stops_before_the_first_step(checkpoint, tmp_path):
    cb = PreflightCallback(gpu="T4", vram_bytes=512 * 2**20)
    trainer, _ = trainer_for(checkpoint, tmp_path, TrainPlan(rank=8, batch=2, seq=64), cb)
    with pytest.raises(PreflightError, match="does not fit") as err:
        trainer.train()
    assert "needs" in str(err.value) and trainer.state.global_step == 0


def test_a_recipe_without_prepare_and_other_targets_is_read_as_it_is(checkpoint, tmp_path):
    plan = TrainPlan(rank=4, alpha=8, dropout=0.0, targets=("q_proj", "v_proj"), batch=1, seq=32, quant="fp4",
                     double_quant=False, optim="adamw_torch")
    cb = PreflightCallback(gpu="T4", seq=32)
    trainer, model = trainer_for(checkpoint, tmp_path, plan, cb, prepare=False)
    seen = plan_from_model(model, trainer.args, 32)
    assert seen.kbit_prepare is False and seen.targets == ("q_proj", "v_proj") and seen.rank == 4
    assert (seen.quant, seen.double_quant, seen.dropout, seen.optim) == ("fp4", False, 0.0, "adamw_torch")
