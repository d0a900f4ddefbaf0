"""The text steps of the select stage: read and chunk the pool, pack the target, embed frames.

The stage itself (load, embed once, select with every method, write files) is
:func:`gotd.stages.select_stage`; :func:`select_texts` and :func:`write_selection` remain for callers of
the old API.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gotd.data import chunk_documents, deduplicate, pack_targets, read_texts
from gotd.embed import Encoder
from gotd.selection import Selection, save_selection

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
    """
    docs = read_texts(source, text_field=text_field, drop_empty=drop_empty)
    if dedup:
        docs = deduplicate(docs)
    out = docs if chunk_chars is None else chunk_documents(docs, chunk_chars=chunk_chars, progress=progress)
    out = out.reset_index(drop=True)
    if dedup:  # kept through the chunking, for the note and the sidecar
        out.attrs["duplicates_removed"] = docs.attrs["duplicates_removed"]
    return out


def prepare_target(source: Any, *, text_field: str = "text", chunk_chars: int | None = 1000,
                   drop_empty: bool = False) -> pd.DataFrame:
    """Read the target samples and pack short ones together up to ``chunk_chars`` characters (as the paper).

    ``chunk_chars=None`` keeps one row per sample.
    """
    samples = read_texts(source, text_field=text_field, drop_empty=drop_empty)
    if chunk_chars is None:
        return samples.reset_index(drop=True)
    return pack_targets(samples, chunk_chars=chunk_chars).reset_index(drop=True)


def embed_frames(frames: Sequence[pd.DataFrame], *, encoder: Encoder, cache_dir: str | os.PathLike[str] | None,
                 progress: bool = True) -> list[np.ndarray]:
    """Embed the ``text`` column of each frame with one encoder (cached on disk when ``cache_dir`` is set)."""
    return [encoder.encode(frame["text"].tolist(), cache_dir=cache_dir, progress=progress) for frame in frames]


def select_texts(
    pool: pd.DataFrame,
    target: pd.DataFrame,
    budget: int,
    *,
    method: str = "gotd",
    seed: int = 0,
    encoder: Encoder | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    **method_options: Any,
) -> tuple[Selection, dict[str, Any]]:
    """Run one selector on prepared pool and target frames, without writing files.

    Kept for callers of the old API; the select stage (:func:`gotd.stages.select_stage`) does the same and
    writes the selection. What the method reads (embeddings, texts, nothing) comes from the selector
    registry. Returns the selection and the encoder settings (empty for the methods that read no
    embeddings).
    """
    from gotd.stages._registry import selector_specs
    from gotd.stages._select import SelectResult, _run_one

    spec = selector_specs([method])[method]
    result = SelectResult(pool=pool.reset_index(drop=True), target=target.reset_index(drop=True))
    if spec.inputs == "embeddings":
        encoder = encoder or Encoder()
        result.embeddings = tuple(embed_frames([pool, target], encoder=encoder, cache_dir=cache_dir,
                                               progress=progress))  # type: ignore[assignment]
        result.encoder_settings = encoder.settings()
    return _run_one(spec, result, budget, seed, progress, method_options, {}), result.encoder_settings


def write_selection(selection: Selection, pool: pd.DataFrame, out: str | os.PathLike[str], *,
                    encoder_settings: dict[str, Any], inputs: dict[str, Any]) -> Path:
    """Save the selected records and the JSON sidecar (method, parameters, diagnostics, inputs, versions)."""
    return save_selection(selection, out, records=pool, extra={"encoder": encoder_settings, "inputs": inputs})
