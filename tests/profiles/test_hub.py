"""Hub ids: catalog aliases first, then the local Hugging Face cache, then a download only with consent."""
import json
import subprocess
import sys
import types

import pytest

from vramplan.errors import VramplanError
from vramplan.profiles import UnmodelledError, find_model, model_catalog
from vramplan.profiles.catalog import _key
from vramplan.profiles.hub import cache_dir, cached_config
from tests.profiles.moe_gate import moe_gate_closed  # noqa: F401  (the fixture)

MISTRAL = {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 4096,
           "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
           "vocab_size": 32000, "tie_word_embeddings": False, "max_position_embeddings": 32768,
           "sliding_window": 4096, "rope_theta": 10000.0, "torch_dtype": "bfloat16"}
MIXTRAL = {**MISTRAL, "model_type": "mixtral", "num_local_experts": 8, "num_experts_per_tok": 2}
ZEPHYR = "HuggingFaceH4/zephyr-7b-beta"


def put(cache, repo_id, config, revision="0123456789abcdef0123", ref=True):
    """The layout huggingface_hub writes: models--ORG--NAME/{refs/main, snapshots/REV/config.json}."""
    folder = cache / ("models--" + repo_id.replace("/", "--"))
    snap = folder / "snapshots" / revision
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps(config))
    if ref:
        (folder / "refs").mkdir()
        (folder / "refs" / "main").write_text(revision)
    return snap / "config.json"


def test_every_profile_names_its_hub_ids_and_no_two_models_share_a_name():
    seen = {}
    for m in model_catalog():
        hub_ids = [a for a in m.aliases if "/" in a] + [m.hub_id]
        assert len(hub_ids) >= 2 or m.name in {"deepseek-r1-distill-llama-8b", "phi-4-mini", "qwen3-32b"}
        for n in (m.name, *m.aliases, m.hub_id):
            assert seen.setdefault(_key(n), m.name) == m.name, f"{n} names both {seen[_key(n)]} and {m.name}"


@pytest.mark.parametrize("hub_id", ["meta-llama/Meta-Llama-3.1-8B-Instruct", "NousResearch/Meta-Llama-3.1-8B",
                                    "meta-llama/llama-3.1-8b-instruct", "META-LLAMA/LLAMA-3.1-8B"])
def test_the_seed_recipes_hub_ids_are_the_catalog_model(hf_cache, hub_id):
    m = find_model(hub_id)
    assert m.name == "llama-3.1-8b" and m.source_kind == "catalog"


@pytest.mark.parametrize("hub_id, name", [("Qwen/Qwen2.5-7B-Instruct", "qwen2.5-7b"), ("Qwen/Qwen3-8B-Base", "qwen3-8b"),
                                          ("google/gemma-2-9b-it", "gemma-2-9b"), ("microsoft/phi-4", "phi-4"),
                                          ("mistralai/Mistral-7B-Instruct-v0.3", "mistral-7b-v0.3"),
                                          ("google/gemma-3-4b-it", "gemma-3-4b")])
def test_base_and_instruct_hub_ids_resolve_to_their_profile(hf_cache, hub_id, name):
    assert find_model(hub_id).name == name


def test_a_cached_hub_id_outside_the_catalog_is_read_from_the_cache_and_says_so(hf_cache):
    path = put(hf_cache, ZEPHYR, {**MISTRAL, "_name_or_path": "mistralai/Mistral-7B-v0.1"})
    m = find_model(ZEPHYR)
    assert m.name == ZEPHYR and m.hub_id == ZEPHYR and m.model_type == "mistral" and m.read_as is None
    assert m.source_kind == "hub-cache" and str(path) in m.source and "revision 0123456789ab" in m.source
    assert m.source_line.startswith(f"{ZEPHYR}: config.json from the local Hugging Face cache (")
    assert m.total_params == find_model("mistral-7b-v0.3").total_params - 768 * 4096 * 2  # 32000 vs 32768 vocab


def test_the_cache_layout_is_the_one_huggingface_hub_reads(hf_cache):
    hub = pytest.importorskip("huggingface_hub")
    path = put(hf_cache, ZEPHYR, MISTRAL)
    assert hub.try_to_load_from_cache(ZEPHYR, "config.json", cache_dir=str(hf_cache)) == str(path)
    assert cached_config(ZEPHYR) == (path, "0123456789abcdef0123")


def test_the_cache_is_matched_case_insensitively_and_without_refs(hf_cache):
    put(hf_cache, ZEPHYR, MISTRAL, ref=False)
    assert find_model("huggingfaceh4/Zephyr-7B-Beta").source_kind == "hub-cache"


def test_refs_main_picks_the_snapshot(hf_cache):
    put(hf_cache, ZEPHYR, {**MISTRAL, "num_hidden_layers": 2}, revision="old")
    folder = hf_cache / "models--HuggingFaceH4--zephyr-7b-beta"
    (folder / "snapshots" / "new").mkdir()
    (folder / "snapshots" / "new" / "config.json").write_text(json.dumps(MISTRAL))
    assert find_model(ZEPHYR).layers == 2  # refs/main says "old"


def test_hf_home_and_the_default_cache_are_looked_at(tmp_path, monkeypatch):
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert cache_dir() == tmp_path / "hf" / "hub"
    monkeypatch.delenv("HF_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"
    (tmp_path / "xdg" / "huggingface" / "hub").mkdir(parents=True)
    put(tmp_path / "xdg" / "huggingface" / "hub", ZEPHYR, MISTRAL)
    assert find_model(ZEPHYR).source_kind == "hub-cache"


def test_a_cached_moe_config_gets_the_refusal_not_a_number(hf_cache, moe_gate_closed):
    put(hf_cache, "mistralai/Mixtral-8x7B-v0.1", MIXTRAL)
    with pytest.raises(UnmodelledError) as err:
        find_model("mistralai/Mixtral-8x7B-v0.1")
    assert err.value.part == "mixture-of-experts"
    assert "mistralai/Mixtral-8x7B-v0.1" in str(err.value) and "Mixture-of-Experts" in str(err.value)


def test_a_cached_malformed_config_names_the_field(hf_cache):
    put(hf_cache, ZEPHYR, {**MISTRAL, "num_attention_heads": 0})
    with pytest.raises(VramplanError, match=r"zephyr-7b-beta .*num_attention_heads must be a positive whole number"):
        find_model(ZEPHYR)
    put(hf_cache, "org/broken", {})
    (hf_cache / "models--org--broken" / "snapshots" / "0123456789abcdef0123" / "config.json").write_text("{oops")
    with pytest.raises(VramplanError, match="cannot be read"):
        find_model("org/broken")


def test_not_cached_says_how_to_get_the_file_offline(hf_cache):
    with pytest.raises(VramplanError) as err:
        find_model(ZEPHYR)
    text = str(err.value)
    assert f"{ZEPHYR}: not in the catalog, and no config.json for it in the local Hugging Face cache ({hf_cache})" in text
    assert f"`hf download {ZEPHYR} config.json`" in text and f"huggingface-cli download {ZEPHYR} config.json" in text
    assert "local config.json or model folder" in text and "VRAMPLAN_DOWNLOAD=1" in text
    assert "Gated models" in text and "token" in text


def test_a_misspelt_catalog_hub_id_suggests_the_catalog_model(hf_cache):
    with pytest.raises(VramplanError, match="catalog models with close names: .*llama-3.1-8b"):
        find_model("meta-llama/Llama-3.1-9B")


def fake_hub(monkeypatch, download):
    module = types.ModuleType("huggingface_hub")
    module.hf_hub_download = download
    monkeypatch.setitem(sys.modules, "huggingface_hub", module)


def test_vramplan_download_fetches_only_config_json(hf_cache, monkeypatch):
    calls = []

    def download(repo_id, filename, **kw):
        calls.append((repo_id, filename))
        return str(put(hf_cache, repo_id, MISTRAL, revision="abc123"))

    fake_hub(monkeypatch, download)
    monkeypatch.setenv("VRAMPLAN_DOWNLOAD", "1")
    m = find_model(ZEPHYR)
    assert calls == [(ZEPHYR, "config.json")]
    assert m.source_kind == "hub-download" and "revision abc123" in m.source
    assert "downloaded from the Hugging Face hub" in m.source_line


def test_vramplan_download_names_a_gated_repository(hf_cache, monkeypatch):
    class GatedRepoError(OSError):
        pass

    def download(repo_id, filename, **kw):
        raise GatedRepoError("401 Client Error")

    fake_hub(monkeypatch, download)
    monkeypatch.setenv("VRAMPLAN_DOWNLOAD", "1")
    with pytest.raises(VramplanError) as err:
        find_model("meta-llama/Llama-4-Scout-17B-16E")
    assert "is gated" in str(err.value) and "HF_TOKEN" in str(err.value) and "hf auth login" in str(err.value)


@pytest.mark.parametrize("error, says", [("LocalEntryNotFoundError", "offline"), ("OfflineModeIsEnabled", "offline"),
                                         ("RemoteEntryNotFoundError", "has no config.json"),
                                         ("RepositoryNotFoundError", "no such repository on the hub")])
def test_vramplan_download_tells_offline_from_missing(hf_cache, monkeypatch, error, says):
    entry = type("EntryNotFoundError", (Exception,), {})  # huggingface_hub's hierarchy: both kinds are entries
    cls = type(error, (entry,), {})

    def download(repo_id, filename, **kw):
        raise cls("nope")

    fake_hub(monkeypatch, download)
    monkeypatch.setenv("VRAMPLAN_DOWNLOAD", "1")
    with pytest.raises(VramplanError, match=says):
        find_model(ZEPHYR)


def test_vramplan_download_without_huggingface_hub_says_so(hf_cache, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import raises ImportError
    monkeypatch.setenv("VRAMPLAN_DOWNLOAD", "1")
    with pytest.raises(VramplanError, match="needs huggingface_hub, which is not installed") as err:
        find_model(ZEPHYR)
    assert "pip install huggingface_hub" in str(err.value)


def test_a_catalog_name_or_hub_alias_imports_no_hub_library():
    code = ("import sys; from vramplan.profiles import find_model; "
            "find_model('meta-llama/Meta-Llama-3.1-8B-Instruct'); find_model('llama-3.1-8b'); "
            "bad = [m for m in ('huggingface_hub', 'transformers', 'torch', 'vramplan.profiles.hub') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cached_file_finds_any_file_of_the_snapshot_refs_main_names(hf_cache):
    from vramplan.profiles.hub import cached_file
    put(hf_cache, ZEPHYR, MISTRAL, revision="aaaa")
    snap = hf_cache / ("models--" + ZEPHYR.replace("/", "--")) / "snapshots"
    assert cached_file(ZEPHYR, "tokenizer.json") is None
    (snap / "bbbb").mkdir()
    (snap / "bbbb" / "tokenizer.json").write_text("{}")  # only in a snapshot refs/main does not name: the newest
    assert cached_file(ZEPHYR, "tokenizer.json") == (snap / "bbbb" / "tokenizer.json", "bbbb")
    (snap / "aaaa" / "tokenizer.json").write_text("{}")
    assert cached_file(ZEPHYR, "tokenizer.json") == (snap / "aaaa" / "tokenizer.json", "aaaa")
    assert cached_config(ZEPHYR) == (snap / "aaaa" / "config.json", "aaaa")
