"""Embedding and c-transform scoring as maps over shards, locally or on Ray Data (beyond one machine).

Both jobs are pure maps: shard ``k`` of the output depends only on shard ``k`` of the input (the texts, or
the embeddings) and on values every worker receives whole (the encoder; the target, its potential and
eps). So they run unchanged on one process or on a cluster, and both executors write one layout:

- embeddings: the cache of :mod:`gotd.embed`, ``<cache_dir>/<key>/manifest.json`` and ``shard-NNNNN.npy``
  (same key, same manifest, same shard files), so a cluster run can be resumed on a laptop and the other
  way round;
- scores: ``<out_dir>/<key>/manifest.json`` and ``scores-NNNNN.npy``, shard ``k`` holding the c-transform
  potentials :math:`f_i = -\\varepsilon \\log \\sum_j b_j \\exp((g_j - C_{ij}) / \\varepsilon)` (float64, cost
  units) of the rows of embedding shard ``k``.

A shard file is written atomically by the worker that computed it; its manifest entry (file, rows, SHA-256)
is the completion marker (both layouts are :mod:`gotd.shards`'s), added by the driver as results stream in, so an interrupted run resumes with the
shards whose entry is present and whose bytes still match. With Ray Data, workers are actors (the model or
the target loads once per actor) with ``num_gpus`` per actor when the cluster has GPUs and CPU actors
otherwise; a worker process that dies is restarted and its shard recomputed (Ray Data's actor fault
tolerance), and an error raised by the map stops the run after the finished shards were recorded.
Workers write into the output folder directly, so on a multi-node cluster it must be a shared file
system (NFS, a FUSE mount of an object store...), and the encoder folder must exist on every node.

What stays on one GPU: the Sinkhorn solve itself. For a pool of billions, solve on a random subsample
(:func:`gotd.ot.ot_gradients_with_diagnostics` with ``subsample=``; ~1e6 candidates fit one GPU) and
score every candidate with :func:`score_shards`. The multi-GPU full solve is not built; its design is in
``docs/scale.md`` (row-sharded pool, one all-reduce of an m-vector per iteration).

Ray is an optional dependency: ``pip install 'gotd[ray]'``.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from gotd import shards
from gotd._io import provenance
from gotd.devices import resolve_device
from gotd.embed import (
    Encoder,
    check_shard_size,
    load_cache_shard,
    load_cached_embeddings,
    read_cache_manifest,
    shard_entry,
)
from gotd.errors import GotdError, GotdInputError
from gotd.validation import check_matrix, check_texts

SCORES_FORMAT = 1
EXECUTORS = ("local", "ray")


# --------------------------------------------------------------------------------------------------
# Ray set-up
# --------------------------------------------------------------------------------------------------
def _require_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise GotdError("the Ray executor needs Ray Data: pip install 'gotd[ray]' (or 'ray[data]')") from exc
    return ray


def _ray_workers(ray: Any, n_shards: int, num_actors: int | None, num_gpus_per_actor: float | None,
                 num_cpus_per_actor: float) -> tuple[int, float]:
    """(actors, GPUs per actor): one GPU per actor and one actor per GPU when the cluster has GPUs."""
    if not ray.is_initialized():
        # Connects to the cluster named by RAY_ADDRESS, or starts a local one.
        ray.init()
    resources = ray.cluster_resources()
    if num_gpus_per_actor is None:
        num_gpus_per_actor = 1.0 if resources.get("GPU", 0) >= 1 else 0.0
    if num_actors is None:
        if num_gpus_per_actor > 0:
            num_actors = int(resources.get("GPU", 0) // num_gpus_per_actor)
        else:
            num_actors = int(resources.get("CPU", 1) // num_cpus_per_actor)
    if num_actors < 1:
        raise GotdInputError(f"the Ray cluster has resources {resources}, too few for one actor with "
                             f"{num_gpus_per_actor} GPU(s) and {num_cpus_per_actor} CPU(s); lower the per-actor needs")
    return max(1, min(num_actors, n_shards)), float(num_gpus_per_actor)


def _quiet_data_context(ray: Any, progress: bool) -> None:
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = progress
    context.verbose_stats_logs = False


# --------------------------------------------------------------------------------------------------
# Embedding
# --------------------------------------------------------------------------------------------------
class _EmbedShardsActor:
    """Ray Data map: one :class:`Encoder` per actor (the model loads once), one shard per row."""

    def __init__(self, encoder: Encoder, folder: str, device: str) -> None:
        self.encoder = encoder.on_device(device)
        self.folder = Path(folder)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        entries = [
            self.encoder.encode_shard(self.folder, int(index), int(start), [str(t) for t in texts])
            for index, start, texts in zip(batch["index"], batch["start"], batch["texts"])
        ]
        return _entries_to_columns(entries)


def _entries_to_columns(entries: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    names = ("index", "start", "stop", "sha256", "n_truncated")
    return {name: np.asarray([entry[name] for entry in entries]) for name in names}


def _entry_from_row(row: dict[str, Any], make_entry: Any) -> dict[str, Any]:
    return make_entry(int(row["index"]), int(row["start"]), int(row["stop"]), str(row["sha256"]),
                      int(row["n_truncated"]))


def embed_shards(
    texts: Sequence[str],
    encoder: Encoder,
    cache_dir: str | os.PathLike[str],
    *,
    shard_size: int | None = None,
    executor: str = "local",
    num_actors: int | None = None,
    num_gpus_per_actor: float | None = None,
    num_cpus_per_actor: float = 1.0,
    progress: bool = True,
) -> Path:
    """Embed ``texts`` into the sharded cache of :mod:`gotd.embed`, locally or on Ray Data; return its folder.

    Parameters
    ----------
    texts : sequence of str
    encoder : Encoder
        Its settings decide the cache key; with ``executor="ray"`` a copy (model not loaded) goes to each
        actor, which computes on its GPU when it has one. Fix ``dtype`` explicitly when the driver and the
        workers have different hardware, so that the key is the same everywhere.
    cache_dir : path
        Root of the embedding cache; the entry is ``<cache_dir>/<key>/``. Must be shared by all workers.
    shard_size : int, optional
        Texts per shard (the unit of work and of resumption); default
        :func:`gotd.embed.default_shard_size` of ``len(texts)``. An existing entry keeps its own.
    executor : {"local", "ray"}
        "local" is :meth:`Encoder.encode` in this process; "ray" maps the missing shards over Ray Data actors.
    num_actors, num_gpus_per_actor, num_cpus_per_actor
        Ray only. Default: one actor per GPU (1 GPU each) when the cluster has GPUs, else one per CPU.
    progress : bool

    Returns
    -------
    pathlib.Path
        The cache entry folder; :func:`gotd.embed.load_cached_embeddings` or :func:`load_embeddings` reads it.
    """
    _check_executor(executor)
    texts = check_texts(texts, "texts", allow_empty=True, blank="warn")
    shard_size = check_shard_size(shard_size, len(texts))
    if executor == "local":
        encoder.encode(texts, cache_dir=cache_dir, progress=progress, shard_size=shard_size)
        return Path(cache_dir) / encoder.cache_key(texts)

    ray = _require_ray()
    folder, manifest = encoder.open_cache_entry(texts, Path(cache_dir), shard_size)
    shard_size = manifest["shard_size"]
    done = shards.intact_shards(folder, manifest)
    missing = [i for i in range(manifest["n_shards"]) if i not in done]
    if missing:
        actors, gpus = _ray_workers(ray, len(missing), num_actors, num_gpus_per_actor, num_cpus_per_actor)
        device = "cuda" if gpus > 0 else "cpu"
        rows = [{"index": i, "start": i * shard_size, "texts": texts[i * shard_size:(i + 1) * shard_size]}
                for i in missing]
        _quiet_data_context(ray, progress)
        results = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
            _EmbedShardsActor, fn_constructor_kwargs={"encoder": encoder, "folder": str(folder), "device": device},
            batch_size=1, batch_format="numpy", concurrency=actors, num_gpus=gpus, num_cpus=num_cpus_per_actor,
        )
        manifest["runs"].append({**provenance(device=device), "executor": "ray", "actors": actors,
                                 "gpus_per_actor": gpus})
        for row in results.iter_rows():
            entry = _entry_from_row(row, shard_entry)
            done[entry["index"]] = entry
            shards.update_manifest(folder, manifest, done)
    shards.update_manifest(folder, manifest, done)
    return folder


def load_embeddings(folder: str | os.PathLike[str]) -> np.ndarray:
    """All embeddings of a complete cache entry folder as one float32 array (checksums checked)."""
    folder = Path(folder)
    embeddings = load_cached_embeddings(folder.parent, folder.name)
    if embeddings is None:  # absent or incomplete; a damaged shard was named in a warning
        raise GotdInputError(f"{folder} holds no complete, intact embedding cache; run embed_shards (it resumes "
                             "and recomputes damaged shards) first")
    return embeddings


# --------------------------------------------------------------------------------------------------
# c-transform scoring
# --------------------------------------------------------------------------------------------------
def _scores_name(index: int) -> str:
    return f"scores-{index:05d}.npy"


def scores_entry(index: int, start: int, stop: int, sha256: str, n_truncated: int = 0) -> dict[str, Any]:
    """The manifest record of a written scores shard (its completion marker).

    ``n_truncated`` is accepted, and ignored, so that scores rows share the embedding rows' format.
    """
    del n_truncated
    return shards.shard_entry(index, _scores_name(index), start, stop, sha256)


def _array_sha256(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


class _ShardScorer:
    """Scores the rows of one embedding shard against a fixed target potential (the per-shard map)."""

    def __init__(self, embeddings: str, out: str, target: np.ndarray, potential: np.ndarray, eps: float,
                 b: np.ndarray | None, options: dict[str, Any]) -> None:
        self.embeddings, self.out = Path(embeddings), Path(out)
        self.manifest = read_cache_manifest(self.embeddings)
        self.target, self.potential, self.eps, self.b, self.options = target, potential, eps, b, options

    def score(self, index: int) -> dict[str, Any]:
        from gotd.ot import c_transform_scores

        entry = next(e for e in self.manifest["shards"] if e["index"] == index)
        pool = load_cache_shard(self.embeddings, entry, self.manifest)
        if pool is None:
            raise GotdInputError(f"embedding shard {entry['file']} in {self.embeddings} is damaged; embed again")
        scores = c_transform_scores(pool, self.target, self.potential, eps=self.eps, b=self.b, **self.options)
        sha256 = shards.save_shard(self.out / _scores_name(index), scores.astype(np.float64))
        return scores_entry(index, entry["start"], entry["stop"], sha256)


class _ScoreShardsActor:
    """Ray Data map: the target and its potential are shipped once per actor, one shard per row."""

    def __init__(self, **kwargs: Any) -> None:
        self.scorer = _ShardScorer(**kwargs)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        entries = [{**self.scorer.score(int(index)), "n_truncated": 0} for index in batch["index"]]
        return _entries_to_columns(entries)


def score_shards(
    embeddings: str | os.PathLike[str],
    target: Any,
    target_potential: Any,
    *,
    eps: float,
    out_dir: str | os.PathLike[str],
    b: Any = None,
    block_size: int | None = None,
    device: str | None = None,
    gemm_dtype: str | None = None,
    executor: str = "local",
    num_actors: int | None = None,
    num_gpus_per_actor: float | None = None,
    num_cpus_per_actor: float = 1.0,
    progress: bool = True,
) -> Path:
    """Score every candidate of an embedding cache by the entropic c-transform, shard by shard.

    .. math:: f_i = -\\varepsilon \\log \\sum_j b_j \\exp\\big((g_j - \\|x_i - y_j\\|^2) / \\varepsilon\\big)

    With ``g`` the target potential of a solve on a subsample (:func:`gotd.ot.sinkhorn`), ``f`` is the
    candidate potential each candidate would get; :func:`load_scores` followed by
    :func:`gotd.ot.calibrated_gradients` gives GOT-D's gradients (lower = select first).

    Parameters
    ----------
    embeddings : path
        A complete embedding cache entry folder (from :func:`embed_shards` or :meth:`Encoder.encode`).
    target : array-like, shape (m, d)
    target_potential : array-like, shape (m,)
        ``SinkhornResult.g``, cost units.
    eps : float
        The solve's eps (absolute, cost units).
    out_dir : path
        Scores go to ``<out_dir>/<key>/``; the key covers the embeddings, target, potential, eps, b and
        the product precision.
    b, block_size, device, gemm_dtype
        As in :func:`gotd.ot.c_transform_scores`. With Ray, ``device`` is each actor's (its GPU when it has
        one); ``gemm_dtype`` is resolved for that device here, so that the key does not depend on the executor.
    executor : {"local", "ray"}
    num_actors, num_gpus_per_actor, num_cpus_per_actor, progress
        As in :func:`embed_shards`.

    Returns
    -------
    pathlib.Path
        The scores folder.
    """
    from gotd.ot import check_weights, resolve_gemm_dtype

    import torch

    _check_executor(executor)
    source = Path(embeddings)
    manifest = read_cache_manifest(source)
    if manifest is None or not manifest.get("complete"):
        raise GotdInputError(f"{source} holds no complete embedding cache; embed the pool first (embed_shards)")
    target_np = np.ascontiguousarray(check_matrix(target, "target", dtype=("float32",)))
    if target_np.shape[1] != manifest["dim"]:
        raise GotdInputError(f"target has shape {target_np.shape}, expected (m, {manifest['dim']}) like the embeddings")
    potential = np.ascontiguousarray(np.asarray(target_potential, dtype=np.float64))
    if potential.shape != (target_np.shape[0],):
        raise GotdInputError(f"target_potential has shape {potential.shape}, expected ({target_np.shape[0]},)")
    eps = float(eps)
    if not (eps > 0 and math.isfinite(eps)):
        raise GotdInputError(f"eps must be a finite number > 0 (the solve's eps, cost units), got {eps}")
    b_np = None if b is None else check_weights(b, target_np.shape[0], "b").numpy()

    ray = _require_ray() if executor == "ray" else None
    gpus = 0.0
    if ray is not None:
        actors, gpus = _ray_workers(ray, manifest["n_shards"], num_actors, num_gpus_per_actor, num_cpus_per_actor)
        worker_device = device or ("cuda" if gpus > 0 else "cpu")
    else:
        worker_device = device or str(resolve_device(None))
    if gemm_dtype is None and worker_device.startswith("cuda") and not torch.cuda.is_available():
        gemm_dtype = "bfloat16"  # what resolve_gemm_dtype picks on a bf16-capable GPU the driver cannot see
    gemm_dtype = resolve_gemm_dtype(gemm_dtype, torch.device(worker_device))

    identity = {"format": SCORES_FORMAT, "embeddings_key": manifest["key"], "target": _array_sha256(target_np),
                "potential": _array_sha256(potential), "eps": eps.hex(),
                "b": None if b_np is None else _array_sha256(b_np), "gemm_dtype": gemm_dtype}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    folder = Path(out_dir) / key
    scores_manifest = _read_manifest_of_scores(folder)
    if scores_manifest is None:
        scores_manifest = {
            "format": SCORES_FORMAT, "kind": "c_transform_scores", "key": key, "identity": identity,
            "embeddings": str(source.resolve()), "n": manifest["n"], "n_shards": manifest["n_shards"],
            "eps": eps, "gemm_dtype": gemm_dtype, "m": int(target_np.shape[0]), "shards": [], "n_truncated": 0,
            "complete": False, "runs": [],
        }
        shards.write_manifest(folder, scores_manifest)
    done = shards.intact_shards(folder, scores_manifest)
    missing = [e["index"] for e in manifest["shards"] if e["index"] not in done]
    options = {"block_size": block_size, "device": worker_device, "gemm_dtype": gemm_dtype, "progress": False}
    scorer_kwargs = {"embeddings": str(source), "out": str(folder), "target": target_np, "potential": potential,
                     "eps": eps, "b": b_np, "options": options}
    if missing and ray is None:
        scorer = _ShardScorer(**scorer_kwargs)
        scores_manifest["runs"].append({**provenance(device=worker_device), "executor": "local"})
        for index in tqdm(missing, desc="c-transform shards", unit="shard", disable=not progress):
            done[index] = scorer.score(index)
            shards.update_manifest(folder, scores_manifest, done)
    elif missing:
        _quiet_data_context(ray, progress)
        results = ray.data.from_items([{"index": i} for i in missing], override_num_blocks=len(missing)).map_batches(
            _ScoreShardsActor, fn_constructor_kwargs=scorer_kwargs, batch_size=1, batch_format="numpy",
            concurrency=actors, num_gpus=gpus, num_cpus=num_cpus_per_actor,
        )
        scores_manifest["runs"].append({**provenance(device=worker_device), "executor": "ray", "actors": actors,
                                        "gpus_per_actor": gpus})
        for row in results.iter_rows():
            entry = _entry_from_row(row, scores_entry)
            done[entry["index"]] = entry
            shards.update_manifest(folder, scores_manifest, done)
    shards.update_manifest(folder, scores_manifest, done)
    return folder


def _read_manifest_of_scores(folder: Path) -> dict[str, Any] | None:
    return shards.read_manifest(folder, format=SCORES_FORMAT, kind="c_transform_scores", label="scores",
                                stacklevel=4)


def load_scores(folder: str | os.PathLike[str]) -> np.ndarray:
    """The c-transform potentials of every candidate (float64, cost units, input order) of a complete run."""
    folder = Path(folder)
    manifest = _read_manifest_of_scores(folder)
    if manifest is None or not manifest.get("complete"):
        raise GotdInputError(f"{folder} holds no complete scores; run score_shards (it resumes) first")
    parts = []
    for entry in manifest["shards"]:
        try:
            parts.append(shards.load_shard(folder, entry, shape=(entry["stop"] - entry["start"],)))
        except shards.DamagedShard as exc:
            raise GotdInputError(f"{folder / entry['file']} differs from its manifest entry ({exc}); run "
                                 "score_shards again") from None
    return np.concatenate(parts) if parts else np.zeros(0)


def _check_executor(executor: str) -> None:
    if executor not in EXECUTORS:
        raise GotdInputError(f"executor={executor!r} is not one of {EXECUTORS}")
