import json

import pytest

from vramplan import config_file
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
                        "targets": "all-linear", "attn": "flash_attention_2"}
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
