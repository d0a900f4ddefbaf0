"""The one check of every output a command, notebook or config names, before any work is done.

Every front door that writes a file or folder the user named (``--out``, ``--cache-dir``, a notebook's
``checkpoint_name``, ``gotd run``'s report folder...) calls :func:`check_output` first. It refuses, with
one line naming the user's value and the fix:

- an output that leaves the folder it belongs in (``checkpoint_name="../x"`` or an absolute path, when
  the output must stay under the run folder's ``models/``);
- an output inside a built data set (``<data_dir>/<name>/`` with its ``manifest.json``): only
  ``gotd data fetch`` and ``gotd data pool`` write there, so a built-in name used as an input is
  protected as much as a path;
- an output that is one of the command's inputs (same path, symlink or hard link; for an output folder
  that is replaced, an input inside it);
- an existing folder that gotd did not write (no record file of its own): ``--overwrite`` replaces only
  gotd's own outputs, never a user's folder;
- an output location that cannot be written (read-only file system, full disk, a file where a folder
  must be), found by writing a small probe file *before* the work starts, so that a failure never comes
  after hours of work.

The same module turns an ``OSError`` at write time into one such line (:func:`write_error`).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gotd.errors import GotdInputError

DATA_MANIFEST = "manifest.json"
DATA_FILE = "data.parquet"
_PROBE_BYTES = 4096

_FIXES = {
    errno.EROFS: ("it is on a read-only file system", "choose an output on a writable disk"),
    errno.ENOSPC: ("no space is left on the device", "free some space or choose an output on another disk"),
    errno.EDQUOT: ("the disk quota is exceeded", "free some space or choose an output on another disk"),
    errno.EACCES: ("permission denied", "choose a folder you can write to"),
    errno.EPERM: ("operation not permitted", "choose a folder you can write to"),
    errno.ENOTDIR: ("a file stands where a folder must be", "choose an output path in a folder you can write to"),
    errno.EFBIG: ("the file is too large for the file system", "choose an output on another disk"),
}


def write_error(path: str | os.PathLike[str], exc: OSError, *, flag: str | None = None) -> GotdInputError:
    """One line for an ``OSError`` raised while writing ``path``: the user's path, the cause and the fix."""
    cause, fix = _FIXES.get(exc.errno or 0, (exc.strerror or type(exc).__name__, "choose another output location"))
    name = f"{os.fspath(path)} ({flag})" if flag else os.fspath(path)
    return GotdInputError(f"cannot write {name}: {cause}; {fix}")


def is_data_set_folder(folder: Path) -> bool:
    """True if ``folder`` holds a built data set (``data.parquet`` with its ``manifest.json``)."""
    return (folder / DATA_MANIFEST).is_file() and (folder / DATA_FILE).exists()


def is_pool_output(folder: Path) -> bool:
    """True if ``folder`` is a ``gotd data pool`` output (its manifest has the pool report, no recipe)."""
    try:
        manifest = json.loads((folder / DATA_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("kind") == "pool" and "report" in manifest \
        and "recipe" not in manifest


def check_output(out: str | os.PathLike[str], *, flag: str = "--out", inputs: Mapping[str, Any] | None = None,
                 inside: str | os.PathLike[str] | None = None, folder: bool = False,
                 record: str | None = None, replaces_folder: bool = False, probe: bool = True) -> Path:
    """Check that the output ``out`` may be written; return it as an absolute path.

    Parameters
    ----------
    out : path
        The output as the user named it (it may not exist yet).
    flag : str
        How the user named it (``"--out"``, ``"checkpoint_name"``), for the messages.
    inputs : mapping of str to path, optional
        What the command reads, by the name the user knows it under; None and non-path values are ignored.
    inside : path, optional
        The folder ``out`` belongs in: ``out`` is taken relative to it and must resolve strictly inside
        it (symlinks followed), so ``..``, absolute paths and links out of it are refused.
    folder : bool
        ``out`` is a folder (else a file).
    record : str, optional
        The record that proves gotd wrote an existing output. For a folder: a file gotd writes into every
        such folder (``gotd_train.json``; ``manifest.json`` for a pool); for a file: the suffix of its
        sidecar (``".json"``: ``<out>.json``). An existing output without its record was not written by gotd
        and is refused: gotd never replaces, and ``--overwrite`` never deletes, what it did not write.
    replaces_folder : bool
        ``out`` is a folder removed and written anew: an input inside it is refused too.
    probe : bool
        Write and remove a small file where ``out`` goes, to find an unwritable place before the work.

    Raises
    ------
    GotdInputError
        One line naming ``flag``, the value and the fix.
    """
    raw = os.fspath(out)
    if raw.strip() == "":
        raise GotdInputError(f"{flag} is empty; give the name of the output to write")
    target = Path(raw).expanduser()
    if inside is not None:
        base = Path(inside).expanduser().absolute()
        if target.is_absolute() or ".." in target.parts:
            raise GotdInputError(f"{flag} {raw!r} must be a name inside {base} (no absolute path, no '..'); "
                                 "give a plain name such as 'lm'")
        target = base / target
        resolved_base = base.resolve()
        if resolved_base not in target.resolve().parents:
            raise GotdInputError(f"{flag} {raw!r} leads out of {base} (a symbolic link, or the folder itself); "
                                 "give a plain name of a new entry such as 'lm'")
    target = target.absolute()
    resolved = target.resolve()
    _check_not_in_data_set(raw, flag, resolved, may_replace_pool=folder and record == DATA_MANIFEST)
    _check_not_input(raw, flag, target, inputs or {}, replaces_folder=replaces_folder)
    if folder:
        _check_own_folder(raw, flag, target, record)
    elif target.is_dir():
        raise GotdInputError(f"{flag} {raw} is a folder; give the path of a file to write")
    elif record is not None and target.exists() and not Path(f"{target}{record}").is_file():
        raise GotdInputError(f"{flag} {raw} already exists and was not written by gotd (it has no {target.name}{record} "
                             "next to it); gotd replaces only its own outputs: choose another path, or remove it "
                             "yourself")
    if probe:
        probe_writable(target, flag=flag)
    return target


def check_file_output(out: str | os.PathLike[str], *, inputs: Mapping[str, Any] | None = None,
                      flag: str = "--out", record_suffix: str = ".json") -> Path:
    """:func:`check_output` for a single-file output and its JSON record ``<out><record_suffix>``, which proves
    that gotd wrote ``out`` (so an existing ``out`` without it is refused); return ``out`` as an absolute path."""
    out = Path(out)
    checked = check_output(out, flag=flag, inputs=inputs, record=record_suffix)
    check_output(out.with_name(out.name + record_suffix), flag=flag, inputs=inputs)
    return checked


def _check_not_in_data_set(raw: str, flag: str, resolved: Path, *, may_replace_pool: bool) -> None:
    for place in (resolved, *resolved.parents):
        if not is_data_set_folder(place):
            continue
        if place == resolved and may_replace_pool and is_pool_output(place):
            return  # `gotd data pool` rebuilding its own pool
        raise GotdInputError(f"{flag} {raw} is in the built data set {place}: only `gotd data fetch` and "
                             "`gotd data pool` write there; choose an output outside the data folder")


def _check_not_input(raw: str, flag: str, target: Path, inputs: Mapping[str, Any], *, replaces_folder: bool) -> None:
    resolved = target.resolve()
    for name, value in inputs.items():
        if value is None or not isinstance(value, (str, os.PathLike)) or os.fspath(value) == "":
            continue
        source = Path(value).expanduser()
        same = source.resolve() == resolved
        with contextlib.suppress(OSError):
            same = same or os.path.samefile(source, target)
        inside = replaces_folder and resolved in source.resolve().parents
        if same or inside:
            how = "is" if same else "contains"
            raise GotdInputError(f"{flag} {raw} {how} the input {name} {os.fspath(value)}: writing it would replace "
                                 "what gotd reads; choose another output path")


def _check_own_folder(raw: str, flag: str, target: Path, record: str | None) -> None:
    if not target.exists():
        return
    if not target.is_dir():
        raise GotdInputError(f"{flag} {raw} is a file; give the path of a folder to write")
    if record is None or not any(target.iterdir()):
        return
    if not (target / record).is_file():
        raise GotdInputError(f"{flag} {raw} already exists and was not written by gotd (it has no {record}); "
                             "gotd replaces only its own outputs: choose another folder, or remove it yourself")


def nearest_existing(path: Path) -> Path:
    """``path`` itself or its nearest ancestor that exists."""
    for place in (path, *path.parents):
        if place.exists():
            return place
    return Path(path.anchor)


def probe_writable(target: str | os.PathLike[str], *, flag: str = "--out") -> None:
    """Write and remove a small file where ``target`` will be created; one line naming ``target`` if it fails.

    The probe goes into ``target`` itself when it is an existing folder, else into its nearest existing
    ancestor (the folders on the way are created only by the work itself, so a refused output leaves
    nothing behind). It writes a few kilobytes and syncs them, so a full disk is found as well as a
    read-only one.
    """
    target = Path(target)
    place = target if target.is_dir() else nearest_existing(target.parent)
    if not place.is_dir():
        raise GotdInputError(f"cannot write {os.fspath(target)} ({flag}): {place} is a file, not a folder; "
                             "choose an output path in a folder you can write to")
    fd = None
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".gotd-write-probe-", dir=place)
        os.write(fd, b"\0" * _PROBE_BYTES)
        os.fsync(fd)
    except OSError as exc:
        raise write_error(target, exc, flag=flag) from None
    finally:
        if fd is not None:
            os.close(fd)
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
