"""The on-disk embedding cache: keys, shard files in a storage dtype, and the manifest.

Layout: ``<cache_dir>/<key>/manifest.json`` plus ``shard-00000.npy``, ``shard-00001.npy``... Shard ``k``
holds the embeddings of texts ``[k * shard_size, (k + 1) * shard_size)`` in input order; the manifest
records the shard size, so an entry written with any shard size (10,000 rows before the size became
automatic) is read and resumed with its own. A shard's manifest entry (file, rows, SHA-256) is its
completion marker; the manifest and shard files are read and written by :mod:`gotd.shards`, the one
implementation the c-transform scores of :mod:`gotd.distributed` use too.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gotd import shards
from gotd.embed._dtypes import STORAGE_DTYPES
from gotd.errors import GotdInputError

CACHE_FORMAT = 1
KEY_SETTINGS = ("model_fingerprint", "pooling", "normalize", "max_length", "dtype")

MIN_SHARD_SIZE = 1024
MAX_SHARD_SIZE = 10000
SHARDS_PER_INPUT = 100


def default_shard_size(n: int) -> int:
    """Rows per shard when the caller does not choose: ``clip(ceil(n / 100), 1024, 10000)``.

    Small enough that an interrupted run of a few thousand texts resumes from its finished shards (below
    102,400 texts a shard is 1,024 rows: ~12 s of MiniLM on a 2-core CPU in float32), large enough that a
    big input does not write more manifest entries than it needs (at most ~1% of the work is lost to an
    interruption). Shards are also the length-sorting blocks; the size does not change the numbers beyond
    float32 summation order, and is not part of the cache key.
    """
    return int(min(MAX_SHARD_SIZE, max(MIN_SHARD_SIZE, math.ceil(n / SHARDS_PER_INPUT))))


def check_shard_size(shard_size: int | None, n: int) -> int:
    """``shard_size``, checked, or :func:`default_shard_size` of ``n`` when it is ``None``."""
    if shard_size is None:
        return default_shard_size(n)
    if not isinstance(shard_size, int) or isinstance(shard_size, bool) or shard_size < 1:
        raise GotdInputError(f"shard_size={shard_size!r} must be a positive integer (or None for automatic)")
    return shard_size


def embedding_cache_key(texts_sha256: str, settings: dict[str, Any]) -> str:
    """SHA-256 cache key over the texts' fingerprint and the settings that change the numbers.

    Only :data:`KEY_SETTINGS` enter the key, plus ``storage_dtype`` when it is not float32 and ``backend``
    when it is not ``"torch"`` (so the float32 torch caches keep the keys they always had): the device,
    batch size, shard size and model path do not.
    """
    payload = {"format": CACHE_FORMAT, "texts_sha256": texts_sha256}
    payload.update({name: settings[name] for name in KEY_SETTINGS})
    storage = settings.get("storage_dtype", "float32")
    if storage != "float32":
        payload["storage_dtype"] = storage
    backend = settings.get("backend", "torch")
    if backend != "torch":
        payload["backend"] = backend
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


def _shard_name(index: int) -> str:
    return f"shard-{index:05d}.npy"


def read_cache_manifest(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest of an embedding cache entry folder, or None (with a warning when it is unusable)."""
    return shards.read_manifest(Path(folder), format=CACHE_FORMAT, label="embedding cache", stacklevel=4)


def to_storage(array: np.ndarray, storage_dtype: str) -> np.ndarray:
    """Float32 embeddings as stored on disk: float32, float16, or bf16 bit patterns as uint16.

    bf16 keeps float32's exponent range and 8 significant bits (relative rounding error <= 2^-9), with
    round-to-nearest-even as torch does it.
    """
    array = np.ascontiguousarray(array, dtype=np.float32)
    if storage_dtype == "float32":
        return array
    if storage_dtype == "float16":
        return array.astype(np.float16)
    return torch.from_numpy(array).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)


def from_storage(array: np.ndarray, storage_dtype: str) -> np.ndarray:
    """The float32 values of a stored shard (exact: every bf16 and float16 value is a float32 value)."""
    if storage_dtype == "float32":
        return array
    if storage_dtype == "float16":
        return array.astype(np.float32)
    # A bf16 value is the upper half of the float32 with the same bits.
    return (array.astype(np.uint32) << 16).view(np.float32)


def round_to_storage(array: np.ndarray, storage_dtype: str) -> np.ndarray:
    """``array`` rounded to ``storage_dtype`` and back to float32 (unchanged for float32)."""
    if storage_dtype == "float32":
        return array
    return from_storage(to_storage(array, storage_dtype), storage_dtype)


def load_cache_shard(folder: str | os.PathLike[str], entry: dict[str, Any], manifest: dict[str, Any]) -> np.ndarray | None:
    """One shard of a cache entry as float32, checked against its manifest entry; None (with a warning)
    when it is missing or damaged."""
    path = Path(folder) / entry["file"]
    storage_dtype = manifest.get("storage_dtype", "float32")
    try:
        array = shards.load_shard(Path(folder), entry, shape=(entry["stop"] - entry["start"], manifest["dim"]),
                                  dtype=STORAGE_DTYPES[storage_dtype])
    except shards.DamagedShard as exc:
        warnings.warn(f"embedding cache shard {path} is unusable ({exc}); recomputing it", stacklevel=3)
        return None
    return from_storage(array, storage_dtype)


def save_cache_shard(folder: Path, index: int, array: np.ndarray, storage_dtype: str = "float32") -> str:
    """Write shard ``index`` of a cache entry atomically in ``storage_dtype``; return the SHA-256 of its bytes."""
    return shards.save_shard(Path(folder) / _shard_name(index), to_storage(array, storage_dtype))


def load_cached_embeddings(cache_dir: str | os.PathLike[str], key: str) -> np.ndarray | None:
    """Return the embeddings of a complete cache entry, or None when it is absent, incomplete or damaged.

    Needs no model: reads ``<cache_dir>/<key>/manifest.json`` and its shards, checking each shard's
    checksum and shape.
    """
    folder = Path(cache_dir) / key
    manifest = read_cache_manifest(folder)
    if manifest is None or not manifest.get("complete"):
        return None
    parts = []
    for entry in manifest["shards"]:
        array = load_cache_shard(folder, entry, manifest)
        if array is None:
            return None
        parts.append(array)
    if not parts:
        return np.zeros((0, manifest["dim"]), dtype=np.float32)
    return np.concatenate(parts, axis=0)


def new_manifest(key: str, texts_sha256: str, n: int, dim: int, shard_size: int, storage_dtype: str,
                 settings: dict[str, Any]) -> dict[str, Any]:
    """The manifest of a cache entry with no shards written yet."""
    return {
        "format": CACHE_FORMAT,
        "key": key,
        "texts_sha256": texts_sha256,
        "n": n,
        "dim": dim,
        "shard_size": shard_size,
        "n_shards": math.ceil(n / shard_size),
        "storage_dtype": storage_dtype,
        "settings": settings,
        "shards": [],
        "n_truncated": 0,
        "complete": False,
        "runs": [],
    }


def shard_entry(index: int, start: int, stop: int, sha256: str, n_truncated: int) -> dict[str, Any]:
    """The manifest record of a written cache shard (its completion marker), with its truncated-text count."""
    return shards.shard_entry(index, _shard_name(index), start, stop, sha256, n_truncated=n_truncated)
