"""The ``inputs`` stage: texts by name or path -> chunked pool and packed target frames -> embeddings.

The built-in data by name, a file by path, or the toy corpus for smoke runs; then the text steps every
front door shares: chunk the pool's documents (:func:`prepare_pool`), pack short targets
(:func:`prepare_target`), embed frames with one encoder (:func:`embed_frames`, cached on disk).

``pool="builtin"`` is the built-in candidate pool (:func:`gotd.assets.build_builtin_pool`); a target named like a
built-in task (``"rotten-tomatoes"``) is that task's split; anything else is a file path (read by
:func:`gotd.data.read_texts`, relative paths from the repository root). With ``smoke=True`` the built-in
names are replaced by the templated corpus of :mod:`gotd.toy` (no download, seconds to embed); explicit
files are still read.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gotd.data import chunk_documents, deduplicate, pack_targets, read_texts
from gotd.errors import GotdInputError
from gotd.paths import resolve_path

logger = logging.getLogger("gotd.stages")

BUILTIN_POOL = "builtin"
"""The name of the built-in candidate pool (``"demo"`` before; that name now belongs to ``gotd run demo`` alone)."""
SMOKE_TASK = "toy-film"
SMOKE_POOL_DOCS = 240
SMOKE_TASK_SAMPLES = 80


def default_cache_dir() -> Path:
    """Embedding cache folder: ``$GOTD_CACHE_DIR``, else ``$XDG_CACHE_HOME/gotd`` or ``~/.cache/gotd``."""
    if os.environ.get("GOTD_CACHE_DIR"):
        return Path(os.environ["GOTD_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "gotd" / "embeddings"


def prepare_pool(source: Any, *, text_field: str = "text", chunk_chars: int | None = 1000,
                 dedup: bool = False, drop_empty: bool = False, progress: bool = True) -> pd.DataFrame:
    """Read the candidate pool and split its documents into chunks of at most ``chunk_chars`` characters.

    ``chunk_chars=None`` keeps documents whole. The result keeps ``doc_id`` and the character offsets of
    every chunk, so a selection can be traced back to its source document.

    Exact duplicates are said here, once, in one logged line about the rows the methods select from (the
    chunks): how many, that they are kept, and how to drop them (``dedup``); with ``dedup``, how many
    documents it removed. The reading and the chunking below are told not to say their own counts of the
    same texts. ``attrs``: ``exact_duplicates`` (rows whose exact text is an earlier row's) and, with
    ``dedup``, ``duplicates_removed`` (documents dropped).
    """
    docs = read_texts(source, text_field=text_field, drop_empty=drop_empty, warn_duplicates=False)
    n_docs = len(docs)
    if dedup:
        docs = deduplicate(docs)
    out = docs if chunk_chars is None else chunk_documents(docs, chunk_chars=chunk_chars, progress=progress,
                                                           warn_duplicates=False)
    out = out.reset_index(drop=True)
    if dedup:  # kept through the chunking, for the note and the sidecar
        out.attrs["duplicates_removed"] = docs.attrs["duplicates_removed"]
    note = pool_duplicates_note(out.attrs["exact_duplicates"], len(out), removed=out.attrs.get("duplicates_removed"),
                                n_documents=n_docs, unit="documents" if chunk_chars is None else "chunks")
    if note:
        logger.warning(note)
    return out


def pool_duplicates_note(n_duplicates: int, n_rows: int, *, removed: int | None = None, n_documents: int = 0,
                         unit: str = "chunks") -> str:
    """The one line about a pool's exact duplicates: how many, what was done with them, how to change that.

    Parameters
    ----------
    n_duplicates : int
        Rows whose exact text is an earlier row's (kept).
    n_rows : int
        Rows of the pool the methods select from.
    removed : int, optional
        Documents ``dedup`` dropped before chunking; None when ``dedup`` was not asked for.
    n_documents : int
        Documents read, before ``dedup``.
    unit : str
        What a row is: ``"chunks"`` or ``"documents"``.

    Returns
    -------
    str
        The line, or ``""`` when there is nothing to say (no duplicates and no ``dedup``).
    """
    one = unit.rstrip("s")
    if removed is None:
        if not n_duplicates:
            return ""
        return (f"pool: {n_duplicates:,} of {n_rows:,} {unit} repeat an earlier {one}'s text exactly and are kept "
                "(a method may select both copies); dedup=True (gotd select --dedup) drops duplicate documents "
                "before chunking")
    line = f"pool: dedup dropped {removed:,} of {n_documents:,} documents as duplicates (same text up to whitespace)"
    if n_duplicates:
        line += (f"; {n_duplicates:,} of {n_rows:,} {unit} still repeat an earlier {one}'s text exactly (from "
                 "different documents) and are kept")
    return line


def prepare_target(source: Any, *, text_field: str = "text", chunk_chars: int | None = 1000,
                   drop_empty: bool = False) -> pd.DataFrame:
    """Read the target samples and pack short ones together up to ``chunk_chars`` characters (as the paper).

    ``chunk_chars=None`` keeps one row per sample. Exact duplicate samples are kept and said in one logged
    line (the reading is told not to say them again).
    """
    samples = read_texts(source, text_field=text_field, drop_empty=drop_empty, warn_duplicates=False)
    n_duplicates = samples.attrs["exact_duplicates"]
    if n_duplicates:
        logger.warning(f"target: {n_duplicates:,} of {len(samples):,} texts repeat an earlier text exactly and are "
                       "kept (each copy weighs in the target); drop them from the target (gotd.data.deduplicate) "
                       "to count each once")
    if chunk_chars is None:
        return samples.reset_index(drop=True)
    return pack_targets(samples, chunk_chars=chunk_chars).reset_index(drop=True)


def embed_frames(frames: Sequence[pd.DataFrame], *, encoder: Any, cache_dir: str | os.PathLike[str] | None,
                 progress: bool = True) -> list[np.ndarray]:
    """Embed the ``text`` column of each frame with one encoder (cached on disk when ``cache_dir`` is set)."""
    return [encoder.encode(frame["text"].tolist(), cache_dir=cache_dir, progress=progress) for frame in frames]


def _builtin_tasks() -> set[str]:
    from gotd import assets

    return {name for name, recipe in assets.RECIPES.items() if recipe.kind == "task"}


def is_builtin_task(name: str) -> bool:
    """True when ``name`` is a task in :data:`gotd.assets.RECIPES` (rather than a file path)."""
    return name in _builtin_tasks()


def looks_like_file(name: str) -> bool:
    """True when ``name`` reads as a path (exists, has a folder part or a file suffix) rather than a data set name."""
    return "/" in name or os.sep in name or Path(name).suffix != "" or Path(name).exists()


def task_name(target: str, *, smoke: bool = False) -> str:
    """The name results are filed under: the file's stem, ``toy-film`` in smoke mode, or the task's name."""
    if looks_like_file(target):
        return Path(target).stem
    return SMOKE_TASK if smoke else target


def load_pool(pool: str = BUILTIN_POOL, *, text_field: str = "text", chunk_chars: int | None = 1000,
              data_dir: str | os.PathLike[str] = "data", smoke: bool = False, seed: int = 0,
              dedup: bool = False, drop_empty: bool = False, progress: bool = True) -> pd.DataFrame:
    """The candidate pool, chunked: columns ``id``, ``text``, ``doc_id``, offsets and the source's others.

    ``pool="builtin"`` fetches the built-in pool into ``data_dir`` when missing (or, in smoke mode, uses
    :func:`gotd.toy.toy_text_pool` with ``SMOKE_POOL_DOCS`` documents and ``seed``). ``chunk_chars`` of 0 or
    None keeps documents whole; ``dedup`` drops exact duplicate documents first; ``drop_empty`` drops empty
    texts (reported) instead of stopping.
    """
    if not looks_like_file(pool):
        if pool == "demo":
            raise GotdInputError(f"pool 'demo' is now called '{BUILTIN_POOL}' (the built-in pool); pass "
                                 f"pool='{BUILTIN_POOL}' (--pool {BUILTIN_POOL})")
        if pool != BUILTIN_POOL:
            raise GotdInputError(f"pool {pool!r}: pass '{BUILTIN_POOL}' for the built-in pool or a file path")
        if smoke:
            from gotd.toy import toy_text_pool

            source: object = toy_text_pool(SMOKE_POOL_DOCS, seed=seed)
        else:
            from gotd import assets

            source = assets.build_builtin_pool(data_dir=resolve_path(data_dir), fetch_missing=True)
    else:
        source = _existing_file(pool, "pool")
    return prepare_pool(source, text_field=text_field, chunk_chars=chunk_chars or None, dedup=dedup,
                        drop_empty=drop_empty, progress=progress)


def load_task(target: str, *, split: str | None = "train", text_field: str = "text",
              data_dir: str | os.PathLike[str] = "data", smoke: bool = False, seed: int = 0,
              drop_empty: bool = False, warn_duplicates: bool = True) -> pd.DataFrame:
    """A task's rows (with ``label`` when it has labels), one split or all (``split=None``), unpacked.

    Built-in task names are fetched into ``data_dir`` when missing; in smoke mode any name that is not a
    file path is replaced by :func:`gotd.toy.toy_text_task`. Files are read as they are; ``split`` filters a ``split`` column when the
    file has one and is otherwise ignored for files. ``warn_duplicates`` is :func:`gotd.data.read_texts`'s
    (off in :func:`load_target`, whose :func:`prepare_target` says the count).
    """
    if looks_like_file(target):
        frame = read_texts(_existing_file(target, "target"), text_field=text_field, drop_empty=drop_empty,
                           warn_duplicates=warn_duplicates)
    elif smoke:
        from gotd.toy import toy_text_task

        frame = toy_text_task(SMOKE_TASK_SAMPLES, seed=seed)
    else:
        if not is_builtin_task(target):
            raise GotdInputError(f"target {target!r} is neither a file nor a built-in task; built-in tasks: "
                                 f"{sorted(_builtin_tasks())}")
        from gotd import assets

        assets.fetch(target, data_dir=resolve_path(data_dir))
        frame = assets.load(target, data_dir=resolve_path(data_dir))
        text_field = assets.RECIPES[target].text_field
    if split is not None and "split" in frame.columns:
        if split not in set(frame["split"]):
            raise GotdInputError(f"target {target!r} has no split {split!r}; its splits are "
                                 f"{sorted(set(frame['split']))}")
        frame = frame[frame["split"] == split]
    if text_field != "text" and "text" not in frame.columns:
        frame = frame.rename(columns={text_field: "text"})
    return frame.reset_index(drop=True)


def load_target(target: str, *, split: str | None = "train", text_field: str = "text",
                chunk_chars: int | None = 1000, data_dir: str | os.PathLike[str] = "data", smoke: bool = False,
                seed: int = 0, drop_empty: bool = False) -> pd.DataFrame:
    """The target set for selection: :func:`load_task` packed to ``chunk_chars`` characters (as the paper).

    ``chunk_chars`` of 0 or None keeps one row per sample.
    """
    rows = load_task(target, split=split, text_field=text_field, data_dir=data_dir, smoke=smoke, seed=seed,
                     drop_empty=drop_empty, warn_duplicates=False)
    return prepare_target(rows[["id", "text"]] if "id" in rows.columns else rows[["text"]],
                          chunk_chars=chunk_chars or None)


def smoke_budget(budget: int, n_pool: int, *, smoke: bool) -> int:
    """In smoke mode, ``budget`` lowered to 10% of the toy pool (said in a line); otherwise ``budget`` as given."""
    if smoke and budget > n_pool // 10:
        lowered = max(1, n_pool // 10)
        print(f"smoke mode: budget lowered to {lowered} (10% of the {n_pool} toy chunks)")
        return lowered
    return budget


def _existing_file(path: str, role: str) -> Path:
    resolved = resolve_path(path)
    if not resolved.exists():
        hint = f"'{BUILTIN_POOL}' for the built-in pool" if role == "pool" else "a built-in task name"
        raise GotdInputError(f"{role} {path!r}: no such file ({resolved}); pass an existing file or {hint}")
    return resolved
