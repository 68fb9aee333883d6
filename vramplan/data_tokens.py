"""`--data FILE` on estimate, fit and table: the tokens one epoch of a training file trains, counted with the
model's own tokenizer the way `vramplan train` encodes the records (vramplan/train/run.py encode).

No torch and no transformers: the `tokenizers` library reads tokenizer.json, and a chat template is rendered with
jinja2 as transformers' apply_chat_template does (transformers/utils/chat_template_utils.py: a sandbox with
trim_blocks, lstrip_blocks and loopcontrols, raise_exception, strftime_now, a tojson that leaves HTML alone, the
special tokens as variables). Both are imported only when --data is given: they are the [data] extra.
"""
from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from .data_records import Example, load_examples
from .errors import VramplanError
from .profiles.hub import cache_dir, cached_file, is_hub_id

EXTRA = "data"
SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token")


@dataclass(frozen=True)
class DataTokens:
    """What one epoch of the file trains at --seq: each example cut at seq tokens."""

    data_file: str
    examples: int
    tokens: int
    """sum over the examples of min(tokens, seq)"""
    truncated: int
    """examples longer than seq (their tail is not trained)"""
    longest: int
    seq: int
    tokenizer: str
    """the folder whose tokenizer.json counted them"""
    chat_template: bool


def count_data(path: str, model_arg: str, model, seq: int) -> DataTokens:
    """The records of path (line-numbered errors as `train` gives them), counted with the model's tokenizer."""
    examples = load_examples(path)
    folder = tokenizer_folder(model_arg, model)
    lengths, template = token_lengths(examples, folder, path)
    return DataTokens(data_file=str(path), examples=len(lengths), tokens=sum(min(n, seq) for n in lengths),
                      truncated=sum(1 for n in lengths if n > seq), longest=max(lengths), seq=seq,
                      tokenizer=str(folder), chat_template=template is not None)


def tokenizer_folder(model_arg: str, model) -> Path:
    """The folder holding the model's tokenizer.json: MODEL itself when it is a folder (or the folder of its
    config.json), else the Hugging Face cache's snapshot of its hub id. Exit 2 saying where it looked."""
    looked = []
    path = Path(model_arg).expanduser()
    if path.exists():
        folder = path if path.is_dir() else path.parent
        if (folder / "tokenizer.json").is_file():
            return folder
        looked.append(str(folder))
    hub_id = model.hub_id if model.hub_id and is_hub_id(model.hub_id) else None
    if hub_id:
        found = cached_file(hub_id, "tokenizer.json")
        if found:
            return found[0].parent
        looked.append(f"the Hugging Face cache ({cache_dir()}) for {hub_id}")
    where = f"looked in {' and '.join(looked)}" if looked else "MODEL is neither a folder nor a hub id to look in"
    fetch = (f"`hf download {hub_id} tokenizer.json tokenizer_config.json` puts it in the cache; or "
             if hub_id else "put the model's tokenizer.json in its folder; or ")
    raise VramplanError(f"--data: no tokenizer.json for {model.name} to count the tokens with ({where})",
                        hint=fetch + "give --tokens N (the data set's tokens) instead of --data")


def _import(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        raise VramplanError(f"--data: counting tokens needs the {name} package, which is not installed",
                            hint=f"pip install 'vramplan[{EXTRA}]'; or give --tokens N instead of --data") from None


def _json_file(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise VramplanError(f"{path}: cannot be read as JSON ({exc})",
                            hint="download the tokenizer files again, or give --tokens N instead of --data") from None
    return value if isinstance(value, dict) else {}


def _token_text(value) -> str | None:
    """A special token as tokenizer_config.json writes it: a string, or an AddedToken's dict with its content."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def tokenizer_settings(folder: Path) -> tuple[str | None, dict[str, str]]:
    """(the chat template, the special tokens). chat_template.jinja wins over tokenizer_config.json's
    chat_template, as transformers loads them; a list of named templates gives its "default". The special tokens
    come from tokenizer_config.json, the legacy special_tokens_map.json filling what it lacks."""
    config = _json_file(folder / "tokenizer_config.json")
    legacy = _json_file(folder / "special_tokens_map.json")
    specials = {}
    for key in SPECIAL_TOKENS:
        text = _token_text(config.get(key)) or _token_text(legacy.get(key))
        if text is not None:
            specials[key] = text
    jinja_file = folder / "chat_template.jinja"
    template = jinja_file.read_text(encoding="utf-8") if jinja_file.is_file() else config.get("chat_template")
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return (template if isinstance(template, str) and template.strip() else None), specials


def compile_template(template: str):
    """The template in transformers' environment (its {% generation %} tag renders its body unchanged)."""
    jinja2 = _import("jinja2")
    release = tuple(int(p) for p in re.findall(r"\d+", jinja2.__version__)[:3])
    if release < (3, 1, 6):  # older sandboxes have known escapes, and hub templates are untrusted code
        raise VramplanError(f"--data: jinja2 {jinja2.__version__} is older than 3.1.6, which chat templates need",
                            hint=f"pip install -U 'vramplan[{EXTRA}]'; or give --tokens N instead of --data")
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(Extension):
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller):
            return caller()

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def strftime_now(fmt):
        from datetime import datetime
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, loopcontrols])
    env.filters["tojson"] = lambda x, ensure_ascii=False, indent=None, separators=None, sort_keys=False: json.dumps(
        x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
    env.globals.update(raise_exception=raise_exception, strftime_now=strftime_now)
    try:
        return env.from_string(template)
    except jinja2.exceptions.TemplateError as exc:
        raise VramplanError(f"the tokenizer's chat template does not compile ({exc})",
                            hint="give --tokens N instead of --data") from None


def texts(examples: list[Example], template, specials: dict[str, str], where: str) -> list[tuple[str, bool]]:
    """(text, add the tokenizer's special tokens) per tokenizer call, as train's encode builds them: a chat (or
    an alpaca record when there is a template) is the template's whole conversation, no generation prompt, or
    without one "role: content" lines closed by the eos token; alpaca and text are prompt + response + eos."""
    eos = specials.get("eos_token") or ""
    out = []
    for i, e in enumerate(examples, 1):
        if e.kind == "messages" or (e.kind == "alpaca" and template is not None):
            msgs = ([{"role": r, "content": c} for r, c in e.messages] if e.kind == "messages" else
                    [{"role": "user", "content": e.prompt}, {"role": "assistant", "content": e.response}])
            if template is not None:
                out.append([(render(template, msgs, specials, f"{where}: example {i}"), False)])
            else:
                prompt = "".join(f"{m['role']}: {m['content']}\n" for m in msgs[:-1]) + "assistant: "
                out.append([(prompt + msgs[-1]["content"] + eos, False)])
        else:  # the prompt with the special tokens, the response after it without them
            out.append(([(e.prompt, True)] if e.prompt else []) + [(e.response + eos, not e.prompt)])
    return out


def render(template, messages: list[dict], specials: dict[str, str], where: str) -> str:
    try:
        return template.render(messages=messages, tools=None, documents=None, add_generation_prompt=False,
                               **specials)
    except Exception as exc:  # a template raises what it likes (raise_exception, a bad role order)
        raise VramplanError(f"{where}: the tokenizer's chat template refused it ({exc})",
                            hint="fix the record, or give --tokens N instead of --data") from None


def token_lengths(examples: list[Example], folder: Path, where: str) -> tuple[list[int], object]:
    """Tokens per example, and the compiled chat template (None without one)."""
    tokenizers = _import("tokenizers")
    try:
        tok = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception as exc:  # the Rust side raises its own Exception on a file it cannot parse
        raise VramplanError(f"{folder / 'tokenizer.json'}: not a tokenizer the tokenizers library reads ({exc})",
                            hint="give --tokens N instead of --data") from None
    tok.no_truncation()  # a tokenizer.json may carry truncation or padding settings: the count wants neither
    tok.no_padding()
    text, specials = tokenizer_settings(folder)
    template = compile_template(text) if text is not None else None
    parts = texts(examples, template, specials, f"--data {where}")
    lengths = [0] * len(parts)
    for special in (True, False):  # one batch per setting of add_special_tokens
        index = [(i, s) for i, calls in enumerate(parts) for s, add in calls if add is special]
        for (i, _), enc in zip(index, tok.encode_batch([s for _, s in index], add_special_tokens=special)):
            lengths[i] += len(enc.ids)
    return lengths, template
