import json

import pytest

from vramplan import config_file
from vramplan.config_file import parse
from vramplan.errors import VramplanError

AXOLOTL = """
base_model: meta-llama/Llama-3.1-8B
adapter: qlora
load_in_4bit: true
lora_r: 32
lora_alpha: 16
lora_dropout: 0.05
lora_target_linear: true
micro_batch_size: 2
gradient_accumulation_steps: 4
sequence_len: 4096
optimizer: paged_adamw_8bit
bf16: auto
gradient_checkpointing: true
flash_attention: true
learning_rate: 0.0002
my_custom_thing: 3
"""


def test_axolotl_qlora_keys(tmp_path):
    path = tmp_path / "qlora.yml"
    path.write_text(AXOLOTL)
    cfg = config_file.load(path)
    assert cfg.model == "meta-llama/Llama-3.1-8B"
    assert cfg.plan == {"rank": 32, "batch": 2, "grad_accum": 4, "seq": 4096, "alpha": 16.0, "dropout": 0.05,
                        "optim": "paged_adamw_8bit", "gradient_checkpointing": True, "quant": "nf4",
                        "targets": "all-linear", "attn": "flash_attention_2", "trainer": "hf"}  # AxolotlTrainer is a Trainer
    assert cfg.unknown == ["my_custom_thing"] and cfg.ignored == ["learning_rate"]


def test_transformers_style_sections(tmp_path):
    data = {"training_args": {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 2, "fp16": True,
                              "optim": "adamw_torch", "gradient_checkpointing": False, "output_dir": "out",
                              "max_seq_length": 1024},
            "lora_config": {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "target_modules": ["q_proj", "v_proj"],
                            "task_type": "CAUSAL_LM"},
            "bnb_config": {"load_in_4bit": True, "bnb_4bit_quant_type": "fp4", "bnb_4bit_use_double_quant": False,
                           "bnb_4bit_compute_dtype": "float16"}}
    path = tmp_path / "setup.json"
    path.write_text(json.dumps(data))
    cfg = config_file.load(path)
    assert cfg.plan["quant"] == "fp4" and cfg.plan["double_quant"] is False and cfg.plan["dtype"] == "fp16"
    assert cfg.plan["targets"] == ("q_proj", "v_proj") and cfg.plan["batch"] == 4 and cfg.plan["seq"] == 1024
    assert cfg.unknown == [] and set(cfg.ignored) == {"output_dir", "task_type"}


@pytest.mark.parametrize("name, content, message", [
    ("bad.json", "{oops", "malformed JSON"), ("bad.yml", "a: [1, 2", "malformed YAML"),
    ("list.json", "[1, 2]", "mapping"), ("n.json", '{"micro_batch_size": "two"}', "whole number"),
    ("a.json", '{"lora_alpha": "abc"}', "must be a number"), ("d.yml", "lora_dropout: [1, 2]", "must be a number"),
])
def test_malformed_configs_are_one_line_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(VramplanError, match=message):
        config_file.load(path)


def test_sftconfig_keys_mean_trl_and_evaluation_is_read():
    cfg = parse({"model_name_or_path": "llama-3.1-8b", "max_seq_length": 2048, "dataset_text_field": "text",
                 "eval_strategy": "steps", "per_device_train_batch_size": 2})
    assert cfg.plan["trainer"] == "trl" and cfg.plan["seq"] == 2048 and cfg.plan["eval_batch"] == 8
    assert parse({"eval_strategy": "steps", "per_device_eval_batch_size": 4}).plan["eval_batch"] == 4
    assert parse({"eval_strategy": "no", "per_device_eval_batch_size": 4}).plan["eval_batch"] == 0
    assert "trainer" not in parse({"per_device_train_batch_size": 2}).plan  # TrainingArguments alone: not told
    assert parse({"activation_checkpointing": False}).plan["gradient_checkpointing"] is False  # the newer name


@pytest.mark.parametrize("data, needle", [
    ({"bf16": True, "fp16": True}, "bf16 and fp16 are both set"),
    ({"load_in_4bit": True, "load_in_8bit": True}, "load_in_4bit and load_in_8bit are both set"),
    ({"use_liger_kernel": True}, "use_liger_kernel"),
    ({"padding_free": True}, "padding_free"),
    ({"packing": True}, "packing"),
    ({"activation_offloading": True}, "activation_offloading"),
    ({"label_smoothing_factor": 0.1}, "label_smoothing_factor"),
    ({"deepspeed": "ds_config.json"}, "deepspeed"),
    ({"fsdp": "full_shard"}, "fsdp"),
    ({"modules_to_save": ["embed_tokens"]}, "modules_to_save"),
    ({"lora_config": {"use_dora": True}}, "use_dora"),
    ({"gradient_checkpointing_kwargs": {"use_reentrant": False, "preserve_rng_state": False}}, "preserve_rng_state"),
])
def test_keys_that_change_memory_unmodelled_are_refused_by_name(data, needle):
    with pytest.raises(VramplanError, match=needle):
        parse(data)


def test_keys_set_off_are_not_refused():
    cfg = parse({"packing": False, "use_liger_kernel": False, "label_smoothing_factor": 0.0, "bf16": True,
                 "fp16": False})
    assert cfg.plan["dtype"] == "bf16" and cfg.plan["trainer"] == "trl"


def test_the_readme_lists_every_key_read_ignored_and_refused():
    from pathlib import Path
    from vramplan.stacks import refused_trl_keys
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for key in (*config_file.IGNORED, *config_file.REFUSED, *refused_trl_keys(), *config_file.TRL_MARKERS[:6]):
        if key != "compute_metrics":  # a function, never a file's key: the README says why it is not needed
            assert f"`{key}`" in readme, key


def test_a_key_one_typo_from_a_plan_key_is_refused_naming_the_key_it_meant():
    with pytest.raises(VramplanError, match="did you mean 'per_device_train_batch_size'"):
        parse({"per_device_train_batchsize": 8})
    assert parse({"my_custom_thing": 3}).unknown == ["my_custom_thing"]  # far from every key: only reported


def test_axolotl_evaluates_at_its_micro_batch_unless_told():
    base = {"adapter": "qlora", "load_in_4bit": True, "micro_batch_size": 2, "val_set_size": 0.05}
    assert parse(base).plan["eval_batch"] == 2
    assert parse({**base, "eval_batch_size": 4}).plan["eval_batch"] == 4
    assert parse({"eval_strategy": "steps", "per_device_train_batch_size": 2}).plan["eval_batch"] == 8


def test_partial_and_offloaded_checkpointing_are_read_from_the_checkpointing_kwargs():
    cfg = parse({"gradient_checkpointing": True,
                 "gradient_checkpointing_kwargs": {"use_reentrant": False, "every_n_layers": 4, "offload": True}})
    assert cfg.plan["checkpoint_every"] == 4 and cfg.plan["checkpoint_offload"] is True and not cfg.unknown
    assert parse({"activation_checkpointing_kwargs": {"every_n_layers": 2}}).plan["checkpoint_every"] == 2
    with pytest.raises(VramplanError, match="every_n_layers must be a whole number"):
        parse({"gradient_checkpointing_kwargs": {"every_n_layers": 0}})
    with pytest.raises(VramplanError, match="preserve_rng_state: not modelled"):
        parse({"gradient_checkpointing_kwargs": {"preserve_rng_state": False}})
