"""What a notebook writes into its run folder, in the layout ``gotd run`` collects.

A run folder holds::

    results.csv            tidy results: one row per notebook x task x method x budget x seed x model x metric,
                           in the schema of :mod:`gotd.results` (the one ``gotd evaluate`` writes too)
    figures/<name>.png     figures
    selections/<m>.jsonl   selections (+ the JSON sidecar ``<m>.jsonl.json``)
    models/<name>/         checkpoints
    run.json               the notebook's parameters, versions and machine

Paths given to a notebook may be relative: :func:`gotd.paths.resolve_path` resolves them.
"""
from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from gotd._io import atomic_path, provenance, write_json_atomic
from gotd.errors import GotdInputError
from gotd.outputs import check_output
from gotd.paths import resolve_path
from gotd.results import MEASURE_COLUMNS, RESULT_COLUMNS, write_results


class RunDir:
    """The run folder of one notebook execution, and its results table.

    Parameters
    ----------
    path : str or Path
        The folder (created with ``figures/``, ``selections/`` and ``models/``); relative paths are
        resolved by :func:`resolve_path`.
    notebook : str
        The notebook's name, written in the ``notebook`` column of every result row.
    parameters : mapping, optional
        The notebook's parameters; written to ``run.json`` with :func:`gotd._io.provenance`.
    """

    def __init__(self, path: str | os.PathLike[str], notebook: str, parameters: Mapping[str, Any] | None = None,
                 *, device: str | None = None) -> None:
        self.path = check_output(resolve_path(path), flag="run_dir", folder=True)  # not a data set, writable
        self.notebook = notebook
        for sub in ("figures", "selections", "models"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        self._rows: list[dict[str, Any]] = []
        self.parameters = dict(parameters or {})
        write_json_atomic(self.path / "run.json", {"notebook": notebook, "parameters": self.parameters,
                                                    "provenance": provenance(device=device)})

    @property
    def figures(self) -> Path:
        return self.path / "figures"

    @property
    def selections(self) -> Path:
        return self.path / "selections"

    @property
    def models(self) -> Path:
        return self.path / "models"

    def selection_path(self, method: str) -> Path:
        """``selections/<method>.jsonl``."""
        return self.selections / f"{method}.jsonl"

    def save_figure(self, fig: Any, name: str, *, dpi: int = 120) -> Path:
        """Write a matplotlib figure to ``figures/<name>.png`` atomically and return the path."""
        if not name or "/" in name or name.startswith("."):
            raise GotdInputError(f"figure name {name!r} must be a plain file stem such as 'score_distributions'")
        out = self.figures / f"{name}.png"
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
        return out

    def add_result(self, *, task: str, method: str, budget: int | None, seed: int | None, model: str,
                   metric: str, value: float, **extra: Any) -> None:
        """Add one tidy result row (extra keyword arguments become extra columns)."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise GotdInputError(f"result {metric!r} of {method!r}: value must be a finite number, got {value!r}; "
                                 "leave out metrics that were not measured")
        self._rows.append({"notebook": self.notebook, "task": task, "method": method, "budget": budget,
                           "seed": seed, "model": model, "metric": metric, "value": float(value), **extra})

    def add_results(self, frame: pd.DataFrame, *, metric_columns: list[str], **fixed: Any) -> None:
        """Add one row per (frame row, metric column): ``metric`` is the column name, ``value`` its value.

        ``fixed`` gives the columns the frame lacks (e.g. ``task=``, ``model=``); a column present in both
        comes from the frame.
        """
        for record in frame.to_dict(orient="records"):
            base = {**fixed, **{k: v for k, v in record.items() if k not in metric_columns}}
            for metric in metric_columns:
                row = {k: base.get(k) for k in ("task", "method", "budget", "seed", "model")}
                extra = {k: v for k, v in base.items() if k not in row}
                self.add_result(**row, metric=metric, value=float(record[metric]), **extra)

    def results_frame(self) -> pd.DataFrame:
        """The rows added so far, :data:`RESULT_COLUMNS` first, then the measure columns (``n``,
        ``ci_low``, ``ci_high``) where there are any, then the rest in the order they came."""
        frame = pd.DataFrame(self._rows)
        if frame.empty:
            return pd.DataFrame(columns=list(RESULT_COLUMNS))
        measures = [c for c in MEASURE_COLUMNS if c in frame.columns]
        extra = [c for c in frame.columns if c not in RESULT_COLUMNS and c not in measures]
        return frame[list(RESULT_COLUMNS) + measures + extra]

    def write_results(self) -> Path:
        """Write ``results.csv`` atomically (all rows added so far) and return its path."""
        frame = self.results_frame()
        if frame.empty:
            raise GotdInputError("no results to write; add rows with add_result() first")
        return write_results(frame, self.path / "results.csv")

    def write_json(self, name: str, obj: Any) -> Path:
        """Write ``<name>.json`` in the run folder atomically."""
        return write_json_atomic(self.path / f"{name}.json", obj)
