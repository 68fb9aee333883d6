"""A word-level tokenizer.json built with the `tokenizers` library alone, and the files beside it, for the --data
tests: every word is one token, so a count can be written down by hand."""
from __future__ import annotations

import json
from pathlib import Path

SPECIAL = ["<unk>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>"]
WORDS = ["###", "Instruction:", "Input:", "Response:"] + [f"w{i}" for i in range(50)]
TEMPLATE = ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {{ eos_token }} "
            "{% endfor %}{% if add_generation_prompt %}<|assistant|> {% endif %}")


def write_tokenizer(folder: Path, template: str | None = TEMPLATE, bos_as_dict: bool = True) -> Path:
    """folder/tokenizer.json (a BOS added to every text encoded with special tokens) and tokenizer_config.json
    (bos as an AddedToken dict, as transformers saves it, eos as a string; the chat template when given)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(SPECIAL + WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(SPECIAL)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tok.enable_truncation(4)  # settings a saved tokenizer may carry: the count must ignore them
    tok.save(str(folder / "tokenizer.json"))
    config = {"bos_token": {"content": "<s>", "special": True} if bos_as_dict else "<s>", "eos_token": "</s>"}
    if template is not None:
        config["chat_template"] = template
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


def write_records(path: Path, rows: list[dict]) -> Path:
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return Path(path)


def put_in_cache(cache: Path, repo_id: str, folder: Path, revision: str = "0123456789abcdef0123") -> Path:
    """The tokenizer files of folder as huggingface_hub caches them: models--ORG--NAME/snapshots/REV, refs/main."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / revision
    snap.mkdir(parents=True)
    for p in Path(folder).iterdir():
        (snap / p.name).write_bytes(p.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return snap
