"""The one results schema: every table gotd writes (``gotd evaluate``, a notebook's ``results.csv``, the
runner's collected table) has these columns first, so any two can be joined.

``notebook``
    the notebook that wrote the row (``03_evaluate``...); empty for ``gotd evaluate``;
``task``
    what was measured on (a task or data set name);
``method``
    the selection method the evaluated model was warmed up on, ``base`` for the model before warm-up;
``budget``
    the selection budget (empty where there is none);
``seed``
    the seed of the random part (bootstrap, sampling, fine-tuning, selection); empty on rows that
    aggregate over seeds;
``model``
    the model: for evaluation rows the base model's label (the warmed-up folder is in ``checkpoint``);
``metric``, ``value``
    the measurement, its name saying which evaluation made it (``zero_shot_accuracy``, ``perplexity``,
    ``finetune_accuracy_seed_mean``...; see :data:`gotd.evaluate.METRICS`).

Then, where measured, :data:`MEASURE_COLUMNS`: ``n`` (items evaluated) and ``ci_low``/``ci_high`` (a
percentile bootstrap interval over the items). Any further columns follow.

:data:`JOIN_KEYS` identify one measurement: a ``gotd evaluate`` file and a run's ``results.csv`` of the
same model, task and seed join on them row for row.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gotd._io import atomic_path
from gotd.errors import GotdInputError

__all__ = ["JOIN_KEYS", "MEASURE_COLUMNS", "RESULT_COLUMNS", "join_results", "read_results", "result_table",
           "write_results"]

RESULT_COLUMNS = ("notebook", "task", "method", "budget", "seed", "model", "metric", "value")
"""Columns every results table has, in this order (more may follow)."""

MEASURE_COLUMNS = ("n", "ci_low", "ci_high")
"""Columns that follow :data:`RESULT_COLUMNS` in evaluation tables: items evaluated and the interval."""

JOIN_KEYS = ("task", "method", "model", "seed", "metric")
"""What identifies one measurement across results files."""

_INTEGER_COLUMNS = ("budget", "seed", "n")
_FLOAT_COLUMNS = ("value", "ci_low", "ci_high")
_TEXT_COLUMNS = ("notebook", "task", "method", "model", "metric")


def _as_integers(values: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    whole = numbers.dropna()
    if numbers.notna().sum() != values.notna().sum() or not (whole % 1 == 0).all():
        return values  # not integers (e.g. a budget written as text): leave as they are
    return numbers.astype("Int64")


def result_table(rows: Iterable[Mapping[str, Any]] | pd.DataFrame, *, measures: bool = True) -> pd.DataFrame:
    """Rows as a results table: :data:`RESULT_COLUMNS` (and :data:`MEASURE_COLUMNS`) first, in order.

    Missing schema columns are added empty; ``budget``, ``seed`` and ``n`` become nullable integers,
    ``value`` and the interval float64.

    Parameters
    ----------
    rows : iterable of mappings or DataFrame
    measures : bool
        Also put :data:`MEASURE_COLUMNS` right after the schema (evaluation tables).
    """
    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    columns = list(RESULT_COLUMNS) + (list(MEASURE_COLUMNS) if measures else [])
    for column in columns:
        if column not in frame.columns:
            frame[column] = np.nan if column in _FLOAT_COLUMNS else None
    for column in _INTEGER_COLUMNS:
        if column in frame.columns:
            frame[column] = _as_integers(frame[column])
    for column in _FLOAT_COLUMNS:
        if column in frame.columns:
            frame[column] = frame[column].astype("float64")
    for column in _TEXT_COLUMNS:
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    extra = [c for c in frame.columns if c not in columns]
    return frame[columns + extra].reset_index(drop=True)


def write_results(results: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a results table to ``.parquet`` or ``.csv`` (by suffix) atomically; return the path.

    Raises
    ------
    GotdInputError
        A table without the :data:`RESULT_COLUMNS`, or another suffix.
    """
    path = Path(path)
    missing = [c for c in RESULT_COLUMNS if c not in results.columns]
    if missing:
        raise GotdInputError(f"results table lacks column(s) {missing}; build it with gotd.results.result_table")
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise GotdInputError(f"results file {path} must end in .parquet or .csv")
    with atomic_path(path) as tmp:
        if suffix == ".parquet":
            results.to_parquet(tmp, index=False)
        else:
            results.to_csv(tmp, index=False)
    return path


def read_results(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a table written by :func:`write_results` (or a run's ``results.csv``), schema types restored."""
    path = Path(path)
    if not path.is_file():
        raise GotdInputError(f"results file {path} does not exist")
    frame = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
    missing = [c for c in RESULT_COLUMNS if c not in frame.columns]
    if missing:
        raise GotdInputError(f"{path} lacks the result column(s) {missing}; it was not written by gotd")
    return result_table(frame, measures=all(c in frame.columns for c in MEASURE_COLUMNS))


def join_results(left: pd.DataFrame, right: pd.DataFrame, *, on: tuple[str, ...] = JOIN_KEYS,
                 suffixes: tuple[str, str] = ("_left", "_right")) -> pd.DataFrame:
    """Inner join of two results tables on :data:`JOIN_KEYS` (rows aggregating over seeds match each other).

    Raises
    ------
    GotdInputError
        A key repeats within one table (the join would multiply rows).
    """
    frames = []
    for frame in (left, right):
        frame = frame.copy()
        for key in on:  # missing keys (a seed mean) must compare equal; 0 and 0.0 are one seed
            column = _as_integers(frame[key]) if key in _INTEGER_COLUMNS else frame[key]
            frame[key] = column.astype(object).where(column.notna(), "-").astype(str)
        repeated = frame.duplicated(list(on))
        if repeated.any():
            raise GotdInputError(f"{int(repeated.sum())} rows repeat the keys {list(on)}; e.g. "
                                 f"{frame.loc[repeated, list(on)].iloc[0].to_dict()}")
        frames.append(frame)
    return frames[0].merge(frames[1], on=list(on), suffixes=suffixes, validate="one_to_one")
