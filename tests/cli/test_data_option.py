"""--data FILE on estimate, fit and table: the time to train from the training file itself."""
import json
import math

import pytest

pytest.importorskip("tokenizers")
pytest.importorskip("jinja2")

from vramplan.cli import main  # noqa: E402

from ..tokenizer_files import put_in_cache, write_records, write_tokenizer  # noqa: E402

ROWS = [{"text": "w1 w2 w3"}, {"instruction": "w1", "output": "w2"},  # 5 and 11 tokens (the template's pair)
        {"messages": [{"role": "user", "content": "w1 w2"}, {"role": "assistant", "content": "w3"}]}]  # 8


@pytest.fixture
def data(tmp_path):
    return str(write_records(tmp_path / "train.jsonl", ROWS))


@pytest.fixture
def cached_llama(tmp_path, hf_cache):
    """llama-3.2-1b's tokenizer files in the fake cache."""
    put_in_cache(hf_cache, "meta-llama/Llama-3.2-1B", write_tokenizer(tmp_path / "tok"))
    return "llama-3.2-1b"


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_estimate_counts_a_model_folder_s_data_and_json_carries_the_count(tmp_path, capsys, data):
    folder = write_tokenizer(tmp_path / "m")
    (folder / "config.json").write_text(json.dumps(
        {"model_type": "llama", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000, "max_position_embeddings": 2048}))
    code, out, _ = run(capsys, "estimate", str(folder), "--gpu", "H100-80GB", "--data", data, "--seq", "6",
                       "--epochs", "2", "--json")
    assert code == 0
    d = json.loads(out)
    tc = d["time_cost"]
    assert {k: d[k] for k in ("data_file", "examples", "tokens", "truncated")} == {
        k: tc[k] for k in ("data_file", "examples", "tokens", "truncated")}
    assert (tc["data_file"], tc["examples"], tc["tokens"], tc["truncated"]) == (data, 3, 5 + 6 + 6, 2)
    assert tc["longest_example_tokens"] == 11 and tc["tokens_packed"] and tc["chat_template"]
    assert tc["optimizer_steps"] == math.ceil(17 * 2 / tc["tokens_per_step"])
    assert any("packed into full steps" in a and "2 truncated" in a for a in tc["assumptions"])


def test_fit_and_table_count_with_the_hf_cache_tokenizer_of_a_catalog_model(capsys, data, cached_llama):
    code, out, _ = run(capsys, "fit", cached_llama, "--gpu", "H100-80GB", "--data", data, "--price", "2")
    assert code == 0
    assert f"data: {data}: 3 examples, 24 tokens" in out and "0 longer than --seq 2,048" in out
    assert "the tokens packed into full 2,048-token sequences, as the speed model assumes" in out
    code, out, _ = run(capsys, "table", "--model", cached_llama, "--data", data)
    assert code == 0 and out.rstrip().endswith("the time takes them packed into full --seq sequences")
    assert f"data: {data}: 3 examples, 24 tokens" in out
    code, out, _ = run(capsys, "table", "--model", cached_llama, "--data", data, "--epochs", "3", "--json")
    d = json.loads(out)
    assert (d["data_file"], d["examples"], d["tokens"], d["truncated"], d["epochs"]) == (data, 3, 24, 0, 3)
    fitting = [r for r in d["rows"] if r["time_cost"]]
    assert fitting and all(r["time_cost"]["tokens"] == 24 for r in fitting)


def test_no_tokenizer_says_where_it_looked_and_offers_tokens(capsys, hf_cache, data):
    code, out, _ = run(capsys, "estimate", "llama-3.2-1b", "--gpu", "T4", "--data", data, "--json")
    err = json.loads(out)
    assert code == 2 and err["exit_code"] == 2
    assert str(hf_cache) in err["error"] and "meta-llama/Llama-3.2-1B" in err["error"] and "--tokens N" in err["hint"]


@pytest.mark.parametrize("argv, message", [
    (("estimate", "llama-3.2-1b", "--gpu", "T4", "--tokens", "1M"), "--data and --tokens: give one of them"),
    (("fit", "llama-3.2-1b", "--gpu", "T4", "--tokens", "1M"), "--data and --tokens: give one of them"),
    (("table", "--gpu", "T4"), "table --gpu spans every catalog model"),
])
def test_conflicts_exit_2(capsys, data, cached_llama, argv, message):
    code, out, _ = run(capsys, *argv, "--data", data, "--json")
    assert code == 2 and message in json.loads(out)["error"]


def test_a_bad_record_is_named_by_line_as_train_names_it(tmp_path, capsys, cached_llama):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "w1"}\n{"messages": [{"role": "user", "content": "q"}]}\n')
    code, _, err = run(capsys, "fit", cached_llama, "--gpu", "T4", "--data", str(bad))
    assert code == 2 and "line 2: the last message must be the assistant's" in err and "Traceback" not in err
    code, out, _ = run(capsys, "estimate", cached_llama, "--gpu", "T4", "--data", str(tmp_path / "none.jsonl"),
                       "--json")
    assert code == 2 and "no such file" in json.loads(out)["error"]
