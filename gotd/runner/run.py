"""``gotd run``: execute the notebooks over a parameter grid with papermill, collect the results, report.

A run configuration (YAML; schema in :mod:`gotd.runner.config`) lists stages, one notebook each, and the
grid axes each stage varies over. :func:`run_config` expands the grid into points, checks every point's
parameters against the notebook's ``parameters`` cell before anything runs, then executes the points in
dependency order, one after another or ``jobs`` at once (:mod:`gotd.runner.schedule`)::

    reports/<run>/
      <notebook>-<axis>=<value>-....ipynb   executed notebook (also when it failed: papermill's error banner)
      <notebook>-<axis>=<value>-....html    the same without code (nbconvert --no-input)
      <notebook>-<axis>=<value>-.../        the point's run_dir: results.csv, figures/, selections/, models/
                                            and .gotd-done.json once the notebook ran to the end
      logs/<point>.log                      the kernel's stdout and stderr
      results.parquet, results.csv          every point's results.csv in one tidy table
      figures/                              the standard figures drawn from that table (gotd.plots)
      index.html                            the summary: comparison table, figures, links, failures, provenance
      run.json                              status, seconds and error of every point, config, versions

A point whose completion marker matches its parameters and notebook code is skipped (resume after an
interruption by running the same command again); a point whose upstream point ran again runs again. A
failing point is recorded with its notebook, cell index and error; the points that depend on it are
blocked, the others go on unless ``fail_fast``.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from gotd._io import provenance, write_json_atomic
from gotd.errors import GotdInputError
from gotd.runner.collect import collect_results, comparison_table
from gotd.stages import PARAMETER_CHECKS
from gotd.runner.config import RunConfig, builtin_config_descriptions, builtin_config_names, load_config
from gotd.runner.execute import (PointResult, check_kernel, check_parameters, ensure_kernel, execute_point, is_done,
                                 notebook_fingerprint, notebook_parameters)
from gotd.runner.grid import Point, expand_points
from gotd.outputs import check_output
from gotd.runner.lock import LOCK_FILE, run_lock
from gotd.runner.schedule import run_points
from gotd.runner.report import render_html, standard_figures, write_index

__all__ = ["RunSummary", "builtin_config_descriptions", "builtin_config_names", "load_config", "plan_run",
           "run_config"]


@dataclass
class RunSummary:
    """The outcome of :func:`run_config`."""

    run_root: Path
    points: list[Point]
    results: dict[str, PointResult] = field(default_factory=dict)
    table: pd.DataFrame | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[PointResult]:
        """Points that failed or were blocked by a failed dependency (or not run after --fail-fast)."""
        return [r for r in self.results.values() if r.status not in ("done", "skipped")]

    @property
    def ok(self) -> bool:
        """True when every point is done (now or in an earlier run)."""
        return len(self.points) == sum(r.status in ("done", "skipped") for r in self.results.values())

    @property
    def index(self) -> Path:
        """The summary page."""
        return self.run_root / "index.html"


def plan_run(config: RunConfig, reports_dir: str | os.PathLike[str] = "reports") -> list[Point]:
    """Expand the grid and check every point's parameters against its notebook; run nothing.

    Raises
    ------
    GotdInputError
        If a notebook is missing, lacks a ``parameters`` cell or a ``run_dir`` parameter, a point passes
        a parameter the notebook does not declare (or of the wrong annotated type), or the stage's own
        checks (:data:`gotd.stages.PARAMETER_CHECKS`) refuse a value.
    """
    points = expand_points(config, Path(reports_dir) / config.name)
    declared: dict[str, dict[str, Any]] = {}
    for stage in config.stages:
        declared[stage.name] = notebook_parameters(stage.notebook)
        if "run_dir" not in declared[stage.name]:
            raise GotdInputError(f"stage {stage.name}: notebook {stage.notebook.name} has no run_dir parameter; "
                                 "every notebook run by gotd run takes run_dir: str (see notebooks/README.md)")
    for point in points:
        check_parameters(point, declared[point.stage.name])
        stage_check = PARAMETER_CHECKS.get(point.stage.notebook.stem)
        if stage_check is not None:  # the stage's own checks (budget >= 1, known methods...), before any run
            try:
                stage_check(point.parameters)
            except GotdInputError as exc:
                raise GotdInputError(f"stage {point.stage.name} ({point.name}): {exc}; fix the config or --set"
                                     ) from None
    return points


def run_config(
    config: RunConfig,
    *,
    reports_dir: str | os.PathLike[str] = "reports",
    fail_fast: bool = False,
    force: bool = False,
    html: bool = True,
    progress: bool = True,
    stream_output: bool = True,
    kernel_name: str | None = None,
    jobs: int | None = None,
) -> RunSummary:
    """Execute every point of the run, then collect the results and write the report.

    Parameters
    ----------
    config : RunConfig
        From :func:`load_config`.
    reports_dir : path
        The run goes to ``<reports_dir>/<config.name>/``.
    fail_fast : bool
        Stop at the first failing point (the others are reported as not run).
    force : bool
        Run every point again, ignoring completion markers.
    html : bool
        Render executed notebooks to HTML (without code).
    progress : bool
        A progress bar over points, and papermill's bar over each notebook's cells.
    stream_output : bool
        Copy each notebook's stderr (its own progress bars, warnings) to this process's stderr while it runs;
        it is always kept in ``logs/<point>.log``.
    kernel_name : str, optional
        Jupyter kernel; default: ``python3`` when it runs this interpreter (see :func:`ensure_kernel`).
    jobs : int, optional
        Points run at once, in dependency order (:mod:`gotd.runner.schedule`); default: the config's ``jobs``
        (1 when it names none). With more than one, each point runs in a worker process whose kernels get
        an equal share of the CPU threads, and notebook progress goes to the logs only.

    Notebooks run with the current working directory as their working directory, so relative paths such as
    ``data/`` mean the same inside a notebook as on the command line.
    """
    points = plan_run(config, reports_dir)
    check_kernel(kernel_name)  # before the run folder exists
    # the run folder: writable, not in a data set, and emptied point by point only when gotd made it (its lock
    # file says so)
    check_output(Path(reports_dir) / config.name, flag="reports dir/<name>", folder=True, record=LOCK_FILE)
    run_root = (Path(reports_dir) / config.name).resolve()
    with run_lock(run_root):  # a second run of the same folder stops here, naming this one's pid
        return _run_points(config, points, run_root, fail_fast=fail_fast, force=force, html=html,
                           progress=progress, stream_output=stream_output, kernel_name=kernel_name,
                           jobs=jobs or config.jobs)


def _run_points(config: RunConfig, points: list[Point], run_root: Path, *, fail_fast: bool, force: bool,
                html: bool, progress: bool, stream_output: bool, kernel_name: str | None, jobs: int) -> RunSummary:
    """The body of :func:`run_config`, under the run folder's lock."""
    summary = RunSummary(run_root=run_root, points=points)
    kernel = kernel_name or ensure_kernel()
    fingerprints = {s.name: notebook_fingerprint(s.notebook) for s in config.stages}
    executed: set[str] = set()
    started = time.perf_counter()
    record: dict[str, Any] = {"run": config.name, "config_source": config.source, "kernel": kernel, "jobs": jobs,
                              "command": sys.argv, "cwd": os.getcwd(), **provenance()}
    cwd = Path.cwd()
    bar = tqdm(total=len(points), desc=f"gotd run {config.name}", unit="point", disable=not progress, position=0)

    def decide(point: Point) -> tuple[PointResult | None, bool]:
        bad = [d for d in point.depends_on if summary.results[d].status in ("failed", "blocked", "not run")]
        if bad:
            return PointResult(point.name, point.stage.name, "blocked",
                               error={"ename": "blocked", "evalue": f"depends on {bad[0]}, which did not finish",
                                      "notebook": str(point.stage.notebook), "cell_index": None}), False
        upstream_ran = any(d in executed for d in point.depends_on)
        if not force and not upstream_ran and is_done(point, fingerprints[point.stage.name]):
            return PointResult(point.name, point.stage.name, "skipped"), False
        bar.set_postfix_str(point.name, refresh=True)
        return None, not (force or upstream_ran)

    def on_outcome(point: Point, result: PointResult) -> bool:
        summary.results[point.name] = result
        bar.update(1)
        if result.status == "skipped":
            bar.write(f"{point.name}: done earlier, skipped")
        elif result.status == "blocked":
            return True
        else:
            executed.add(point.name)
            if result.status == "failed":
                err = result.error or {}
                bar.write(f"{point.name}: FAILED in cell {err.get('cell_index')} of {point.stage.notebook.name}: "
                          f"{err.get('ename')}: {err.get('evalue')}")
            else:
                bar.write(f"{point.name}: done in {result.seconds:.1f} s")
            _write_record(run_root, config, summary, record, started)
        return not (fail_fast and result.status == "failed")

    try:
        # execute_point looked up here at call time, so that a test can stand in for it (jobs = 1)
        run_points(points, jobs=jobs, decide=decide, on_outcome=on_outcome, execute_fn=execute_point,
                   notebook_sha=fingerprints, kernel_name=kernel, cwd=cwd, progress=progress,
                   stream_output=stream_output)
    finally:
        bar.close()
        for point in points:
            summary.results.setdefault(point.name, PointResult(point.name, point.stage.name, "not run"))
        _write_record(run_root, config, summary, record, started)

    finished = [p for p in points if summary.results[p.name].status in ("done", "skipped")]
    summary.table, summary.problems = collect_results(finished, run_root)
    for problem in summary.problems:
        print(f"gotd run: warning: {problem}", file=sys.stderr)
    if html:
        for point in tqdm(points, desc="rendering HTML", unit="notebook", disable=not progress):
            nb = point.output_notebook
            if summary.results[point.name].status in ("not run", "blocked") or not nb.is_file():
                continue
            if not point.html.is_file() or point.html.stat().st_mtime < nb.stat().st_mtime:
                render_html(nb, point.html)
    figures = standard_figures(summary.table, run_root / "figures", stage_order=[s.name for s in config.stages])
    record["problems"] = summary.problems
    _write_record(run_root, config, summary, record, started)
    write_index(run_root, title=f"gotd run {config.name}", description=config.description, points=points,
                results=summary.results, comparison=comparison_table(summary.table), figures=figures,
                problems=summary.problems, record=_full_record(config, summary, record, started))
    return summary


def _full_record(config: RunConfig, summary: RunSummary, record: dict[str, Any], started: float) -> dict[str, Any]:
    return {**record, "seconds": round(time.perf_counter() - started, 1), "grid": config.grid,
            "config": config.raw,
            "points": [{"name": p.name, "stage": p.stage.name, "notebook": str(p.stage.notebook), "axes": p.axes,
                        "parameters": p.parameters, "depends_on": p.depends_on,
                        **({"status": summary.results[p.name].status,
                            "seconds": round(summary.results[p.name].seconds, 2),
                            "error": summary.results[p.name].error} if p.name in summary.results else
                           {"status": "pending"})}
                       for p in summary.points]}


def _write_record(run_root: Path, config: RunConfig, summary: RunSummary, record: dict[str, Any],
                  started: float) -> None:
    write_json_atomic(run_root / "run.json", _full_record(config, summary, record, started))
