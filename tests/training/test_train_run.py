"""Tokenization with response-only labels and a tiny end-to-end training run on the CPU."""
import json
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")

from vramplan.plan import TrainPlan  # noqa: E402
from vramplan.runtime.train_run import IGNORE, encode, load_tokenizer, train_full  # noqa: E402
from vramplan.training.data import load_examples  # noqa: E402

ROWS = [{"instruction": "Say hello to the world", "output": "hello world"},
        {"messages": [{"role": "user", "content": "what is two plus two"}, {"role": "assistant", "content": "four"}]},
        {"text": "the quick brown fox jumps over the lazy dog"}] * 4
TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} </s> {% endfor %}"
            "{% if add_generation_prompt %}<|assistant|> {% endif %}")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast
    folder = tmp_path_factory.mktemp("tiny-model")
    words = sorted({w for r in ROWS for w in json.dumps(r).replace('"', " ").replace(":", " ").replace(",", " ")
                    .replace("{", " ").replace("}", " ").replace("[", " ").replace("]", " ").split()}
                   | {"###", "Instruction", "Response", "<|user|>", "<|assistant|>", "<|system|>"})
    vocab = {w: i for i, w in enumerate(["<unk>", "<pad>", "</s>", "<s>"] + words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="</s>",
                                   bos_token="<s>")
    fast.chat_template = TEMPLATE
    fast.save_pretrained(folder)
    config = AutoConfig.for_model("llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2, vocab_size=256,
                                  tie_word_embeddings=False)
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(folder)
    data = folder.parent / "train.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    return folder


def test_only_the_response_is_learned(model_dir):
    tok = load_tokenizer(str(model_dir))
    chat, text = load_examples(model_dir.parent / "train.jsonl")[1:3]
    enc = encode(chat, tok)
    learned = [t for t, l in zip(enc["input_ids"], enc["labels"]) if l != IGNORE]
    assert tok.decode(learned).split() == ["four", "</s>"]
    assert enc["labels"][0] == IGNORE
    plain = encode(text, tok)
    assert all(l != IGNORE for l in plain["labels"])  # plain text: every token trains
    assert len(encode(text, tok, seq=4)["input_ids"]) == 4


def test_tiny_end_to_end_training_on_cpu_saves_adapter_tokenizer_and_record(model_dir, tmp_path):
    examples = load_examples(model_dir.parent / "train.jsonl")
    plan = TrainPlan(rank=4, alpha=8, batch=2, grad_accum=2, seq=32, optim="adamw_torch", quant="nf4")
    record = train_full(str(model_dir), examples, plan, tmp_path, max_steps=3, use_cpu=True, say=lambda s: None)
    assert record["steps"] == 3 and record["tokens_per_s"] > 0
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    assert (tmp_path / "adapter" / "tokenizer.json").exists()


def vramplan(*args):
    return subprocess.run([sys.executable, "-m", "vramplan", *args], capture_output=True, text=True, timeout=120)


def test_dry_run_with_auto_sequence_imports_no_torch(model_dir):
    code = ("import sys; from vramplan.cli import main; "
            f"rc = main(['train', {str(model_dir)!r}, '--data', {str(model_dir.parent / 'train.jsonl')!r}, "
            "'--gpu', 'T4', '--dry-run']); assert rc == 0; assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "99th percentile of 12 examples" in proc.stdout and '"per_device_train_batch_size"' in proc.stdout


def test_existing_output_is_never_overwritten(model_dir, tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    proc = vramplan("train", str(model_dir), "--data", str(model_dir.parent / "train.jsonl"), "--gpu", "T4",
                    "--seq", "64", "--output", str(tmp_path))
    assert proc.returncode == 2 and "exists and is not empty" in proc.stderr
    assert (tmp_path / "mine.txt").read_text() == "keep"
