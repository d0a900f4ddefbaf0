"""Collecting every point's ``results.csv`` into one tidy table, and the comparison table built from it."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from gotd.results import RESULT_COLUMNS, write_results
from gotd.runner.grid import Point


def collect_results(points: Sequence[Point], out_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    """Concatenate the ``results.csv`` of the given (completed) points and write ``results.parquet``/``.csv``.

    Adds the columns ``stage`` and ``point`` (the point's name, which is also the stem of its executed
    notebook). Both files are written atomically.

    Returns
    -------
    (pandas.DataFrame, list of str)
        The table, and the problems found (a point's results missing required columns or unreadable).
    """
    frames, problems = [], []
    for point in points:
        path = point.run_dir / "results.csv"
        if not path.is_file():
            continue
        try:
            frame = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            problems.append(f"{point.name}: results.csv is not a readable CSV ({exc})")
            continue
        missing = [c for c in RESULT_COLUMNS if c not in frame.columns]
        if missing:
            problems.append(f"{point.name}: results.csv lacks the columns {', '.join(missing)}")
        frame.insert(0, "point", point.name)
        frame.insert(0, "stage", point.stage.name)
        frames.append(frame)
    if frames:
        table = pd.concat(frames, ignore_index=True, sort=False)
    else:
        table = pd.DataFrame(columns=["stage", "point", *RESULT_COLUMNS])
    for column in RESULT_COLUMNS:
        if column not in table.columns:
            table[column] = pd.NA
    if "value" in table.columns:
        table["value"] = pd.to_numeric(table["value"], errors="coerce")
    for column in ("budget", "seed"):  # rows without a budget (the pool, the base model) make floats of ints
        values = pd.to_numeric(table[column], errors="coerce")
        if values.notna().sum() == table[column].notna().sum() and (values.dropna() % 1 == 0).all():
            table[column] = values.astype("Int64")
    # Mixed-type object columns (e.g. budget given as int by one notebook and "none" by another) would
    # make parquet fail: store those as strings.
    for column in table.columns:
        if table[column].dtype == object and table[column].map(type).nunique() > 1:
            table[column] = table[column].map(lambda v: v if pd.isna(v) else str(v))
    out_dir.mkdir(parents=True, exist_ok=True)
    for suffix in (".parquet", ".csv"):  # the one results writer
        write_results(table, out_dir / f"results{suffix}")
    return table, problems


def comparison_table(results: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation and number of seeds per task x metric x budget x model x method.

    The standard deviation is the sample one (ddof=1) over seeds; NaN with a single seed.
    """
    keys = [c for c in ("task", "metric", "budget", "model", "method") if c in results.columns]
    if results.empty or "value" not in results.columns:
        return pd.DataFrame(columns=[*keys, "mean", "std", "n"])
    frame = results.copy()
    for key in keys:  # groupby drops NaN keys; keep rows such as the base model (method = NaN)
        frame[key] = frame[key].astype(object).where(frame[key].notna(), "-")
    grouped = frame.groupby(keys, sort=True)["value"]
    table = grouped.agg(mean="mean", std="std", n="count").reset_index()
    return table
