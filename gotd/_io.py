"""Small I/O helpers shared by the package: atomic writes and provenance records.

Output files are written to a temporary file in the destination folder and renamed into place, so an
interrupted run never leaves a half-written file behind.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from gotd.errors import GotdInputError
from gotd.outputs import write_error

_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM})
_TRACKED_PACKAGES = ("gotd", "numpy", "torch", "transformers", "pot", "pandas", "pyarrow")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    Use for writers that want a file name (``DataFrame.to_parquet``, ``numpy.save``...).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except (PermissionError, FileExistsError, NotADirectoryError) as exc:
        # The temporary file's name would mean nothing to the user: name the output and the fix.
        raise GotdInputError(f"cannot write {path}: the folder {path.parent} is not writable or not a folder "
                             f"({exc.strerror or type(exc).__name__}); choose an output path in a folder you can "
                             "write to") from None
    except OSError as exc:  # read-only file system, full disk
        raise write_error(path, exc) from None
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates the file private (0600); give the result the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        try:
            yield tmp_path
        except OSError as exc:
            if exc.errno not in _WRITE_ERRNOS:
                raise
            # a full or read-only disk while writing: name the user's output, not the temporary file
            raise write_error(path, exc) from None
        try:
            os.replace(tmp_path, path)
        except (IsADirectoryError, PermissionError) as exc:
            raise GotdInputError(f"cannot write {path}: {'it is a folder' if path.is_dir() else exc.strerror}; "
                                 "give the path of a file to write") from None
        except OSError as exc:
            raise write_error(path, exc) from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()



def apply_umask(folder: str | os.PathLike[str]) -> None:
    """Give ``folder`` and everything in it the permissions plain ``mkdir``/``open`` would have given.

    ``mkdtemp`` folders and ``mkstemp`` files are private (0700/0600); a shared cache must stay readable.
    """
    umask = os.umask(0)
    os.umask(umask)
    folder = Path(folder)
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def replace_dir(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Move the finished folder ``src`` onto ``dst``; an existing ``dst`` is moved aside first, then removed.

    Readers see either the old folder or the new one, never a mix (both renames are atomic on one file
    system); the window without ``dst`` is the instant between the two renames.
    """
    src, dst = Path(src), Path(dst)
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically and return the path."""
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays, paths: make records JSON-serialisable without surprises.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def file_sha256(path: str | os.PathLike[str], chunk_bytes: int = 1 << 20) -> str:
    """Return the hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


def package_versions(names: tuple[str, ...] = _TRACKED_PACKAGES) -> dict[str, str | None]:
    """Return the installed version of each named distribution (None when absent)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance(device: str | None = None) -> dict[str, Any]:
    """Return what a result needs next to it to be reproduced: versions, machine, time.

    Parameters
    ----------
    device : str, optional
        The torch device the computation ran on (e.g. ``"cpu"``, ``"cuda:0"``).
    """
    record: dict[str, Any] = {
        "versions": {"python": platform.python_version(), **package_versions()},
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if device is not None:
        record["device"] = device
        if device.startswith("cuda"):
            with contextlib.suppress(Exception):
                import torch

                record["device_name"] = torch.cuda.get_device_name(torch.device(device))
    return record
