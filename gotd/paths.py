"""Where relative paths point: the repository root when inside a checkout, else the working directory.

Paths given to a notebook, a stage or a run config may be relative; they are resolved against the
repository root when the code runs inside the repository (so a notebook works from the root and from
``notebooks/``), else against the working directory.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gotd.errors import GotdInputError

__all__ = ["flatten_dirs", "repo_root", "resolve_path"]


def repo_root(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: the working directory) holding
    ``pyproject.toml`` and a ``notebooks`` folder, or None outside a checkout."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "notebooks").is_dir():
            return folder
    return None


def resolve_path(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute: unchanged if absolute, else relative to :func:`repo_root` (or the cwd)."""
    if str(path) == "":
        raise GotdInputError("got an empty path; pass a file or folder name")
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    return (repo_root() or Path.cwd()) / p


def flatten_dirs(dirs: Any) -> list[str]:
    """The folder paths in a (nested) mapping or list of them, as ``$each`` in a run config builds it."""
    if isinstance(dirs, (str, os.PathLike)):
        return [str(dirs)]
    if isinstance(dirs, dict):
        return [p for v in dirs.values() for p in flatten_dirs(v)]
    if isinstance(dirs, (list, tuple)):
        return [p for v in dirs for p in flatten_dirs(v)]
    raise GotdInputError(f"expected folder paths (a string, a list or a mapping of them), got {type(dirs).__name__}")
