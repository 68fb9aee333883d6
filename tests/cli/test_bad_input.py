"""Bad input, as people (and fuzzers) write it: every case exits 2 with a message that names the fault, never a
traceback, and writes nothing. Each runs twice, as text and with --json (one error object on stdout).

The files live in tests/cli/corpus/ (config/: --config files, models/: config.json files, data/: --data files);
{c} in a case is that folder, {t} the case's own empty working folder. In-process through vramplan.cli.main, so the
whole corpus costs seconds, not a Python start per case.
"""
from __future__ import annotations

import contextlib
import io
import json
import shlex
from pathlib import Path

import pytest

from vramplan.cli import main
from vramplan.profiles import experts

CORPUS = Path(__file__).parent / "corpus"
DRY = "train llama-3.2-1b --gpu T4 --seq 512 --dry-run --data"
"""A dry run reads and checks every record without a GPU or torch: the --data cases go through it."""

# (id, command line, the substring the error must hold)
CONFIG = [
    ("binary-yaml", "binary.yaml", "binary"),
    ("binary-json", "binary.json", "binary"),
    ("empty-yaml", "empty.yaml", "expected a mapping"),
    ("empty-json", "empty.json", "malformed JSON"),
    ("json-list", "list.json", "expected a mapping"),
    ("yaml-list", "list.yaml", "expected a mapping"),
    ("yaml-string", "string.yaml", "expected a mapping"),
    ("json-number", "number.json", "expected a mapping"),
    ("malformed-yaml", "malformed.yaml", "malformed YAML"),
    ("malformed-json", "malformed.json", "malformed JSON"),
    ("yaml-python-tag", "python_tag.yaml", "malformed YAML"),
    ("nested-garbage", "nested_garbage.json", "whole number"),
    ("huge-float-batch", "huge_float.json", "batch"),
    ("huge-int-batch", "huge_int.json", "--batch"),
    ("negative-batch", "negative_batch.json", "--batch: -1"),
    ("zero-batch", "zero_batch.json", "--batch: 0"),
    ("float-batch", "float_batch.json", "whole number"),
    ("string-batch", "string_batch.json", "whole number"),
    ("bool-accum", "bool_accum.json", "whole number"),
    ("zero-accum", "zero_accum.json", "--grad-accum: 0"),
    ("unknown-optimizer", "unknown_optimizer.json", "unknown optimizer 'adamw_fancy'"),
    ("optimizer-number", "optimizer_number.json", "optim"),
    ("rank-string", "rank_string.json", "rank must be a whole number"),
    ("rank-list", "rank_list.json", "rank must be a whole number"),
    ("rank-zero", "rank_zero.json", "--rank: 0"),
    ("alpha-string", "alpha_string.json", "alpha must be a number"),
    ("dropout-two", "dropout_two.json", "--dropout"),
    ("targets-number", "targets_number.json", "--targets"),
    ("targets-unknown", "targets_unknown.json", "wqkv not in this model"),
    ("seq-negative", "seq_negative.json", "--seq: -5"),
    ("seq-huge", "seq_huge.json", "--seq"),
    ("eval-negative", "eval_negative.json", "--eval-batch: -3"),
    ("eval-string", "eval_string.json", "eval"),
    ("quant-type", "quant_type_bad.json", "nf5"),
    ("bf16-and-fp16", "bf16_and_fp16.json", "bf16 and fp16 are both set"),
    ("4bit-and-8bit", "4bit_and_8bit.json", "load_in_4bit and load_in_8bit"),
    ("deepspeed", "deepspeed.json", "deepspeed"),
    ("use-dora", "use_dora.json", "use_dora"),
    ("bf16-on-t4", "bf16_on_t4.json", "T4 has no bf16"),
    ("checkpointing-kwarg", "ckpt_kwargs_unmodelled.json", "gradient_checkpointing_kwargs preserve_rng_state"),
    ("yaml-bomb", "bomb.yaml", "--targets"),
    ("axolotl-bad-micro-batch", "axolotl_bad_micro_batch.yaml", "whole number"),
]
CASES = [(f"config-{name}", f"check llama-3.1-8b --gpu T4 --config {{c}}/config/{f}", needle)
         for name, f, needle in CONFIG]
CASES += [
    ("config-model-number", "check --gpu T4 --config {c}/config/model_number.json", "unknown model '5'"),
    ("config-model-list", "check --gpu T4 --config {c}/config/model_list.json", "unknown model"),
    ("config-model-unknown", "check --gpu T4 --config {c}/config/model_unknown.json", "unknown model"),
    ("config-a-folder", "check llama-3.1-8b --gpu T4 --config {c}/config", "no such file"),
    ("config-missing", "check llama-3.1-8b --gpu T4 --config {t}/nope.yaml", "no such file"),
]

MODELS = [
    ("json-list", "list.json", "config must be a JSON object, this one is a JSON list"),
    ("binary", "binary.json", "malformed JSON"),
    ("empty", "empty.json", "malformed JSON"),
    ("null", "null.json", "this one is null"),
    ("string", "string.json", "config must be a JSON object"),
    ("no-fields", "object_empty.json", "missing hidden_size"),
    ("heads-zero", "heads_zero.json", "num_attention_heads must be a positive whole number, got 0"),
    ("heads-string", "heads_string.json", "num_attention_heads must be a positive whole number, got '32'"),
    ("heads-float", "heads_float.json", "got 32.0"),
    ("hidden-string", "hidden_string.json", "hidden_size must be a positive whole number"),
    ("layers-negative", "layers_negative.json", "num_hidden_layers must be a positive whole number"),
    ("layers-bool", "layers_bool.json", "num_hidden_layers must be a positive whole number, got True"),
    ("kv-heads-7", "kv_heads_7.json", "num_key_value_heads 7 must divide"),
    ("head-dim-negative", "head_dim_negative.json", "head_dim must be a positive whole number"),
    ("max-pos-zero", "max_pos_zero.json", "max_position_embeddings must be a positive whole number"),
    ("tie-string", "tie_string.json", "tie_word_embeddings must be true or false"),
    ("model-type-list", "model_type_list.json", "model_type must be a string"),
    ("dtype-int4", "dtype_int4.json", "'int4' is not a checkpoint dtype"),
    ("missing-vocab", "missing_vocab.json", "missing vocab_size"),
    ("vocab-inf", "vocab_inf.json", "vocab_size must be a positive whole number"),
    ("vocab-huge", "vocab_huge.json", "vocab_size"),
    ("text-config-number", "text_config_number.json", "text_config"),
    ("experts", "experts.json", "mixtral"),
    ("folder-without-config", "no_config", "no config.json there"),
    ("folder-with-binary-config", "binary_folder", "malformed JSON"),
]
CASES += [(f"model-{name}", f"estimate {{c}}/models/{f} --gpu T4", needle) for name, f, needle in MODELS]
CASES += [
    ("model-list-in-fit", "fit {c}/models/list.json --gpu T4", "JSON list"),
    ("model-heads-zero-in-check", "check {c}/models/heads_zero.json --gpu T4", "num_attention_heads"),
    ("model-binary-in-train", f"{DRY} {{c}}/data/ok.jsonl".replace("llama-3.2-1b", "{c}/models/binary.json"),
     "malformed JSON"),
    ("model-missing-file", "estimate {t}/missing/config.json --gpu T4", "no such file"),
    ("model-empty-name", "estimate '' --gpu T4", "empty model name"),
    ("model-unknown", "estimate llama-3.1-9b --gpu T4", "llama-3.1-8b"),
]

DATA = [
    ("binary", "binary.jsonl", "a binary file"),
    ("empty", "empty.jsonl", "no records"),
    ("blank-lines", "blank_lines.jsonl", "no records"),
    ("latin1", "latin1.jsonl", "not UTF-8 text"),
    ("missing-output", "missing_output.jsonl", "line 1: alpaca records need a non-empty string 'output'"),
    ("instruction-number", "instruction_number.jsonl", "'instruction'"),
    ("input-number", "input_number.jsonl", "'input' must be a string"),
    ("blank-output", "blank_output.jsonl", "'output'"),
    ("chat-ends-with-user", "chat_ends_with_user.jsonl", "the last message must be the assistant's"),
    ("chat-ends-with-system", "chat_ends_with_system.jsonl", "the last message must be the assistant's"),
    ("chat-content-number", "chat_content_number.jsonl", "messages[1] needs a role"),
    ("chat-empty", "chat_empty.jsonl", "messages must be a non-empty list"),
    ("chat-string", "chat_string.jsonl", "messages must be a non-empty list"),
    ("chat-bad-role", "chat_bad_role.jsonl", "messages[0] needs a role"),
    ("chat-no-content", "chat_no_content.jsonl", "messages[0]"),
    ("chat-message-string", "chat_message_string.jsonl", "messages[0]"),
    ("text-empty", "text_empty.jsonl", "'text' must be a non-empty string"),
    ("text-number", "text_number.jsonl", "'text' must be a non-empty string"),
    ("text-null", "text_null.jsonl", "'text' must be a non-empty string"),
    ("unknown-fields", "unknown_fields.jsonl", "no known fields"),
    ("array-line", "array_line.jsonl", "line 2: expected an object, got list"),
    ("nan-line", "nan_line.jsonl", "expected an object, got float"),
    ("broken", "broken.jsonl", "line 1 is not JSON"),
    ("second-line-bad", "second_line_bad.jsonl", "line 2 is not JSON"),
    ("bad-on-line-3", "bad_on_line_3.jsonl", "line 3"),
    ("json-list-of-numbers", "list_of_numbers.json", "record 0: expected an object, got int"),
    ("json-object", "object.json", "a JSON file must hold a list of records"),
    ("json-empty-list", "empty_list.json", "no records"),
    ("json-string", "string.json", "a JSON file must hold a list of records"),
    ("json-malformed", "malformed.json", "malformed JSON"),
]
CASES += [(f"data-{name}", f"{DRY} {{c}}/data/{f}", needle) for name, f, needle in DATA]
CASES += [
    ("data-missing", f"{DRY} {{t}}/nope.jsonl", "no such file"),
    ("data-a-folder", f"{DRY} {{t}}/folder.jsonl", "not a file"),
    ("data-deep-json", f"{DRY} {{t}}/deep.json", "nested too deeply"),
    ("data-deep-jsonl", f"{DRY} {{t}}/deep.jsonl", "line 1: nested too deeply"),
]

OK = "{c}/data/ok.jsonl"
FLAGS = [
    # train's own flags
    ("train-epochs-negative", f"{DRY} {OK} --epochs -1", "--epochs: must be a positive number"),
    ("train-epochs-zero", f"{DRY} {OK} --epochs 0", "--epochs: must be a positive number"),
    ("train-epochs-nan", f"{DRY} {OK} --epochs nan", "--epochs: must be a positive number"),
    ("train-epochs-inf", f"{DRY} {OK} --epochs inf", "--epochs: must be a positive number"),
    ("train-epochs-word", f"{DRY} {OK} --epochs many", "is not a number"),
    ("train-epochs-and-steps", f"{DRY} {OK} --epochs 2 --max-steps 5", "not allowed with"),
    ("train-max-steps-zero", f"{DRY} {OK} --max-steps 0", "--max-steps: must be positive"),
    ("train-save-steps-zero", f"{DRY} {OK} --save-steps 0", "--save-steps: must be positive"),
    ("train-seq-zero", f"{DRY} {OK}".replace("--seq 512", "--seq 0"), "--seq must be positive"),
    ("train-seq-word", f"{DRY} {OK}".replace("--seq 512", "--seq long"), "neither a number nor auto"),
    ("train-seq-beyond-context", f"{DRY} {OK}".replace("--seq 512", "--seq 200000"),
     "beyond llama-3.2-1b's context of 131,072 tokens"),
    ("train-seq-beyond-config-context", f"{DRY} {OK}".replace("llama-3.2-1b", "{c}/models/ok_4k.json")
     .replace("--seq 512", "--seq 8192"), "context of 4,096 tokens"),
    ("train-seq-beyond-rope-context", f"{DRY} {OK}".replace("llama-3.2-1b", "{c}/models/rope_linear_x4.json")
     .replace("--seq 512", "--seq 20000"), "context of 16,384 tokens"),
    ("train-seq-auto-without-tokenizer", f"{DRY} {OK}".replace("--seq 512", "--seq auto"), "needs a local model"),
    ("train-batch-zero", f"{DRY} {OK} --batch 0", "--batch: must be positive"),
    ("train-vram-nonsense", f"{DRY} {OK} --vram nonsense", "--vram: cannot read 'nonsense'"),
    ("train-gpu-count-clash", f"{DRY} {OK} --gpus 2".replace("--gpu T4", "--gpu 3xT4"),
     "names 3 GPUs but --gpus says 2"),
    ("train-batch-split", f"{DRY} {OK} --gpus 3", "does not split evenly over 3 GPUs"),
    ("train-fp16-trl", f"{DRY} {OK} --dtype fp16 --trainer trl", "fp16 QLoRA does not run through TRL"),
    ("train-trl-float-release", f"{DRY} {OK} --trl-version 1.160", "not modelled"),
    ("train-bf16-on-t4", f"{DRY} {OK} --dtype bf16", "T4 has no bf16"),
    ("train-flash-on-t4", f"{DRY} {OK} --attn flash_attention_2", "older than flash attention 2"),
    ("train-unknown-gpu", f"{DRY} {OK}".replace("--gpu T4", "--gpu T5"), "unknown GPU"),
    ("train-gpu-auto-without-gpu", f"{DRY} {OK}".replace("--gpu T4", "--gpu auto"), "--gpu auto"),
    ("train-no-data", "train llama-3.2-1b --gpu T4 --dry-run", "--data"),
    # the planning commands
    ("estimate-batch-zero", "estimate llama-3.1-8b --gpu T4 --batch 0", "--batch: must be positive"),
    ("estimate-batch-negative", "estimate llama-3.1-8b --gpu T4 --batch -1", "--batch: must be positive"),
    ("estimate-batch-float", "estimate llama-3.1-8b --gpu T4 --batch 1.5", "is not a whole number"),
    ("estimate-batch-huge", "estimate llama-3.1-8b --gpu T4 --batch 99999", "--batch: 99999 is out of range"),
    ("estimate-rank-zero", "estimate llama-3.1-8b --gpu T4 --rank 0", "--rank: must be positive"),
    ("estimate-rank-huge", "estimate llama-3.1-8b --gpu T4 --rank 99999", "--rank: 99999 is out of range"),
    ("estimate-alpha-negative", "estimate llama-3.1-8b --gpu T4 --alpha -1", "--alpha"),
    ("estimate-alpha-nan", "estimate llama-3.1-8b --gpu T4 --alpha nan", "--alpha"),
    ("estimate-alpha-inf", "estimate llama-3.1-8b --gpu T4 --alpha inf", "--alpha"),
    ("estimate-dropout-one", "estimate llama-3.1-8b --gpu T4 --dropout 1", "--dropout"),
    ("estimate-targets-empty", "estimate llama-3.1-8b --gpu T4 --targets ''", "no target modules"),
    ("estimate-targets-commas", "estimate llama-3.1-8b --gpu T4 --targets ,,,", "no target modules"),
    ("estimate-targets-unknown", "estimate llama-3.1-8b --gpu T4 --targets foo_proj", "foo_proj not in this model"),
    ("estimate-optim-unknown", "estimate llama-3.1-8b --gpu T4 --optim adam", "unknown optimizer 'adam'"),
    ("estimate-dtype-fp8", "estimate llama-3.1-8b --gpu T4 --dtype fp8", "invalid choice: 'fp8'"),
    ("estimate-bf16-on-t4", "estimate llama-3.1-8b --gpu T4 --dtype bf16", "T4 has no bf16"),
    ("estimate-flash-on-t4", "estimate llama-3.1-8b --gpu T4 --attn flash_attention_2", "flash attention 2"),
    ("estimate-quant-nf3", "estimate llama-3.1-8b --gpu T4 --quant nf3", "invalid choice: 'nf3'"),
    ("estimate-trl-version", "estimate llama-3.1-8b --gpu A100 --trl-version 9.9", "TRL 9.9 is not modelled"),
    ("estimate-fp16-trl", "estimate llama-3.1-8b --gpu T4 --dtype fp16 --trainer trl", "fp16 QLoRA does not run"),
    ("estimate-vram-nonsense", "estimate llama-3.1-8b --gpu T4 --vram nonsense", "cannot read 'nonsense'"),
    ("estimate-vram-zero", "estimate llama-3.1-8b --gpu T4 --vram 0", "not a plausible GPU memory size"),
    ("estimate-vram-inf", "estimate llama-3.1-8b --gpu T4 --vram inf", "cannot read 'inf'"),
    ("estimate-vram-exabytes", "estimate llama-3.1-8b --gpu T4 --vram 10XB", "cannot read '10XB'"),
    ("estimate-gpu-count-clash", "estimate llama-3.1-8b --gpu 3xT4 --gpus 2", "names 3 GPUs but --gpus says 2"),
    ("estimate-gpu-zero-count", "estimate llama-3.1-8b --gpu 0xT4", "0 GPUs is out of range"),
    ("estimate-gpu-99-count", "estimate llama-3.1-8b --gpu 99xT4", "99 GPUs is out of range"),
    ("estimate-gpus-zero", "estimate llama-3.1-8b --gpu T4 --gpus 0", "--gpus: must be positive"),
    ("estimate-gpus-17", "estimate llama-3.1-8b --gpu T4 --gpus 17", "--gpus: 17 is out of range"),
    ("estimate-trl-multi-gpu", "estimate llama-3.1-8b --gpu T4 --gpus 2 --trainer trl", "over several GPUs"),
    ("estimate-offload-one-gpu", "estimate llama-3.1-8b --gpu T4 --offload", "--offload"),
    ("estimate-fsdp-int8", "estimate llama-3.1-8b --gpu T4 --gpus 2 --quant int8", "cannot shard LLM.int8"),
    ("estimate-eval-negative", "estimate llama-3.1-8b --gpu T4 --eval-batch -1", "--eval-batch"),
    ("estimate-gpu-empty", "estimate llama-3.1-8b --gpu ''", "empty GPU name"),
    ("estimate-gpu-unknown", "estimate llama-3.1-8b --gpu RTX-9090", "unknown GPU"),
    ("estimate-no-gpu", "estimate llama-3.1-8b", "--gpu"),
    ("estimate-seq-zero", "estimate llama-3.1-8b --gpu T4 --seq 0", "--seq: must be positive"),
    ("estimate-seq-huge", "estimate llama-3.1-8b --gpu T4 --seq 2000000", "--seq: 2000000 is out of range"),
    ("estimate-seq-word", "estimate llama-3.1-8b --gpu T4 --seq abc", "is not a whole number"),
    ("estimate-allocator", "estimate llama-3.1-8b --gpu T4 --allocator slab", "invalid choice: 'slab'"),
    ("estimate-seq-beyond-context", "estimate tinyllama-1.1b --gpu T4 --seq 8192", "context"),
    ("estimate-path-like-missing", "estimate a/b/c --gpu T4", "no such file"),
    ("fit-effective-batch-zero", "fit llama-3.1-8b --gpu T4 --effective-batch 0", "must be positive"),
    ("fit-effective-batch-huge", "fit llama-3.1-8b --gpu T4 --effective-batch 100000", "out of range"),
    ("fit-vram-tiny", "fit llama-3.1-8b --gpu T4 --vram 1MB", "not a plausible GPU memory size"),
    ("fit-gpu-count-clash", "fit llama-3.1-8b --gpu 3xT4 --gpus 2", "names 3 GPUs but --gpus says 2"),
    ("fit-batch-split", "fit llama-3.1-8b --gpu T4 --gpus 3", "does not split evenly over 3 GPUs"),
    ("fit-parallel", "fit llama-3.1-8b --gpu T4 --parallel tp", "invalid choice: 'tp'"),
    ("fit-seq-beyond-context", "fit tinyllama-1.1b --gpu T4 --seq 8192", "context"),
    ("check-gpu-auto-without-gpu", "check llama-3.1-8b --gpu auto", "--gpu auto"),
    ("check-no-model", "check --gpu T4", "no MODEL given"),
    ("check-seq-beyond-context", "check tinyllama-1.1b --gpu T4 --seq 8192", "context"),
    ("table-seq-zero", "table --gpu T4 --seq 0", "--seq: must be positive"),
    ("table-unknown-gpu", "table --gpu T5", "unknown GPU"),
    ("table-unknown-model", "table --model llama-9", "unknown model"),
    ("table-both", "table --gpu T4 --model llama-3.1-8b", "not allowed with"),
    ("table-seq-beyond-context", "table --model tinyllama-1.1b --seq 8192", "context of 2,048 tokens"),
    ("models-extra-argument", "models extra", "unrecognized arguments"),
    ("unknown-command", "estimat llama-3.1-8b --gpu T4", "invalid choice"),
    ("tui-unknown-model", "tui llama-9", "unknown model"),
    ("tui-unknown-gpu", "tui llama-3.1-8b --gpu T5", "unknown GPU"),
    ("tui-without-a-terminal", "tui llama-3.1-8b", "needs a terminal"),
    # existing output folders: refused before any work (a real run; no GPU is needed to be refused)
    ("train-output-not-empty", f"train llama-3.2-1b --gpu T4 --seq 512 --data {OK} --output {{t}}/full",
     "exists and is not empty"),
    ("train-output-is-a-file", f"train llama-3.2-1b --gpu T4 --seq 512 --data {OK} --output {{t}}/a-file",
     "is a file, not a folder"),
    ("train-output-under-a-file", f"train llama-3.2-1b --gpu T4 --seq 512 --data {OK} --output {{t}}/a-file/run",
     "no folder can be made under it"),
    ("train-output-file-in-dry-run", f"{DRY} {OK} --output {{t}}/a-file", "is a file, not a folder"),
]
CASES += FLAGS

GAPS: dict[str, str] = {}
NO_JSON = {"tui"}  # an interactive app: it has no --json
MAX_MESSAGE = 2000
"""A one-line error a person reads; a message that quotes a whole expanded input is a fault of its own."""


def _setup(tmp: Path) -> None:
    """What a case needs beside the corpus: generated inputs, a non-empty folder, a file where a folder goes."""
    (tmp / "folder.jsonl").mkdir()
    (tmp / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp / "deep.jsonl").write_text('{"text": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    (tmp / "full").mkdir()
    (tmp / "full" / "mine.txt").write_text("keep")
    (tmp / "a-file").write_text("keep")


def _snapshot(*roots: Path) -> dict:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for root in roots for p in root.rglob("*")}


def run_cli(argv: list[str]) -> tuple[object, str, str, str | None]:
    """(exit code, stdout, stderr, the exception that escaped main, if any)."""
    out, err = io.StringIO(), io.StringIO()
    escaped = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as stop:  # argparse's own exit, without --json
            code = stop.code
        except BaseException as exc:  # noqa: BLE001: whatever escapes is what a user sees as a traceback
            code, escaped = None, f"{type(exc).__name__}: {str(exc)[:300]}"
    return code, out.getvalue(), err.getvalue(), escaped


@pytest.mark.parametrize("case", [pytest.param(c, id=c[0], marks=[pytest.mark.xfail(reason=GAPS[c[0]], strict=True)]
                                               if c[0] in GAPS else []) for c in CASES])
def test_bad_input_is_refused_in_one_line_and_writes_nothing(case, tmp_path, monkeypatch):
    name, line, needle = case
    _setup(tmp_path)
    monkeypatch.chdir(tmp_path)
    if name == "model-experts":  # the refusal of an unmeasured family, whatever profiles/moe_families.json lists
        monkeypatch.setattr(experts, "measured_families", lambda: frozenset())
    argv = [a.replace("{c}", str(CORPUS)).replace("{t}", str(tmp_path)) for a in shlex.split(line)]
    before = _snapshot(tmp_path, CORPUS)
    code, out, err, escaped = run_cli(argv)
    assert escaped is None, f"escaped main: {escaped}"
    assert "Traceback" not in out + err
    assert code == 2, f"exit {code}: {(out + err)[-400:]}"
    message = err.strip().splitlines()[-1] if err.strip() else ""
    assert needle in message, f"{needle!r} not in {message!r}"
    assert len(message) < MAX_MESSAGE
    assert _snapshot(tmp_path, CORPUS) == before, "something was written"
    if argv[0] in NO_JSON:
        return
    code, out, err, escaped = run_cli(argv + ["--json"])
    assert escaped is None, f"escaped main with --json: {escaped}"
    assert code == 2 and "Traceback" not in out + err
    obj = json.loads(out)  # exactly one JSON document on stdout
    assert isinstance(obj, dict) and set(obj) == {"error", "hint", "exit_code"} and obj["exit_code"] == 2
    assert needle in obj["error"] + " " + (obj["hint"] or "")
    assert _snapshot(tmp_path, CORPUS) == before, "something was written"


def test_the_corpus_is_large_and_every_file_is_used():
    assert len(CASES) >= 100
    used = " ".join(line for _, line, _ in CASES)
    files = [p for p in CORPUS.rglob("*") if p.is_file() and p.parent.parent == CORPUS]
    unused = [str(p.relative_to(CORPUS)) for p in files if p.relative_to(CORPUS).as_posix() not in used]
    assert not unused, f"corpus files no case reads: {unused}"


# -- what is not bad input stays accepted -------------------------------------------------------------------------
def test_rope_scaling_allows_a_sequence_beyond_max_position_embeddings_and_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err, escaped = run_cli(["train", str(CORPUS / "models" / "rope_linear_x4.json"), "--gpu", "H100",
                                       "--seq", "8192", "--dry-run", "--data", str(CORPUS / "data" / "ok.jsonl")])
    assert escaped is None and code == 0, err
    assert "beyond max_position_embeddings 4,096" in out and "linear rope scaling x4" in out
    assert not any(tmp_path.iterdir())


def test_table_over_models_marks_a_sequence_beyond_a_models_context(monkeypatch):
    from vramplan.cli import table
    from vramplan.profiles import find_model
    # two models stand for the catalog: a whole table plans every model and takes seconds
    monkeypatch.setattr(table, "model_catalog", lambda: (find_model("tinyllama-1.1b"), find_model("qwen3-0.6b")))
    code, out, _, _ = run_cli(["table", "--gpu", "H100", "--seq", "8192", "--json"])
    rows = {r["model"]: r for r in json.loads(out)["rows"]}
    assert code == 0
    assert rows["tinyllama-1.1b"]["beyond_context"] and rows["tinyllama-1.1b"]["plan"] is None
    assert rows["tinyllama-1.1b"]["longest_seq"] == 2048
    assert not rows["qwen3-0.6b"]["beyond_context"] and rows["qwen3-0.6b"]["plan"]
    _, text, _, _ = run_cli(["table", "--gpu", "H100", "--seq", "8192"])
    assert "seq beyond its context (2,048)" in text


def test_a_byte_order_mark_is_accepted(tmp_path):
    from vramplan.train.data import load_examples
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "from a Windows editor"}\n')
    assert load_examples(path)[0].response == "from a Windows editor"


def test_train_dry_run_json_is_one_object_with_progress_on_stderr(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "old.txt").write_text("x")
    code, out, err, escaped = run_cli(["train", "llama-3.2-1b", "--gpu", "T4", "--seq", "512", "--dry-run",
                                       "--data", str(CORPUS / "data" / "ok.jsonl"), "--output", "run", "--json"])
    assert escaped is None and code == 0, err
    d = json.loads(out)
    assert d["dry_run"] is True and d["data"]["examples"] == 2 and d["seq"] == 512
    assert d["plan"]["trainer"] == "trl" and d["sft_config"]["per_device_train_batch_size"] == d["plan"]["batch"]
    assert d["sft_config"]["max_length"] == 512 and d["stack"]["release"] == d["plan"]["trl_version"]
    assert "exists and is not empty" in d["output_note"]  # a dry run says what the run would refuse
    assert "plan:" in err and "plan:" not in out


def test_progress_to_stderr_keeps_stdout_for_the_result(capfd):
    """train --json: what the run says on the way, its own and its worker processes', goes to stderr."""
    import subprocess
    import sys
    from vramplan.cli.common import progress_to_stderr
    with progress_to_stderr(fd_level=True):
        print("progress")
        subprocess.run([sys.executable, "-c", "print('from a worker')"], check=True)
    print("result")
    out, err = capfd.readouterr()
    assert out == "result\n" and "progress" in err and "from a worker" in err


def test_rope_scaling_is_read_from_a_cached_config_too(tmp_path):
    """A config from the Hugging Face cache names its revision after its path; transformers 5 writes
    rope_parameters where 4 wrote rope_scaling."""
    from dataclasses import replace
    from vramplan.cli.common import context_window
    from vramplan.profiles import find_model
    config = json.loads((CORPUS / "models" / "ok_4k.json").read_text())
    config["rope_parameters"] = {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 4096}
    (tmp_path / "config.json").write_text(json.dumps(config))
    arch = replace(find_model(str(tmp_path / "config.json")), source=f"{tmp_path / 'config.json'}, revision abc123",
                   source_kind="hub-cache")
    assert context_window(arch)[0] == 8192
    assert context_window(find_model("tinyllama-1.1b")) == (2048, "max_position_embeddings 2048")
