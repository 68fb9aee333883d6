"""A small tokenizer and dataset made from scratch, for tests and GPU benches on machines with no hub access.

The tokenizer is word-level over a fixed word list, with a chat template; the dataset mixes the three record
shapes `vramplan train` reads. Memory and speed do not depend on what the words are.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} </s> {% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|> {% endif %}")
SPECIAL = ["<unk>", "<pad>", "</s>", "<s>", "<|user|>", "<|assistant|>", "<|system|>", "###", "Instruction:",
           "Input:", "Response:"]


def words(n: int) -> list[str]:
    return [f"w{i}" for i in range(n)]


def save_tokenizer(folder: Path, vocab_words: int = 2000) -> Path:
    """A PreTrainedTokenizerFast with a chat template, saved into folder (tokenizer.json and friends)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    vocab = {w: i for i, w in enumerate(SPECIAL + words(vocab_words))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="</s>",
                                   bos_token="<s>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    return Path(folder)


def write_dataset(path: Path, n: int, min_words: int = 20, max_words: int = 400, vocab_words: int = 2000,
                  seed: int = 0) -> Path:
    """n records cycling through alpaca, messages and text shapes, lengths spread between the bounds."""
    rng = random.Random(seed)
    vocab = words(vocab_words)

    def sentence(k: int) -> str:
        return " ".join(rng.choice(vocab) for _ in range(max(1, k)))

    lines = []
    for i in range(n):
        length = rng.randint(min_words, max_words)
        if i % 3 == 0:
            rec = {"instruction": sentence(length // 3), "input": "", "output": sentence(length - length // 3)}
        elif i % 3 == 1:
            rec = {"messages": [{"role": "user", "content": sentence(length // 2)},
                                {"role": "assistant", "content": sentence(length - length // 2)}]}
        else:
            rec = {"text": sentence(length)}
        lines.append(json.dumps(rec))
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def build_checkpoint(model: str, folder: Path, device: str = "cuda") -> Path:
    """folder/MODEL: a random-weight checkpoint of a catalog profile in its 16-bit dtype, initialised on `device`
    (an 8B model takes minutes to initialise on a CPU and seconds on a GPU), saved with save_pretrained and this
    module's tokenizer. Built in its own process (vramplan.calibrate.build_model), so the GPU is clean after it;
    built once."""
    import subprocess

    from vramplan.resources import data_dir
    from vramplan.workers import worker_command
    out = Path(folder) / model
    if not (out / "config.json").exists():
        profile = data_dir("profiles") / "models" / f"{model}.json"
        subprocess.run(worker_command("build_model", str(profile), str(out), device), check=True)
    if not (out / "tokenizer.json").exists():
        save_tokenizer(out)
    return out


def synthetic_run(model: str, work: Path, n: int, seq: int, device: str = "cuda") -> tuple[Path, Path]:
    """For GPU benches: a random-weight checkpoint of a catalog profile with this module's tokenizer, and n
    records whose lengths reach up to about seq tokens. Returns (checkpoint folder, dataset file)."""
    ckpt = build_checkpoint(model, work, device)
    return ckpt, write_dataset(work / "train.jsonl", n=n, min_words=seq // 2, max_words=seq - 16)
