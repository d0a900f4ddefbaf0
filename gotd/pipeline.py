"""Moved: the text steps are the ``inputs`` stage (:mod:`gotd.stages.inputs`), selection is the ``select``
stage (:mod:`gotd.stages.select`). This module re-exports the loaders and keeps two calls of the old API,
each a thin composition of the stages.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from gotd.selection import Selection, save_selection
from gotd.stages.inputs import default_cache_dir, embed_frames, prepare_pool, prepare_target
from gotd.stages.select import encoder_for, select_all

__all__ = ["default_cache_dir", "embed_frames", "prepare_pool", "prepare_target", "select_texts", "write_selection"]


def select_texts(pool: pd.DataFrame, target: pd.DataFrame, budget: int, *, method: str = "gotd", seed: int = 0,
                 encoder: Any = None, cache_dir: str | os.PathLike[str] | None = None, progress: bool = True,
                 **method_options: Any) -> tuple[Selection, dict[str, Any]]:
    """One method on prepared frames, no files: :func:`gotd.stages.select_all` after embedding when the method
    reads embeddings. Returns the selection and the encoder settings (empty when no embeddings were read)."""
    from gotd.stages import selector_specs

    settings: dict[str, Any] = {}
    embeddings = None
    if selector_specs([method])[method].inputs == "embeddings":
        encoder = encoder or encoder_for()
        embeddings = tuple(embed_frames([pool, target], encoder=encoder, cache_dir=cache_dir, progress=progress))
        settings = encoder.settings()
    picked = select_all(pool.reset_index(drop=True), target.reset_index(drop=True), methods=[method],
                        budgets=[budget], seed=seed, embeddings=embeddings, options=method_options, progress=progress)
    return picked[(method, int(budget))], settings


def write_selection(selection: Selection, pool: pd.DataFrame, out: str | os.PathLike[str], *,
                    encoder_settings: dict[str, Any], inputs: dict[str, Any]) -> Path:
    """Save the selected records and the JSON sidecar (method, parameters, diagnostics, inputs, versions)."""
    return save_selection(selection, out, records=pool, extra={"encoder": encoder_settings, "inputs": inputs})
