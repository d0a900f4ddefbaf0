"""The record of one data selection, and how it is written to and read from disk.

A :class:`Selection` holds the ranked row indices a selector chose from a pool, each row's score, and
everything needed to reproduce it (method, parameters, seed, solver diagnostics). Budgets are nested:
``selection.top(k)`` is the first ``k`` rows of one ranking.

On disk a selection is two files written atomically: the selected rows (``.jsonl``, ``.parquet`` or
``.csv``, chosen by the suffix) and a JSON sidecar next to it named ``<file name>.json``, e.g.
``selected.jsonl`` and ``selected.jsonl.json``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gotd._io import atomic_path, file_sha256, provenance, write_json_atomic
from gotd.data import texts_fingerprint
from gotd.errors import GotdInputError

SCORE_ORDERS = ("lower_is_better", "higher_is_better")
"""How a selector's scores relate to its preference; the ranking itself is ``Selection.indices``."""

SELECTION_FORMATS = (".jsonl", ".parquet", ".csv")
"""File suffixes :func:`save_selection` can write."""

SIDECAR_SUFFIX = ".json"
"""The metadata sidecar of ``selected.jsonl`` is ``selected.jsonl.json``."""

_FORMAT_VERSION = 1
_LEADING_COLUMNS = ("rank", "index")
_RECORD_LEADING_COLUMNS = ("id", "text")
_RESERVED_COLUMNS = ("rank", "index", "score")


@dataclass
class Selection:
    """Ranked candidate rows chosen by a selector, with their scores and how they were chosen.

    Attributes
    ----------
    indices : numpy.ndarray of int64, shape (k,)
        Row indices into the pool, best first, without repeats.
    scores : numpy.ndarray of float64, shape (k,)
        The selector's score of each selected row, in rank order. Whether lower or higher scores are
        preferred is ``score_order``; for sampling selectors (``dsir`` with Gumbel noise) the rank is
        not sorted by score.
    method : str
        Name of the selector (a key of ``gotd.selectors.SELECTORS``).
    params : dict
        Every parameter the selector used, defaults included, with ``budget`` and ``seed``.
    diagnostics : dict
        What the run measured, e.g. the OT solve's eps, iterations and marginal error.
    seed : int
        Seed of the run (recorded even for deterministic selectors).
    all_scores : numpy.ndarray of float64, shape (n,), optional
        Score of every pool row (None when the selector does not score every row, e.g. ``random``).
    score_name : str
        What the score is, e.g. ``"calibrated_gradient"``.
    score_order : {"lower_is_better", "higher_is_better"}
    n_pool : int, optional
        Number of pool rows; taken from ``all_scores`` when not given.
    """

    indices: np.ndarray
    scores: np.ndarray
    method: str
    params: dict[str, Any]
    diagnostics: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    all_scores: np.ndarray | None = None
    score_name: str = "score"
    score_order: str = "lower_is_better"
    n_pool: int | None = None

    def __post_init__(self) -> None:
        self.indices = np.asarray(self.indices, dtype=np.int64).reshape(-1)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        if self.scores.shape != self.indices.shape:
            raise GotdInputError(f"Selection: {self.indices.size} indices but {self.scores.size} scores; "
                                 "give one score per selected row")
        if self.all_scores is not None:
            self.all_scores = np.asarray(self.all_scores, dtype=np.float64).reshape(-1)
            if self.n_pool is None:
                self.n_pool = int(self.all_scores.size)
            elif self.all_scores.size != self.n_pool:
                raise GotdInputError(f"Selection: all_scores has {self.all_scores.size} entries but n_pool is "
                                     f"{self.n_pool}; give one score per pool row")
        if self.score_order not in SCORE_ORDERS:
            raise GotdInputError(f"Selection: score_order must be one of {SCORE_ORDERS}, got {self.score_order!r}")
        if np.unique(self.indices).size != self.indices.size:
            raise GotdInputError("Selection: indices repeat a row; a selection picks each pool row at most once")
        if self.indices.size and self.indices.min() < 0:
            raise GotdInputError("Selection: indices must be >= 0 (row positions in the pool)")
        if self.n_pool is not None and self.indices.size and self.indices.max() >= self.n_pool:
            raise GotdInputError(f"Selection: index {int(self.indices.max())} is outside a pool of {self.n_pool} rows")

    @property
    def budget(self) -> int:
        """Number of selected rows."""
        return int(self.indices.size)

    def top(self, k: int) -> Selection:
        """The best ``k`` rows of this selection: a prefix of the same ranking (budgets are nested).

        The returned selection shares method, diagnostics, seed and ``all_scores``; ``params["budget"]``
        is ``k``.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= self.budget:
            raise GotdInputError(f"top(k): k must be an int in [1, {self.budget}] (the selection's size), got {k!r}; "
                                 "run the selector with a larger budget to get more rows")
        k = int(k)
        return replace(self, indices=self.indices[:k].copy(), scores=self.scores[:k].copy(),
                       params={**self.params, "budget": k})

    def to_frame(self, records: pd.DataFrame | None = None) -> pd.DataFrame:
        """The selected rows as a table: ``rank`` (1-based), ``index``, ``score``, plus record columns.

        Parameters
        ----------
        records : pandas.DataFrame, optional
            The pool's records, row-aligned with the pool array (row i of ``records`` is pool row i).
            Its columns are added for the selected rows, ``id`` and ``text`` first, the rest after
            ``score``.

        Returns
        -------
        pandas.DataFrame
            Columns ``rank, index, [id, text,] score, [other record columns]``, one row per selected row
            in rank order.
        """
        frame = pd.DataFrame({"rank": np.arange(1, self.budget + 1, dtype=np.int64), "index": self.indices})
        if records is None:
            frame["score"] = self.scores
            return frame
        picked = self._picked_records(records)
        leading = [c for c in _RECORD_LEADING_COLUMNS if c in picked.columns]
        trailing = [c for c in picked.columns if c not in leading]
        for column in leading:
            frame[column] = picked[column].to_numpy()
        frame["score"] = self.scores
        for column in trailing:
            frame[column] = picked[column].to_numpy()
        return frame

    def _picked_records(self, records: pd.DataFrame) -> pd.DataFrame:
        if not isinstance(records, pd.DataFrame):
            raise GotdInputError("records must be a pandas DataFrame row-aligned with the pool, "
                                 f"got {type(records).__name__}")
        if self.n_pool is not None and len(records) != self.n_pool:
            raise GotdInputError(f"records has {len(records)} rows but the pool had {self.n_pool}; pass the pool's own "
                                 "records, row-aligned with the embeddings the selector saw")
        if self.indices.size and self.indices.max() >= len(records):
            raise GotdInputError(f"records has {len(records)} rows but the selection uses row "
                                 f"{int(self.indices.max())}; pass the pool's own records")
        clash = [c for c in _RESERVED_COLUMNS if c in records.columns]
        if clash:
            raise GotdInputError(f"records has column(s) {clash}, which the selection table uses itself; rename them "
                                 "(e.g. records.rename(columns={'score': 'source_score'}))")
        return records.iloc[self.indices].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------
# saving and loading
# ---------------------------------------------------------------------------------------------------


def sidecar_path(path: str | Path) -> Path:
    """Path of the metadata sidecar of a selection file: ``<path>.json``."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def save_selection(selection: Selection, path: str | Path, *, records: pd.DataFrame | None = None,
                   extra: dict[str, Any] | None = None) -> Path:
    """Write the selected rows to ``path`` and their metadata to the sidecar ``<path>.json``, atomically.

    Parameters
    ----------
    selection : Selection
    path : str or Path
        Output file; its suffix picks the format: ``.jsonl``, ``.parquet`` or ``.csv``.
    records : pandas.DataFrame, optional
        The pool's records (row-aligned with the pool array); their columns (``id``, ``text``,
        ``doc_id``, ``domain``...) are written for each selected row, and the sidecar gets a fingerprint
        of the whole pool's ``text`` column (:func:`texts_fingerprint`).
    extra : dict, optional
        More metadata for the sidecar, e.g. the encoder settings.

    Returns
    -------
    Path
        ``path``. The sidecar holds: format_version, data_file, data_sha256, columns, method, params,
        diagnostics, seed, score_name, score_order, n_pool, budget, pool_fingerprint (None without
        records or without a ``text`` column), provenance and extra.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SELECTION_FORMATS:
        raise GotdInputError(f"{path}: unknown selection format {suffix!r}; use one of {', '.join(SELECTION_FORMATS)}")
    frame = selection.to_frame(records)
    fingerprint = None
    if records is not None and "text" in records.columns:
        fingerprint = texts_fingerprint(records["text"].tolist())
    # The sidecar is written before the data file is renamed into place: a selection file always has its
    # sidecar next to it, which proves gotd wrote it (gotd.outputs.check_output replaces nothing else).
    with atomic_path(path) as tmp:
        _write_frame(frame, tmp, suffix)
        _write_sidecar(path, frame, tmp, selection, fingerprint, None if records is None else len(records), extra)
    return path


def _write_sidecar(path: Path, frame: pd.DataFrame, data: Path, selection: Selection, fingerprint: str | None,
                   n_records: int | None, extra: dict[str, Any] | None) -> None:
    """The sidecar ``<path>.json`` of the selection whose data file is (still) at ``data``."""
    meta = {
        "format_version": _FORMAT_VERSION,
        "data_file": path.name,
        "data_sha256": file_sha256(data),
        "columns": list(frame.columns),
        "method": selection.method,
        "params": selection.params,
        "diagnostics": selection.diagnostics,
        "seed": selection.seed,
        "score_name": selection.score_name,
        "score_order": selection.score_order,
        "n_pool": selection.n_pool if selection.n_pool is not None else n_records,
        "budget": selection.budget,
        "pool_fingerprint": fingerprint,
        "provenance": provenance(device=_device_of(selection.diagnostics)),
        "extra": extra or {},
    }
    write_json_atomic(sidecar_path(path), meta)


def load_selection(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a selection written by :func:`save_selection`: the rows table and the sidecar metadata.

    CSV files lose column types (ids that look like numbers come back as numbers); use ``.jsonl`` or
    ``.parquet`` to keep them.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SELECTION_FORMATS:
        raise GotdInputError(f"{path}: unknown selection format {suffix!r}; use one of {', '.join(SELECTION_FORMATS)}")
    if not path.exists():
        raise GotdInputError(f"{path}: no such selection file; check the path or run the selection first")
    meta_path = sidecar_path(path)
    if not meta_path.exists():
        raise GotdInputError(f"{meta_path}: the metadata sidecar of {path.name} is missing; save selections with "
                             "gotd.selection.save_selection, which writes both")
    frame = _read_frame(path, suffix)
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    return frame, meta


def _write_frame(frame: pd.DataFrame, path: Path, suffix: str) -> None:
    if suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        # json per row keeps full float precision and non-ASCII text as is (pandas' to_json rounds floats).
        with open(path, "w", encoding="utf-8") as fh:
            for row in frame.to_dict(orient="records"):
                fh.write(json.dumps({k: _plain(v) for k, v in row.items()}, ensure_ascii=False) + "\n")


def _read_frame(path: Path, suffix: str) -> pd.DataFrame:
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix == ".csv":
        # Keep texts such as "NA" or "null" as strings.
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    with open(path, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return pd.DataFrame(rows)


def _plain(value: Any) -> Any:
    """A JSON-native Python value: numpy scalars to Python, NaN to None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _device_of(diagnostics: dict[str, Any]) -> str | None:
    device = diagnostics.get("device") if isinstance(diagnostics, dict) else None
    return str(device) if device is not None else None
