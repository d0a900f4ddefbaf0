"""Writing a table of texts atomically to JSON lines, parquet or CSV."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gotd._io import atomic_path
from gotd.data._validate import _is_null
from gotd.errors import GotdInputError

WRITABLE_SUFFIXES = (".jsonl", ".parquet", ".csv")


def write_texts(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``df`` to ``.jsonl``, ``.parquet`` or ``.csv`` (by suffix) atomically; return the path.

    List columns (such as ``source_ids``) survive JSON lines and parquet; CSV cannot hold them and
    is refused for such frames rather than writing Python reprs.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITABLE_SUFFIXES:
        raise GotdInputError(f"{path.name}: cannot write '{suffix}' files; "
                             f"use one of {', '.join(WRITABLE_SUFFIXES)}")
    frame = df.reset_index(drop=True)
    frame.attrs = {}  # parquet stores attrs as JSON metadata; they are run state, not data
    if suffix == ".csv":
        nested = [c for c in frame.columns
                  if any(isinstance(v, (list, tuple, dict, np.ndarray)) for v in frame[c])]
        if nested:
            raise GotdInputError(f"{path.name}: columns {nested} hold lists or objects, which CSV "
                                 "cannot store; write .jsonl or .parquet instead")
    with atomic_path(path) as tmp:
        if suffix == ".jsonl":
            with open(tmp, "w", encoding="utf-8") as fh:
                for record in frame.to_dict(orient="records"):
                    fh.write(json.dumps({k: _plain(v) for k, v in record.items()},
                                        ensure_ascii=False, allow_nan=False) + "\n")
        elif suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
    return path


def _plain(value: Any) -> Any:
    """A JSON-ready version of one cell: numpy to Python, NaN to null."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        value = value.item()
    if _is_null(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value
