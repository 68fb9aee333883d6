"""Token lengths without torch: the `tokenizers` library on a model folder's tokenizer.json (dry runs)."""
from __future__ import annotations

from pathlib import Path

from .data import Example


def fast_lengths(model_dir: Path, examples: list[Example]) -> list[int] | None:
    """Approximate token counts (no chat template: roles joined as text); None without tokenizer.json."""
    path = Path(model_dir) / "tokenizer.json"
    if not path.is_file():
        return None
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(path))
    texts = []
    for e in examples:
        if e.kind == "messages":
            texts.append("".join(f"{role}: {content}\n" for role, content in e.messages))
        else:
            texts.append(e.prompt + e.response)
    return [len(enc.ids) + 8 for enc in tok.encode_batch(texts)]  # + a few template/special tokens
