"""The Encoder: texts in, float32 vectors out, computed once per cache shard and resumed from the cache."""
from __future__ import annotations

import copy
import logging
import os
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from gotd._io import provenance
from gotd.data import texts_fingerprint
from gotd.embed import _loading
from gotd.embed._batching import BlockPreparer
from gotd.embed._cache import (
    check_shard_size,
    embedding_cache_key,
    load_cache_shard,
    new_manifest,
    read_cache_manifest,
    round_to_storage,
    save_cache_shard,
    shard_entry,
)
from gotd.embed._dtypes import check_storage_dtype, resolve_device, resolve_dtype
from gotd.embed._loading import (
    DEFAULT_ALIASES,
    DEFAULT_ENCODER,
    DEFAULT_MODEL_NAME,
    _is_local,
    load_config,
    model_fingerprint,
    resolve_model_path,
)
from gotd.embed._onnx import OnnxEncoderModel, check_backend
from gotd.embed._pooling import POOLINGS, pool_hidden_states
from gotd.errors import GotdInputError
from gotd.outputs import check_output
from gotd.shards import update_manifest, write_manifest
from gotd.validation import check_texts

logger = logging.getLogger(__name__)


class Encoder(BlockPreparer):
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
        Torch device; ``None`` or ``"auto"``: ``"cuda"`` when available, else ``"cpu"``
        (:func:`gotd.devices.resolve_device`).
    dtype : {"auto", "float32", "bfloat16", "float16"}, optional
        Compute dtype of the encoder; ``None`` or ``"auto"``: bf16 where the hardware runs it natively,
        else float32 (:func:`gotd.devices.resolve_dtype` with ``cpu_bf16=True``; ``GOTD_CPU_BF16=0``
        makes a bf16-capable CPU choose float32). Outputs are float32 either way.
    storage_dtype : {"float32", "bfloat16", "float16"}, default "float32"
        Precision the embeddings are kept in: cache shards are written in it (bf16 as uint16 bit patterns)
        and ``encode`` returns float32 values rounded to it, cached or not. Enters the cache key when not
        float32.
    tokenize_workers : int, optional
        Background threads that tokenise, length-sort and pad upcoming shards while the model runs on the
        current one (each with its own copy of the tokenizer). 0 does it all in the calling thread. Default:
        1 on CUDA (the GPU then does not wait for the tokenizer), 0 on a CPU (where the model already uses
        every core). Does not change the numbers or the cache key.
    backend : {"torch", "onnxruntime"}, default "torch"
        What runs the encoder. ``"onnxruntime"`` (opt-in, CPU only, float32; ``pip install 'gotd[onnx]'``)
        exports the loaded model to ONNX and runs it with ONNX Runtime: the faster float32 path on a CPU
        without bf16 (see :mod:`gotd.embed._onnx` for the measured figures). Its numbers equal torch's up to
        float32 rounding (cosine >= 0.999999); it enters the cache key, so its caches are its own.
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
        backend: str = "torch",
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
        if backend == "onnxruntime" and (dtype is None or (isinstance(dtype, str) and dtype.strip().lower() == "auto")):
            dtype = "float32"  # the automatic choice for the one dtype this backend computes in
        self.dtype = resolve_dtype(dtype, self.device)
        self.backend = check_backend(backend, self.device, self.dtype)
        self.storage_dtype = check_storage_dtype(storage_dtype)
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
        self._model: Any = None  # a torch module, or OnnxEncoderModel for backend="onnxruntime"
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
            "backend": self.backend,
        }

    def cache_key(self, texts: Sequence[str]) -> str:
        """The cache key of ``texts`` under this encoder's settings (see :func:`embedding_cache_key`)."""
        return embedding_cache_key(texts_fingerprint(list(texts)), self.settings())

    def __repr__(self) -> str:
        return (
            f"Encoder(model={self.model!r}, pooling={self.pooling!r}, normalize={self.normalize}, "
            f"max_length={self.max_length}, dtype={self.dtype!r}, storage_dtype={self.storage_dtype!r}, "
            f"device={self.device!r}, backend={self.backend!r})"
        )

    # ---- copies for other processes and devices ---------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        # A pickled encoder (e.g. sent to a Ray actor) carries its settings, not its loaded model,
        # tokenizer or worker threads: the receiving process loads those itself.
        state = self.__dict__.copy()
        state.update(_tokenizer=None, _model=None, _lookahead={}, _worker_state=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("backend", "torch")  # pickled before backends existed
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
        check_backend(other.backend, other.device, other.dtype)
        if other._auto_tokenize_workers:
            other.tokenize_workers = 1 if other.device.startswith("cuda") else 0
        return other

    # ---- lazy loading ---------------------------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            self._tokenizer = _loading._load_tokenizer(self.model_path)
        return self._tokenizer

    @property
    def torch_model(self) -> Any:
        """The loaded encoder: a torch module, or its ONNX Runtime stand-in for ``backend="onnxruntime"``."""
        if self._model is None:
            model = _loading._load_model(self.model_path, self.device, self.dtype)
            if self.backend == "onnxruntime":
                model = OnnxEncoderModel(model, list(self.tokenizer.model_input_names))
            self._model = model
        return self._model

    # ---- computing ------------------------------------------------------------------------------
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

    def encode(
        self,
        texts: Sequence[str],
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        progress: bool = True,
        shard_size: int | None = None,
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
        shard_size : int, optional
            Texts per cache shard (and per length-sorting block): the unit an interrupted run resumes from.
            Default :func:`~gotd.embed.default_shard_size` of ``len(texts)`` (1,024 rows up to 102,400
            texts, then 1% of the input, at most 10,000). An existing cache entry keeps its own.

        Warns
        -----
        UserWarning
            When texts were longer than ``max_length`` tokens and got truncated (the count is also in
            ``self.last_stats["n_truncated"]`` and the cache manifest).
        """
        texts = check_texts(texts, "texts", allow_empty=True, blank="warn")
        shard_size = check_shard_size(shard_size, len(texts))
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

    def open_cache_entry(self, texts: list[str], cache_dir: Path, shard_size: int) -> tuple[Path, dict[str, Any]]:
        """The cache folder of ``texts`` and its manifest, created (with no shards done) when absent.

        An existing entry keeps its own ``shard_size``. Shared by :meth:`encode` and the Ray path
        (:mod:`gotd.distributed`), so that both read and write one layout.
        """
        texts_sha256 = texts_fingerprint(texts)
        key = embedding_cache_key(texts_sha256, self.settings())
        folder = Path(cache_dir) / key
        manifest = read_cache_manifest(folder)
        if manifest is not None and (manifest.get("n") != len(texts) or manifest.get("dim") != self.dim):
            warnings.warn(f"embedding cache {folder} does not match these texts; recomputing it", stacklevel=3)
            manifest = None
        if manifest is None:
            # a new entry is written: the cache must be writable and outside any data set (a complete entry is
            # only read, so a read-only cache of finished entries still serves)
            check_output(folder, flag="cache_dir", folder=True)
            manifest = new_manifest(key, texts_sha256, len(texts), self.dim, shard_size, self.storage_dtype,
                                    self.settings())
            write_manifest(folder, manifest)
        return folder, manifest

    def encode_shard(self, folder: Path, index: int, start: int, texts: list[str]) -> dict[str, Any]:
        """Encode shard ``index`` (``texts``, rows from ``start``) of the cache entry ``folder``, write it
        atomically and return its manifest entry, which the caller records (:func:`gotd.shards.update_manifest`).

        The per-shard map of :func:`gotd.distributed.embed_shards` on Ray; :meth:`encode` writes the same
        files with the same entries.
        """
        with self._progress_bar(len(texts), False) as bar:
            array, n_truncated = self._encode_block(texts, bar)
        sha256 = save_cache_shard(folder, index, array, self.storage_dtype)
        return shard_entry(index, start, start + len(texts), sha256, n_truncated)

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
                cached = load_cache_shard(folder, entry, manifest) if entry is not None else None
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
                    done[index] = shard_entry(index, start, stop, save_cache_shard(folder, index, out[start:stop],
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


def embed_texts(
    texts: Sequence[str],
    *,
    model: str = DEFAULT_ENCODER,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    shard_size: int | None = None,
    **encoder_kwargs: Any,
) -> np.ndarray:
    """Embed ``texts`` with a new :class:`Encoder`; ``encoder_kwargs`` go to its constructor.

    Returns an ``(n, dim)`` float32 array in the order of ``texts``.
    """
    encoder = Encoder(model, **encoder_kwargs)
    return encoder.encode(texts, cache_dir=cache_dir, progress=progress, shard_size=shard_size)
