"""Arrays on disk in shards, with a manifest whose entries mark the finished shards.

The one implementation behind the embedding cache (:mod:`gotd.embed`) and the c-transform scores
(:mod:`gotd.distributed`). A sharded array lives in one folder::

    <folder>/manifest.json      {"format": ..., "n_shards": K, "shards": [entry, ...], "complete": ..., ...}
    <folder>/<file of shard k>  one .npy per shard, rows [start, stop) of the whole array

An entry is ``{"index", "file", "start", "stop", "sha256", ...}`` (a user of this module adds its own
fields, e.g. ``n_truncated``). A shard file is written atomically first and its entry is added to the
manifest after, so an entry whose file still has the recorded SHA-256 is a finished shard: the entry is
the completion marker, and an interrupted run resumes with the shards whose entries hold. The manifest
is rewritten atomically after each shard (:func:`update_manifest`).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from gotd._io import atomic_path, file_sha256, write_json_atomic

MANIFEST_NAME = "manifest.json"


class DamagedShard(ValueError):
    """A shard file that is missing, unreadable, or differs from its manifest entry."""


def read_manifest(folder: Path, *, format: int, label: str, kind: str | None = None,
                  stacklevel: int = 3) -> dict[str, Any] | None:
    """The manifest of ``folder``, or None when there is none or it cannot be used.

    Parameters
    ----------
    folder : pathlib.Path
    format : int
        The format number the caller writes; a manifest of another format is not used.
    label : str
        What the folder holds, for the warning (``"embedding cache"``, ``"scores"``).
    kind : str, optional
        When given, the manifest's ``kind`` field must equal it.
    stacklevel : int
        Passed to :func:`warnings.warn`, so that the warning points at the caller's caller.

    Warns
    -----
    UserWarning
        The manifest exists but is unreadable or of another format or kind; the caller recomputes.
    """
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict) or manifest.get("format") != format:
            found = manifest.get("format") if isinstance(manifest, dict) else None
            raise ValueError(f"format {found!r} != {format}")
        if kind is not None and manifest.get("kind") != kind:
            raise ValueError(f"kind {manifest.get('kind')!r} != {kind!r}")
        return manifest
    except (OSError, ValueError) as exc:
        warnings.warn(f"{label} manifest {path} is unreadable ({exc}); recomputing", stacklevel=stacklevel)
        return None


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` to ``<folder>/manifest.json`` atomically (creating the folder)."""
    write_json_atomic(Path(folder) / MANIFEST_NAME, manifest)


def shard_entry(index: int, file: str, start: int, stop: int, sha256: str, **fields: Any) -> dict[str, Any]:
    """The manifest record of a written shard (its completion marker): rows ``[start, stop)`` in ``file``."""
    return {"index": index, "file": file, "start": start, "stop": stop, "sha256": sha256, **fields}


def save_shard(path: Path, array: np.ndarray) -> str:
    """Write ``array`` to ``path`` as .npy atomically; return the SHA-256 of the file's bytes."""
    with atomic_path(Path(path)) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
        return file_sha256(tmp)


def load_shard(folder: Path, entry: dict[str, Any], *, shape: tuple[int, ...] | None = None,
               dtype: Any = None) -> np.ndarray:
    """The array of one shard, checked against its entry (SHA-256) and, when given, ``shape`` and ``dtype``.

    Raises
    ------
    DamagedShard
        The file is missing or unreadable, its bytes differ from the entry, or its shape or dtype differ.
    """
    path = Path(folder) / entry["file"]
    try:
        if file_sha256(path) != entry["sha256"]:
            raise DamagedShard("checksum differs from the manifest")
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DamagedShard(str(exc)) from None
    if (shape is not None and array.shape != tuple(shape)) or (dtype is not None and array.dtype != np.dtype(dtype)):
        raise DamagedShard(f"shape {array.shape} {array.dtype}, expected {shape} {np.dtype(dtype) if dtype else ''}"
                           .rstrip())
    return array


def shard_intact(folder: Path, entry: dict[str, Any]) -> bool:
    """Whether a recorded shard's file is still there with the bytes its entry names."""
    try:
        return file_sha256(Path(folder) / entry["file"]) == entry["sha256"]
    except OSError:
        return False


def intact_shards(folder: Path, manifest: dict[str, Any], *, stacklevel: int = 3) -> dict[int, dict[str, Any]]:
    """The manifest's entries whose files are intact, by shard index (a damaged one is dropped, with a
    warning, so that it is recomputed)."""
    done = {}
    for entry in manifest["shards"]:
        if shard_intact(folder, entry):
            done[entry["index"]] = entry
        else:
            warnings.warn(f"shard {Path(folder) / entry['file']} is missing or differs from its manifest entry; "
                          "recomputing it", stacklevel=stacklevel)
    return done


def update_manifest(folder: Path, manifest: dict[str, Any], done: dict[int, dict[str, Any]]) -> None:
    """Record the finished shards ``done`` (index -> :func:`shard_entry`) and rewrite the manifest atomically.

    Sets ``shards`` (in index order), ``n_truncated`` (the sum of the entries' counts, 0 for entries
    without one) and ``complete`` (every one of ``n_shards`` is done).
    """
    manifest["shards"] = [done[i] for i in sorted(done)]
    manifest["n_truncated"] = sum(entry.get("n_truncated", 0) for entry in manifest["shards"])
    manifest["complete"] = len(done) == manifest["n_shards"]
    write_manifest(folder, manifest)
