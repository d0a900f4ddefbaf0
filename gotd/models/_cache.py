"""The model cache: where converted and built models live, and how a folder appears atomically."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gotd._io import apply_umask

MANIFEST_NAME = "gotd_manifest.json"
MODEL_DIR_ENV = "GOTD_MODEL_DIR"
TRAIN_RECORD_NAME = "gotd_train.json"  # what gotd.train writes last into a finished output folder

def model_cache_root() -> Path:
    """Return the folder that holds converted and built models (``$GOTD_MODEL_DIR`` or ``~/.cache/gotd/models``)."""
    env = os.environ.get(MODEL_DIR_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gotd" / "models"


@contextlib.contextmanager
def _atomic_folder(final: Path) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``final``; rename it onto ``final`` if the block succeeds.

    If another process finished ``final`` first, the temporary folder is discarded and theirs is kept
    (both were built from the same inputs).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        apply_umask(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / MANIFEST_NAME).is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Return the gotd manifest of a model folder, or None when it has none (not built by gotd)."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
