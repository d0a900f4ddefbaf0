"""Embedding and c-transform scoring over shards: the Ray Data executor writes the local executor's files.

One local Ray instance (2 CPUs, no dashboard) serves the whole module. Workers are separate processes, so
the test encoders that fail on purpose are shipped to them by value (cloudpickle), and "fail once" is
remembered in a marker file that every process sees.
"""
from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from transformers import BertConfig, BertModel, BertTokenizerFast  # noqa: E402

from gotd.distributed import embed_shards, load_embeddings, load_scores, score_shards  # noqa: E402
from gotd.embed import Encoder  # noqa: E402
from gotd.errors import GotdInputError  # noqa: E402
from gotd.ot import c_transform_scores, sinkhorn  # noqa: E402

WORDS = "the a cat dog sat ran on under mat rug big small red blue fast slow market bank stock river".split()
SHARD_SIZE = 5


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray", reason="the Ray executor needs the optional extra: pip install 'gotd[ray]'")
    pytest.importorskip("ray.data", reason="the Ray executor needs Ray Data: pip install 'ray[data]'")
    from ray import cloudpickle

    # This module is not importable in the workers: send its encoder subclasses by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer, 32-d BERT with a word-level tokenizer, saved like a hub folder."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(vocab)})
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def texts() -> list[str]:
    rng = random.Random(4)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 14))) for _ in range(23)]  # 5 shards


def _encoder(folder: Path, cls: type = Encoder, **kwargs) -> Encoder:
    return cls(str(folder), device="cpu", dtype="float32", batch_size=3, max_length=32, **kwargs)


class KilledOnceEncoder(Encoder):
    """Kills its worker process the first time it sees the block that starts with ``self.fatal_text``."""

    fatal_text = ""
    marker = ""

    def _encode_block(self, texts, bar):
        if texts and texts[0] == self.fatal_text and not os.path.exists(self.marker):
            Path(self.marker).write_text("killed")
            os._exit(1)
        return super()._encode_block(texts, bar)


class RaisingEncoder(Encoder):
    """Raises on the block that starts with ``self.fatal_text`` (an error in the map, not a dead process)."""

    fatal_text = ""

    def _encode_block(self, texts, bar):
        if texts and texts[0] == self.fatal_text:
            raise RuntimeError("simulated failure in a shard")
        return super()._encode_block(texts, bar)


def _shard_files(folder: Path, pattern: str = "shard-*.npy") -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.glob(pattern))}


def _shard_entries(folder: Path) -> list[dict]:
    return json.loads((folder / "manifest.json").read_text())["shards"]


@pytest.fixture(scope="module")
def local_embeddings(model_dir: Path, texts, tmp_path_factory) -> Path:
    # A CPU actor computes with one intra-op thread (Ray sets OMP_NUM_THREADS to its num_cpus); float32
    # GEMMs split over another number of threads may round differently in the last bit, so the local
    # reference uses one thread too: same computation, same bytes.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return embed_shards(texts, _encoder(model_dir), tmp_path_factory.mktemp("local"), shard_size=SHARD_SIZE,
                            progress=False)
    finally:
        torch.set_num_threads(threads)


# ---- embedding ---------------------------------------------------------------------------------------
def test_ray_run_with_a_killed_worker_writes_the_local_files(ray_session, model_dir, texts, local_embeddings,
                                                             tmp_path) -> None:
    encoder = _encoder(model_dir, KilledOnceEncoder)
    encoder.fatal_text = texts[2 * SHARD_SIZE]
    encoder.marker = str(tmp_path / "killed-once")
    folder = embed_shards(texts, encoder, tmp_path / "cache", shard_size=SHARD_SIZE, executor="ray", num_actors=2,
                          progress=False)
    assert Path(encoder.marker).read_text() == "killed"  # a worker process really died on shard 2
    assert folder.name == local_embeddings.name  # same cache key
    local_files = _shard_files(local_embeddings)
    assert len(local_files) == 5 and _shard_files(folder) == local_files  # byte-identical shards
    assert _shard_entries(folder) == _shard_entries(local_embeddings)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["complete"] and manifest["runs"][-1]["executor"] == "ray"
    np.testing.assert_array_equal(load_embeddings(folder), load_embeddings(local_embeddings))
    np.testing.assert_allclose(load_embeddings(folder), _encoder(model_dir).encode(texts, progress=False),
                               rtol=0, atol=1e-6)  # two threads, one block: equal up to summation order
    # a complete entry is served by the local path without recomputing anything
    local = _encoder(model_dir)
    local.encode(texts, cache_dir=tmp_path / "cache", progress=False)
    assert local.last_stats["n_from_cache"] == len(texts)


def test_failed_run_resumes_to_the_uninterrupted_output(ray_session, model_dir, texts, local_embeddings,
                                                        tmp_path) -> None:
    failing = _encoder(model_dir, RaisingEncoder)
    failing.fatal_text = texts[3 * SHARD_SIZE]
    with pytest.raises(Exception, match="simulated failure"):
        embed_shards(texts, failing, tmp_path, shard_size=SHARD_SIZE, executor="ray", num_actors=1, progress=False)
    folder = tmp_path / local_embeddings.name
    manifest = json.loads((folder / "manifest.json").read_text())
    assert not manifest["complete"] and 3 not in {entry["index"] for entry in manifest["shards"]}
    finished = {entry["file"]: (folder / entry["file"]).stat().st_mtime_ns for entry in manifest["shards"]}

    resumed = embed_shards(texts, _encoder(model_dir), tmp_path, shard_size=SHARD_SIZE, executor="ray",
                           num_actors=2, progress=False)
    assert _shard_files(resumed) == _shard_files(local_embeddings)
    assert _shard_entries(resumed) == _shard_entries(local_embeddings)
    # shards recorded by the failed run were kept, not recomputed
    assert {name: (folder / name).stat().st_mtime_ns for name in finished} == finished
    assert [run["executor"] for run in json.loads((folder / "manifest.json").read_text())["runs"]][-1] == "ray"


# ---- scoring -------------------------------------------------------------------------------------------
def test_ray_scoring_resumes_a_local_run_to_the_same_files(ray_session, local_embeddings, tmp_path) -> None:
    pool = load_embeddings(local_embeddings)
    target = pool[[1, 4, 9, 16]] + np.random.default_rng(0).normal(scale=0.05, size=(4, pool.shape[1]))
    solve = sinkhorn(pool[::2], target)
    eps = solve.diagnostics["eps"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a one-CPU actor (see local_embeddings)
    try:
        local = score_shards(local_embeddings, target, solve.g, eps=eps, out_dir=tmp_path / "local", progress=False)
    finally:
        torch.set_num_threads(threads)
    local_files = _shard_files(local, "scores-*.npy")
    assert len(local_files) == 5
    expected = c_transform_scores(pool, target, solve.g, eps=eps)
    np.testing.assert_allclose(load_scores(local), expected, rtol=0, atol=1e-6 * np.ptp(expected))

    # An interrupted copy of the local run: shard 1 damaged, shards 3 and 4 without markers (4 without a file).
    partial = tmp_path / "ray" / local.name
    partial.mkdir(parents=True)
    for name, data in local_files.items():
        (partial / name).write_bytes(data)
    manifest = json.loads((local / "manifest.json").read_text())
    manifest["shards"], manifest["complete"] = manifest["shards"][:3], False
    (partial / "manifest.json").write_text(json.dumps(manifest))
    (partial / "scores-00001.npy").write_bytes(b"damaged")
    (partial / "scores-00004.npy").unlink()
    with pytest.raises(GotdInputError, match="no complete scores"):
        load_scores(partial)
    kept = (partial / "scores-00000.npy").stat().st_mtime_ns

    with pytest.warns(UserWarning, match="scores-00001.npy is missing or differs"):
        remote = score_shards(local_embeddings, target, solve.g, eps=eps, out_dir=tmp_path / "ray", executor="ray",
                              num_actors=2, progress=False)
    assert remote == partial
    assert _shard_files(remote, "scores-*.npy") == local_files  # shards 1, 3, 4 recomputed on Ray, same bytes
    assert (partial / "scores-00000.npy").stat().st_mtime_ns == kept
    runs = json.loads((remote / "manifest.json").read_text())["runs"]
    assert [run["executor"] for run in runs] == ["local", "ray"]
    np.testing.assert_array_equal(load_scores(remote), load_scores(local))


def test_scores_key_follows_the_potential_and_eps(local_embeddings, tmp_path) -> None:
    pool = load_embeddings(local_embeddings)
    target, g = pool[:3], np.zeros(3)
    first = score_shards(local_embeddings, target, g, eps=0.5, out_dir=tmp_path, progress=False)
    assert score_shards(local_embeddings, target, g, eps=0.5, out_dir=tmp_path, progress=False) == first
    assert score_shards(local_embeddings, target, g, eps=0.25, out_dir=tmp_path, progress=False) != first
    assert score_shards(local_embeddings, target, g + 1.0, eps=0.5, out_dir=tmp_path, progress=False) != first


def test_bad_arguments_are_named(model_dir, texts, local_embeddings, tmp_path) -> None:
    with pytest.raises(GotdInputError, match="executor"):
        embed_shards(texts, _encoder(model_dir), tmp_path, executor="spark")
    with pytest.raises(GotdInputError, match="no complete embedding cache"):
        score_shards(tmp_path, np.zeros((2, 32)), np.zeros(2), eps=1.0, out_dir=tmp_path)
    with pytest.raises(GotdInputError, match="expected \\(m, 32\\)"):
        score_shards(local_embeddings, np.zeros((2, 8)), np.zeros(2), eps=1.0, out_dir=tmp_path)
    with pytest.raises(GotdInputError, match="eps must be"):
        score_shards(local_embeddings, np.zeros((2, 32)), np.zeros(2), eps=0.0, out_dir=tmp_path)
