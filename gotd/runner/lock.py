"""One ``gotd run`` at a time per run folder: an exclusive ``fcntl.flock`` on ``<run>/.gotd-run.lock``.

Two runs of one config into one reports folder would interleave their writes to the same points, markers
and ``run.json``. The first run holds the lock for its whole duration and writes its pid, host and start
time into the lock file; a second run stops at once with a message naming that pid (or, with
``wait=True``, waits for it). The kernel drops the lock when the holder exits, however it exits, so a
crashed run never leaves a stale lock behind.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from gotd.errors import GotdError

LOCK_FILE = ".gotd-run.lock"


class RunLockedError(GotdError):
    """Another process holds the run folder's lock."""


@contextlib.contextmanager
def run_lock(run_root: str | os.PathLike[str], *, wait: bool = False) -> Iterator[Path]:
    """Hold the run folder's lock for the ``with`` block.

    Parameters
    ----------
    run_root : path
        The run's report folder (created if missing).
    wait : bool
        Block until the holder finishes instead of refusing.

    Raises
    ------
    RunLockedError
        The folder is locked by another process (its pid, host and start time in the message).
    """
    run_root = Path(run_root)
    run_root.mkdir(parents=True, exist_ok=True)
    path = run_root / LOCK_FILE
    with open(path, "a+", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            fh.seek(0)
            raise RunLockedError(f"{run_root} is in use by another gotd run ({_describe(fh.read())}); wait for it "
                                 "to finish, or write this run elsewhere (--reports-dir, or --set name=...)") from None
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "started_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}))
            fh.flush()
            yield path
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _describe(text: str) -> str:
    try:
        holder = json.loads(text)
        return f"pid {holder['pid']} on {holder['host']}, started {holder['started_utc']}"
    except (ValueError, KeyError, TypeError):
        return "pid unknown"
