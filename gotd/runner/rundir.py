"""What a notebook writes into its run folder, in the layout ``gotd run`` collects.

A run folder holds::

    results.csv            tidy results: one row per notebook x task x method x budget x seed x model x metric,
                           in the schema of :mod:`gotd.results` (the one ``gotd evaluate`` writes too)
    figures/<name>.png     figures
    selections/<m>.jsonl   selections (+ the JSON sidecar ``<m>.jsonl.json``)
    models/<name>/         checkpoints
    run.json               the notebook's parameters, versions and machine

Paths given to a notebook may be relative: :func:`gotd.paths.resolve_path` resolves them. Every notebook
records its parameters the same way, with :func:`declared_parameters`: the names its ``parameters`` cell
declares, at their current values::

    run = RunDir(run_dir, NOTEBOOK, declared_parameters(NOTEBOOK, globals()))
"""
from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from gotd._io import atomic_path, provenance, write_json_atomic
from gotd.errors import GotdInputError
from gotd.outputs import check_output
from gotd.paths import resolve_path
from gotd.results import MEASURE_COLUMNS, RESULT_COLUMNS, write_results
from gotd.runner.config import kit_notebook_dir
from gotd.runner.execute import notebook_parameters

NOT_RECORDED = ("run_dir",)
"""Declared parameters :func:`declared_parameters` never records: ``run_dir`` is the folder the record is in."""


def notebook_file(notebook: str | os.PathLike[str]) -> Path:
    """The ``.ipynb`` file of a notebook given by name (``"01_select"``) or by path.

    A path (it has a folder or the ``.ipynb`` suffix) is taken as it is, relative to the working directory.
    A name is looked up in the working directory first (a Jupyter kernel starts in its notebook's folder,
    and so does papermill when given ``cwd``), then in the kit's ``notebooks/`` folder (where ``gotd run``
    finds it whatever the working directory).

    Raises
    ------
    GotdInputError
        If no such notebook file exists, naming where it looked.
    """
    given = Path(notebook).expanduser()
    if given.suffix == ".ipynb" or len(given.parts) > 1:
        candidates = [given if given.suffix == ".ipynb" else given.with_suffix(".ipynb")]
    else:
        candidates = [Path.cwd() / f"{given}.ipynb", kit_notebook_dir() / f"{given}.ipynb"]
    for path in candidates:
        if path.is_file():
            return path
    raise GotdInputError(f"notebook {notebook!s} not found (looked for {' and '.join(map(str, candidates))}); pass "
                         "the notebook's path, e.g. declared_parameters('path/to/notebook.ipynb', globals())")


def declared_parameters(notebook: str | os.PathLike[str], namespace: Mapping[str, Any], *,
                        leave_out: Iterable[str] = (), **values: Any) -> dict[str, Any]:
    """The current values of the names a notebook's ``parameters`` cell declares: what its run records.

    The names come from the notebook file's cell tagged ``parameters``, read as papermill reads it
    (:func:`gotd.runner.execute.notebook_parameters`); the values from ``namespace`` (the notebook's
    ``globals()``), so a value papermill injected, one typed into the cell in JupyterLab, or one the
    notebook changed before the call (smoke sizes) is the one recorded. ``run_dir`` is never recorded
    (:data:`NOT_RECORDED`). A name added to the cell in JupyterLab counts once the notebook is saved.

    Parameters
    ----------
    notebook : str or path
        The notebook's name (``"01_select"``) or its ``.ipynb`` path (:func:`notebook_file`).
    namespace : mapping
        The notebook's ``globals()``.
    leave_out : iterable of str
        Declared names not to record (names that only say where files go or how many threads to use).
    **values
        Values recorded instead of the namespace's (e.g. the model actually trained) or after the declared
        ones (e.g. the resolved training config).

    Returns
    -------
    dict
        Name -> value, in the cell's order, then the new names of ``values``.

    Raises
    ------
    GotdInputError
        If the notebook cannot be found or read, or a declared name is not in ``namespace`` (run the
        parameters cell first).
    """
    path = notebook_file(notebook)
    skipped = set(NOT_RECORDED) | set(leave_out)
    names = [name for name in notebook_parameters(path) if name not in skipped]
    missing = [name for name in names if name not in namespace and name not in values]
    if missing:
        raise GotdInputError(f"the parameters cell of {path.name} declares {', '.join(missing)}, which the "
                             "namespace given lacks; run the parameters cell first and pass the notebook's globals()")
    recorded = {name: values[name] if name in values else namespace[name] for name in names}
    return {**recorded, **{name: value for name, value in values.items() if name not in recorded}}


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
