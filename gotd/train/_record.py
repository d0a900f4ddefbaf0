"""The finished output folder: its ``gotd_train.json`` record, how it is written, and when it is reused."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from gotd._io import apply_umask, replace_dir, write_json_atomic
from gotd.errors import GotdInputError
from gotd.outputs import check_output, write_error
from gotd.train._config import RECORD_NAME, TrainConfig, TrainResult

def _base_model_info(model: Any) -> dict[str, Any] | None:
    """Where the starting weights came from: the resolved folder and, for registry models, their source."""
    if not isinstance(model, (str, os.PathLike)):
        return None
    from gotd.models import read_manifest, resolve_model_location

    location = resolve_model_location(model)
    info: dict[str, Any] = {"location": location}
    if Path(location).is_dir():
        manifest = read_manifest(location) or {}
        info.update({k: manifest[k] for k in ("name", "kind", "source_model", "gguf_sha256", "note") if k in manifest})
        previous = Path(location) / RECORD_NAME
        if previous.is_file():  # warming up an already pre-fine-tuned model: say what it was trained on
            earlier = json.loads(previous.read_text(encoding="utf-8"))
            info["pre_fine_tuned"] = {"model": earlier.get("model"),
                                      "data_sha256": (earlier.get("data") or {}).get("sha256"),
                                      "texts_sha256": (earlier.get("data") or {}).get("texts_sha256")}
    return info


def _blocks_trained(steps: int, steps_per_epoch: int, n_blocks: int, config: TrainConfig) -> int:
    """Block passes in ``steps`` optimiser steps (the last batch of an epoch may be short)."""
    full, rest = divmod(steps, steps_per_epoch)
    return full * n_blocks + min(n_blocks, rest * config.batch_size * config.grad_accum)


def _save_output(model: Any, tokenizer: Any, record: dict[str, Any], out_dir: Path, *, overwrite: bool) -> None:
    """Write model, tokenizer and record into a temporary folder, then rename it onto ``out_dir``.

    The folder gets the permissions of the user's umask (``mkdtemp`` alone would leave it private, 0700).
    An existing ``out_dir`` is replaced only when it holds gotd's record (checked again here: it may have
    appeared while training).
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        try:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            write_json_atomic(tmp / RECORD_NAME, record)  # last: its presence marks a complete folder
        except OSError as exc:
            raise write_error(out_dir, exc) from None
        except Exception as exc:  # safetensors reports a full disk as its own error type
            if "space" in str(exc).lower() or "os error" in str(exc).lower():
                raise GotdInputError(f"cannot write {out_dir}: {exc}; free some space or choose an output on "
                                     "another disk") from None
            raise
        apply_umask(tmp)
        if out_dir.exists() and not overwrite:
            raise GotdInputError(f"output folder {out_dir} appeared while training; not replacing it")
        check_output(out_dir, flag="out_dir", folder=True, record=RECORD_NAME, probe=False)
        replace_dir(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_train_record(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Return the ``gotd_train.json`` of a pre-fine-tuned folder (GotdInputError if it has none)."""
    path = Path(folder) / RECORD_NAME
    if not path.is_file():
        raise GotdInputError(f"{folder} has no {RECORD_NAME}: it is not a finished `gotd train` output")
    return json.loads(path.read_text(encoding="utf-8"))


def reusable_output(out_dir: str | os.PathLike[str], model: Any, data_info: dict[str, Any],
                    config: TrainConfig) -> TrainResult:
    """The finished run in ``out_dir`` when it is the run asked for; else a GotdInputError saying why.

    The one rule for an existing training output, in ``gotd train`` and in ``02_prefinetune`` alike: it is
    reused only when it is complete (its ``gotd_train.json`` is written last, so a folder with one is
    whole) and its record names the same model (as given: registry name, folder or hub id), the same
    texts (``data.texts_sha256``, the sha256 of the texts in order) and the same settings
    (``TrainConfig.to_dict()``, seed included). Anything else is refused, never replaced silently:
    ``overwrite=True`` (``--overwrite``) trains again and replaces it.

    Parameters
    ----------
    out_dir : path
        The existing output folder.
    model : str, path or loaded model
        What ``train`` was given (a loaded model is never matched: its origin cannot be checked).
    data_info : dict
        The data description of :func:`load_training_texts` (``texts_sha256``).
    config : TrainConfig
        The settings of the run asked for.

    Raises
    ------
    GotdInputError
        ``out_dir`` is not a finished gotd output, or differs in model, data or settings (named).
    """
    out_dir = Path(out_dir)
    fix = "pass overwrite=True (--overwrite) to train again and replace it, or choose another folder"
    path = out_dir / RECORD_NAME
    if not path.is_file():
        raise GotdInputError(f"output folder {out_dir} already exists and is not a finished gotd train output "
                             f"(no {RECORD_NAME}); {fix}")
    record = json.loads(path.read_text(encoding="utf-8"))
    wanted = {"model": os.fspath(model) if isinstance(model, (str, os.PathLike)) else None,
              "data": data_info["texts_sha256"], "settings": config.to_dict()}
    found = {"model": record.get("model"), "data": (record.get("data") or {}).get("texts_sha256"),
             "settings": record.get("config")}
    differs = [key for key in wanted if wanted[key] is None or wanted[key] != found[key]]
    if differs:
        detail = "; ".join(f"{key}: {found[key]!r} there, {wanted[key]!r} asked" for key in differs
                           if key != "settings")
        if "settings" in differs:
            changed = sorted(k for k in set(wanted["settings"]) | set(found["settings"] or {})
                             if (found["settings"] or {}).get(k) != wanted["settings"].get(k))
            detail = "; ".join(filter(None, [detail, f"settings differ in {', '.join(changed)}"]))
        raise GotdInputError(f"output folder {out_dir} already exists with another run ({detail}); {fix}")
    return TrainResult(output_dir=out_dir, record=record)
