"""Tokenization with response-only labels and a tiny end-to-end training run on the CPU."""
import io
import json
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")

from vramplan.plan import TrainPlan  # noqa: E402
from vramplan.train.data import load_examples  # noqa: E402
from vramplan.train.run import IGNORE, encode, load_tokenizer, train_full  # noqa: E402

ROWS = [{"instruction": "w1 w2 w3", "output": "w4 w5"},
        {"messages": [{"role": "user", "content": "w6 w7 w8 w9"}, {"role": "assistant", "content": "w10"}]},
        {"text": "w11 w12 w13 w14 w15 w16 w17 w18 w19"}] * 4


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from transformers import AutoConfig, AutoModelForCausalLM

    from tests.synthetic import save_tokenizer
    folder = tmp_path_factory.mktemp("tiny-model")
    save_tokenizer(folder, vocab_words=200)
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
    assert tok.decode(learned).split() == ["w10", "</s>"]
    assert enc["labels"][0] == IGNORE
    plain = encode(text, tok)
    assert all(l != IGNORE for l in plain["labels"])  # plain text: every token trains
    assert len(encode(text, tok, seq=4)["input_ids"]) == 4


@pytest.mark.parametrize("trainer", ["trl", "hf"])
def test_tiny_end_to_end_training_on_cpu_saves_adapter_tokenizer_and_record(model_dir, tmp_path, trainer):
    pytest.importorskip("bitsandbytes")  # the 4-bit load runs on the CPU with bitsandbytes >= 0.48
    if trainer == "trl":
        pytest.importorskip("trl")
    examples = load_examples(model_dir.parent / "train.jsonl")
    plan = TrainPlan(rank=4, alpha=8, batch=2, grad_accum=2, seq=32, optim="adamw_torch", quant="nf4",
                     trainer=trainer)
    bar = io.StringIO()
    record = train_full(str(model_dir), examples, plan, tmp_path, max_steps=3, use_cpu=True, progress_stream=bar)
    assert record["steps"] == 3 and record["tokens_per_s"] > 0
    assert record["stack"]["trainer"] == trainer
    # SFTTrainer casts a quantized model's adapters to bf16; the plain Trainer keeps peft's fp32
    assert list(record["trainable_dtypes"]) == (["bfloat16"] if trainer == "trl" else ["float32"])
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    assert (tmp_path / "adapter" / "tokenizer.json").exists()
    assert "step 3/3" in bar.getvalue() and "tokens/s" in bar.getvalue()


def vramplan(*args):
    return subprocess.run([sys.executable, "-m", "vramplan", *args], capture_output=True, text=True, timeout=120)


def test_dry_run_with_auto_sequence_imports_no_torch(model_dir):
    code = ("import sys; from vramplan.cli import main; "
            f"rc = main(['train', {str(model_dir)!r}, '--data', {str(model_dir.parent / 'train.jsonl')!r}, "
            "'--gpu', 'T4', '--dry-run']); assert rc == 0; assert 'torch' not in sys.modules, 'torch imported'; "
            "assert 'trl' not in sys.modules, 'trl imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "99th percentile of 12 examples" in proc.stdout
    assert "SFTConfig(\n" in proc.stdout and "    per_device_train_batch_size=" in proc.stdout


def test_existing_output_is_never_overwritten(model_dir, tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    proc = vramplan("train", str(model_dir), "--data", str(model_dir.parent / "train.jsonl"), "--gpu", "T4",
                    "--seq", "64", "--output", str(tmp_path))
    assert proc.returncode == 2 and "exists and is not empty" in proc.stderr
    assert (tmp_path / "mine.txt").read_text() == "keep"


def test_synthetic_dataset_is_valid_training_data(tmp_path):
    from tests.synthetic import write_dataset
    examples = load_examples(write_dataset(tmp_path / "d.jsonl", n=30, min_words=5, max_words=50))
    assert len(examples) == 30 and {e.kind for e in examples} == {"alpaca", "messages", "text"}


def test_train_on_several_gpus_plans_per_gpu_and_shows_the_launch_config(model_dir, tmp_path):
    proc = vramplan("train", str(model_dir), "--data", str(model_dir.parent / "train.jsonl"), "--gpu", "2xT4",
                    "--seq", "64", "--output", str(tmp_path / "run"), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "2 x T4" in proc.stdout and "2 GPUs" in proc.stdout and "accelerate configuration" in proc.stdout
    assert "beat one" in proc.stdout  # why several GPUs (or not)
    assert not (tmp_path / "run").exists()  # a dry run writes nothing


def test_train_refuses_a_batch_that_does_not_split_over_the_gpus(model_dir, tmp_path):
    proc = vramplan("train", str(model_dir), "--data", str(model_dir.parent / "train.jsonl"), "--gpu", "T4",
                    "--gpus", "3", "--seq", "64", "--effective-batch", "16", "--output", str(tmp_path / "r"),
                    "--dry-run")
    assert proc.returncode == 2 and "split evenly over 3 GPUs" in proc.stderr and "Traceback" not in proc.stderr


def test_dry_run_says_which_allocator_train_uses(model_dir):
    args = ("train", str(model_dir), "--data", str(model_dir.parent / "train.jsonl"), "--gpu", "T4", "--seq", "64",
            "--dry-run")
    proc = vramplan(*args, "--allocator", "expandable")
    assert proc.returncode == 0 and "allocator: expandable segments (PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True" \
        in proc.stdout
    proc = vramplan(*args, "--allocator", "default")
    assert proc.returncode == 0 and "allocator: PyTorch's default allocator" in proc.stdout and "as given" in proc.stdout


def test_a_dry_run_chooses_seq_auto_from_the_exact_token_counts(model_dir):
    proc = vramplan("train", str(model_dir), "--data", str(model_dir.parent / "train.jsonl"), "--gpu", "T4",
                    "--seq", "auto", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "the 99th percentile of 12 examples" in proc.stdout and "Traceback" not in proc.stderr


def test_a_dry_run_with_seq_auto_and_a_broken_tokenizer_says_so(model_dir, tmp_path):
    import shutil
    broken = tmp_path / "model"
    shutil.copytree(model_dir, broken)
    (broken / "tokenizer.json").write_text("{not json")
    proc = vramplan("train", str(broken), "--data", str(model_dir.parent / "train.jsonl"), "--gpu", "T4",
                    "--seq", "auto", "--dry-run")
    assert proc.returncode == 2 and "--seq auto" in proc.stderr and "pass --seq N" in proc.stderr
    assert "Traceback" not in proc.stderr
