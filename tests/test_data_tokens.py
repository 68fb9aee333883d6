"""--data's count: the records `train` reads, tokenized as train encodes them, without torch or transformers."""
import json
import subprocess
import sys

import pytest

pytest.importorskip("tokenizers")
pytest.importorskip("jinja2")

from vramplan.data_records import load_examples  # noqa: E402
from vramplan.data_tokens import count_data, token_lengths, tokenizer_folder, tokenizer_settings  # noqa: E402
from vramplan.errors import VramplanError  # noqa: E402
from vramplan.profiles import find_model  # noqa: E402

from .tokenizer_files import put_in_cache, write_records, write_tokenizer  # noqa: E402

TEXT = {"text": "w1 w2 w3"}
ALPACA = {"instruction": "w1", "output": "w2"}
CHAT = {"messages": [{"role": "user", "content": "w1 w2"}, {"role": "assistant", "content": "w3"}]}


def lengths(tmp_path, rows, template="default"):
    folder = write_tokenizer(tmp_path / "tok", **({} if template == "default" else {"template": template}))
    path = write_records(tmp_path / "d.jsonl", rows)
    return token_lengths(load_examples(path), folder, str(path))[0]


def test_text_and_alpaca_without_a_template_count_the_bos_and_eos_train_adds(tmp_path):
    # <s> w1 w2 w3 </s>; alpaca: <s> ### Instruction: w1 ### Response: (the prompt), then w2 </s>
    assert lengths(tmp_path, [TEXT, ALPACA], template=None) == [5, 8]


def test_chat_without_a_template_joins_roles_as_train_does(tmp_path):
    # "user: w1 w2\nassistant: w3</s>": user: and assistant: are unknown words, one token each
    assert lengths(tmp_path, [CHAT], template=None) == [6]


def test_chat_and_alpaca_go_through_the_chat_template(tmp_path):
    # <s> <|user|> w1 w2 </s> <|assistant|> w3 </s>; alpaca as a user/assistant pair: the 5 prompt words
    assert lengths(tmp_path, [CHAT, ALPACA]) == [8, 11]


def test_the_count_matches_train_s_encode_through_transformers(tmp_path):
    """The same records through transformers' tokenizer and vramplan.train.run.encode: the same lengths."""
    pytest.importorskip("transformers")
    pytest.importorskip("torch")
    from tests.synthetic import save_tokenizer, write_dataset
    from vramplan.train.run import encode, load_tokenizer
    folder = save_tokenizer(tmp_path / "model", vocab_words=300)
    path = write_dataset(tmp_path / "d.jsonl", 12, min_words=3, max_words=40, vocab_words=300)
    examples = load_examples(path)
    tok = load_tokenizer(str(folder))
    assert token_lengths(examples, folder, str(path))[0] == [len(encode(e, tok)["input_ids"]) for e in examples]


def test_truncation_at_seq_and_the_counts(tmp_path):
    folder = write_tokenizer(tmp_path / "m", template=None)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    path = write_records(tmp_path / "d.jsonl", [TEXT, ALPACA, {"text": "w1"}])  # 5, 8 and 3 tokens
    model = type("M", (), {"name": "m", "hub_id": None})()
    d = count_data(str(path), str(folder), model, seq=4)
    assert (d.examples, d.tokens, d.truncated, d.longest, d.seq) == (3, 4 + 4 + 3, 2, 8, 4)
    assert d.tokenizer == str(folder) and d.chat_template is False


def test_settings_jinja_file_wins_list_templates_and_dict_tokens(tmp_path):
    folder = write_tokenizer(tmp_path / "t")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["chat_template"] = [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    assert tokenizer_settings(folder) == ("D", {"bos_token": "<s>", "eos_token": "</s>"})
    (folder / "chat_template.jinja").write_text("J")
    assert tokenizer_settings(folder)[0] == "J"


def test_generation_tags_and_a_template_that_refuses_a_record(tmp_path):
    tagged = ("{% for m in messages %}{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}"
              "{% endgeneration %}{% else %}{{ m['content'] }} {% endif %}{% endfor %}")
    assert lengths(tmp_path, [CHAT], template=tagged) == [3]
    strict = "{% if messages[0]['role'] != 'system' %}{{ raise_exception('a system message first') }}{% endif %}"
    with pytest.raises(VramplanError, match="example 1: the tokenizer's chat template refused it.*system message"):
        lengths(tmp_path / "b", [CHAT], template=strict)


def test_bad_records_give_train_s_line_numbered_errors(tmp_path):
    folder = write_tokenizer(tmp_path / "m")
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "w1"}\n{"instruction": "w1"}\n')
    with pytest.raises(VramplanError, match=r"d.jsonl: line 2: alpaca records need a non-empty string 'output'"):
        count_data(str(path), str(folder), None, 16)


def test_tokenizer_from_the_model_folder_or_its_config_json(tmp_path):
    folder = write_tokenizer(tmp_path / "m")
    (folder / "config.json").write_text("{}")
    model = type("M", (), {"name": "m", "hub_id": None})()
    assert tokenizer_folder(str(folder), model) == folder
    assert tokenizer_folder(str(folder / "config.json"), model) == folder


def test_tokenizer_of_a_catalog_model_from_the_hf_cache(tmp_path, hf_cache):
    model = find_model("llama-3.2-1b")
    with pytest.raises(VramplanError) as err:
        tokenizer_folder("llama-3.2-1b", model)
    assert str(hf_cache) in err.value.message and model.hub_id in err.value.message
    assert "--tokens N" in err.value.hint and f"hf download {model.hub_id} tokenizer.json" in err.value.hint
    snap = put_in_cache(hf_cache, model.hub_id.lower(), write_tokenizer(tmp_path / "tok"))  # the case kept as typed
    assert tokenizer_folder("llama-3.2-1b", model) == snap


def test_an_empty_local_folder_says_where_it_looked(tmp_path):
    model = type("M", (), {"name": "m", "hub_id": None})()
    (tmp_path / "m").mkdir()
    with pytest.raises(VramplanError, match=f"looked in {tmp_path / 'm'}"):
        tokenizer_folder(str(tmp_path / "m"), model)


def test_missing_tokenizers_package_names_the_extra(tmp_path, monkeypatch):
    folder = write_tokenizer(tmp_path / "m")
    path = write_records(tmp_path / "d.jsonl", [TEXT])
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # import raises ImportError
    with pytest.raises(VramplanError, match="needs the tokenizers package") as err:
        token_lengths(load_examples(path), folder, str(path))
    assert "vramplan[data]" in err.value.hint


def test_a_corrupt_tokenizer_json_is_an_error_not_a_traceback(tmp_path):
    folder = write_tokenizer(tmp_path / "m")
    (folder / "tokenizer.json").write_text("{}")
    path = write_records(tmp_path / "d.jsonl", [TEXT])
    with pytest.raises(VramplanError, match="not a tokenizer the tokenizers library reads"):
        token_lengths(load_examples(path), folder, str(path))


def test_the_planning_core_with_data_imports_neither_torch_nor_transformers(tmp_path):
    folder = write_tokenizer(tmp_path / "m")
    path = write_records(tmp_path / "d.jsonl", [TEXT, ALPACA, CHAT])
    code = ("import sys; from vramplan.data_tokens import count_data; "
            f"d = count_data({str(path)!r}, {str(folder)!r}, None, 64); print(d.tokens); "
            "print([m for m in ('torch', 'transformers') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["24", "[]"]  # 5 + 11 + 8
