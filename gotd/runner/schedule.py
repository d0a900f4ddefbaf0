"""Running a run's points, one at a time or several at once, always in dependency order.

A point starts only when every point it depends on has an outcome. With ``jobs = 1`` each point runs in
this process (its notebook's progress bars and stderr stream to the terminal); with ``jobs > 1`` up to
``jobs`` points run at once, each in a worker process of its own whose kernels get ``cpu_count // jobs``
CPU threads (``OMP_NUM_THREADS``/``MKL_NUM_THREADS``): two points that each asked for every core of a
2-core machine would spin-wait on each other, which on the testbed's tiny LM was measured ten times slower
than one thread each. Every point's kernel output still goes to its ``logs/<point>.log``.
"""
from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from typing import Any

from gotd.errors import GotdInputError
from gotd.runner.execute import PointResult, execute_point
from gotd.runner.grid import Point

Decide = Callable[[Point], "tuple[PointResult | None, bool]"]
"""``point -> (outcome without running it, keep_partial)``: an outcome (blocked, skipped) or None to run it."""


def threads_per_job(jobs: int, cpu_count: int | None = None) -> int:
    """CPU threads each of ``jobs`` concurrent points gets: ``cpu_count // jobs``, at least 1."""
    if jobs < 1:
        raise GotdInputError(f"jobs={jobs} must be >= 1 (points run at once)")
    return max(1, (cpu_count or os.cpu_count() or 1) // jobs)


def _limit_threads(threads: int) -> None:
    # Inherited by the kernels papermill starts from this worker: torch, numpy and MKL read them at import.
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)


class _InProcess(Executor):
    """An executor that runs each call at once, in this process (``jobs = 1``)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))   # KeyboardInterrupt propagates: the run stops there
        return future


@contextmanager
def point_executor(jobs: int) -> Iterator[Executor]:
    """In-process for one job; a pool of ``jobs`` spawned worker processes, threads limited, for more."""
    if jobs == 1:
        yield _InProcess()
        return
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_limit_threads, initargs=(threads_per_job(jobs),))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_points(points: Sequence[Point], *, jobs: int, decide: Decide,
               on_outcome: Callable[[Point, PointResult], bool], execute_fn: Callable[..., PointResult] = execute_point,
               notebook_sha: dict[str, str], **options: Any) -> None:
    """Run ``points`` (topologically ordered) with up to ``jobs`` at once.

    ``decide`` gives a point's outcome without running it (blocked by a failed dependency, done earlier) or
    None; ``on_outcome`` records every outcome and returns False to stop launching new points (fail fast;
    the points already running finish). ``execute_fn(point, notebook_sha=..., keep_partial=..., **options)``
    runs one point (:func:`gotd.runner.execute.execute_point`; picklable when ``jobs > 1``);
    ``notebook_sha`` maps each stage to its notebook's fingerprint. With ``jobs > 1`` the points' progress
    bars and stderr go to their logs only.
    """
    threads_per_job(jobs)   # validates jobs
    pending = list(points)
    outcomes: set[str] = set()
    running: dict[Future, Point] = {}
    go_on = True
    if jobs > 1:
        options.update(progress=False, stream_output=False)
    with point_executor(jobs) as pool:
        while (pending and go_on) or running:
            for point in list(pending):
                if not go_on or len(running) >= jobs:
                    break
                if any(d not in outcomes for d in point.depends_on):
                    continue   # waits for its dependencies
                pending.remove(point)
                early, keep_partial = decide(point)
                if early is not None:
                    outcomes.add(point.name)
                    go_on = on_outcome(point, early) and go_on
                    continue
                future = pool.submit(execute_fn, point, notebook_sha=notebook_sha[point.stage.name],
                                     keep_partial=keep_partial, **options)
                running[future] = point
            if not running:
                if pending and go_on and not any(all(d in outcomes for d in p.depends_on) for p in pending):
                    raise GotdInputError(f"points {[p.name for p in pending]} wait on points that never run")
                continue
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                point = running.pop(future)
                outcomes.add(point.name)
                go_on = on_outcome(point, future.result()) and go_on
