"""Tiny Llamas: the random test model built locally, and fresh models of any small size.

:func:`build_tiny_causal_lm` writes the test model (random weights, a tokenizer trained on a fixed built-in
text) into a cache folder; :class:`TinyLlamaSize` and :func:`new_tiny_llama` make a freshly initialised model
of a given size in memory (the testbed pre-trains one from scratch on its pool). Both tokenizers come from
the one trainer, :func:`gotd.models.train_bpe_tokenizer`.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gotd._io import provenance, write_json_atomic
from gotd.errors import GotdInputError
from gotd.models._cache import MANIFEST_NAME, _atomic_folder, model_cache_root, read_manifest
from gotd.models._tokenizer import train_bpe_tokenizer

TINY_FORMAT = 2  # bump when the tiny builder changes what it writes for the same settings

# Fixed training text for the tiny tokenizer: plain English with digits and punctuation, so that any
# test sentence tokenises into a reasonable number of pieces. Changing it changes every tiny model:
# bump TINY_FORMAT if you do.
_TINY_TOKENIZER_TEXT = """\
The quick brown fox jumps over the lazy dog. A small model is enough to check that data flows through
the code: it reads text, turns it into tokens, runs a forward pass and returns a loss. Language models
predict the next token from the ones before it. Data selection picks the examples that move a model
closest to the target task. Optimal transport measures how far one set of points is from another, and
its dual potentials tell how much each candidate would shorten that distance. The news today: markets
rose 2.5% on Monday, the team won 3-1, and the weather will be sunny with a high of 21 degrees.
Reviews said the film was wonderful, moving and funny; others found it slow, dull and far too long.
Scientists reported new results on proteins, cells and genes in the journal on 14 March 2023.
"Hello," she said. "How are you?" He replied: 'Fine, thanks!' Questions? Answers; lists, (brackets),
[square], {curly}, <angle>, #hash, @at, $100, 50/50, a+b=c, x*y, e-mail: name@example.org.
0 1 2 3 4 5 6 7 8 9 10 100 1000 first second third one two three four five six seven eight nine ten.
"""

_TINY_SPECIAL_TOKENS = {"eos_token": "<|endoftext|>", "bos_token": "<|startoftext|>", "pad_token": "<|pad|>"}


def _tiny_settings(
    *,
    seed: int,
    vocab_size: int,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    intermediate_size: int,
    max_positions: int,
) -> dict[str, Any]:
    return {
        "format": TINY_FORMAT,
        "seed": int(seed),
        "vocab_size": int(vocab_size),
        "hidden_size": int(hidden_size),
        "num_hidden_layers": int(num_layers),
        "num_attention_heads": int(num_heads),
        "num_key_value_heads": int(num_kv_heads),
        "intermediate_size": int(intermediate_size),
        "max_position_embeddings": int(max_positions),
    }


def _tiny_folder_name(settings: dict[str, Any]) -> str:
    return "tiny-" + hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def _check_tiny_settings(s: dict[str, Any]) -> None:
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "intermediate_size", "max_position_embeddings"):
        if s[key] < 1:
            raise GotdInputError(f"build_tiny_causal_lm: {key}={s[key]} must be a positive integer")
    if s["vocab_size"] < 256 + len(_TINY_SPECIAL_TOKENS):
        raise GotdInputError(
            f"build_tiny_causal_lm: vocab_size={s['vocab_size']} is below the 256 byte tokens plus "
            f"{len(_TINY_SPECIAL_TOKENS)} special tokens a byte-level BPE needs; pass vocab_size >= 259"
        )
    if s["hidden_size"] % s["num_attention_heads"]:
        raise GotdInputError(
            f"build_tiny_causal_lm: hidden_size={s['hidden_size']} is not a multiple of "
            f"num_heads={s['num_attention_heads']}"
        )
    if s["num_attention_heads"] % s["num_key_value_heads"]:
        raise GotdInputError(
            f"build_tiny_causal_lm: num_heads={s['num_attention_heads']} is not a multiple of "
            f"num_kv_heads={s['num_key_value_heads']}"
        )
    if (s["hidden_size"] // s["num_attention_heads"]) % 2:
        raise GotdInputError(
            "build_tiny_causal_lm: the head size hidden_size/num_heads must be even (rotary embeddings)"
        )


def _train_tiny_tokenizer(vocab_size: int) -> Any:
    """The tiny model's tokenizer: :func:`train_bpe_tokenizer` on the built-in text, every pair merged."""
    return train_bpe_tokenizer(_TINY_TOKENIZER_TEXT.splitlines(), vocab_size, special_tokens=_TINY_SPECIAL_TOKENS,
                               min_frequency=0)


@dataclass(frozen=True)
class TinyLlamaSize:
    """Sizes of a small Llama (RMSNorm, rotary positions, SwiGLU MLP) and of its BPE vocabulary."""

    vocab_size: int = 2048          # BPE vocabulary (incl. 256 byte tokens)
    hidden_size: int = 128          # model width
    layers: int = 2                 # decoder layers
    heads: int = 4                  # attention heads
    intermediate_size: int = 352    # SwiGLU width
    block_size: int = 128           # training and scoring window in tokens (the model's positions)


BOS_PAD_TOKEN_IDS = {"bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 1}
"""Special-token ids of a tokenizer :func:`train_bpe_tokenizer` trains with the special tokens ``<bos>``,
``<pad>`` (as :func:`gotd.train.pretrain_from_scratch` does): bos (also the eos) 0, pad 1."""


def new_tiny_llama(size: TinyLlamaSize, vocab_size: int, seed: int, *, kv_heads: int | None = None,
                   token_ids: dict[str, int] | None = None) -> Any:
    """A freshly initialised fp32 ``LlamaForCausalLM`` of ``size`` (``torch.manual_seed(seed)`` first).

    Embeddings are tied; the model has ``size.block_size`` positions.

    Parameters
    ----------
    size : TinyLlamaSize
        Width, layers, heads, MLP width and positions (its ``vocab_size`` is the tokenizer's target size).
    vocab_size : int
        Rows of the embedding: the trained tokenizer's actual size.
    seed : int
        Seed of the weight initialisation (set on torch's global generator).
    kv_heads : int, optional
        Key/value heads (grouped-query attention); default ``size.heads`` (plain multi-head attention).
    token_ids : dict, optional
        ``bos_token_id``, ``eos_token_id``, ``pad_token_id`` (the pad row of the embedding starts at zero);
        default :data:`BOS_PAD_TOKEN_IDS`.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab_size, hidden_size=size.hidden_size, intermediate_size=size.intermediate_size,
                         num_hidden_layers=size.layers, num_attention_heads=size.heads,
                         num_key_value_heads=size.heads if kv_heads is None else kv_heads,
                         max_position_embeddings=size.block_size, tie_word_embeddings=True,
                         **(BOS_PAD_TOKEN_IDS if token_ids is None else token_ids))
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).float()


def build_tiny_causal_lm(
    out_dir: str | os.PathLike[str] | None = None,
    *,
    seed: int = 0,
    vocab_size: int = 512,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 128,
    max_positions: int = 512,
) -> Path:
    """Build (once) a tiny random Llama causal LM and its tokenizer; return the folder.

    The model has the SmolLM2 architecture (``LlamaForCausalLM``: RMSNorm, rotary positions, grouped
    query attention, SwiGLU, tied input/output embeddings) at toy size, with weights drawn by
    ``transformers``' initialiser under ``torch.manual_seed(seed)``. The tokenizer is a byte-level BPE
    trained on a fixed built-in text, with ``<|startoftext|>`` (bos), ``<|endoftext|>`` (eos) and
    ``<|pad|>`` (pad); like SmolLM2's it adds no special tokens by itself. Any UTF-8 text tokenises
    (byte fallback), so any test sentence works.

    Parameters
    ----------
    out_dir : path, optional
        Folder to build into. Default: ``<model cache root>/tiny-<key>`` where ``key`` hashes the
        settings below, so the same settings reuse one folder.
    seed : int
        Seed of the weight initialisation; same settings and seed give byte-identical weights.
    vocab_size, hidden_size, num_layers, num_heads, num_kv_heads, intermediate_size, max_positions : int
        Model size. Defaults: 512-token vocabulary, 64-d, 2 layers, 4 heads (2 key/value heads),
        128-d MLP, 512 positions (~0.1M parameters).

    Returns
    -------
    Path
        A folder that ``AutoModelForCausalLM.from_pretrained`` and ``AutoTokenizer.from_pretrained`` load.
        If it already holds a tiny model built with the same settings, it is returned unchanged.

    Raises
    ------
    GotdInputError
        On inconsistent sizes, or when ``out_dir`` exists and holds something else.
    """
    settings = _tiny_settings(seed=seed, vocab_size=vocab_size, hidden_size=hidden_size, num_layers=num_layers,
                              num_heads=num_heads, num_kv_heads=num_kv_heads, intermediate_size=intermediate_size,
                              max_positions=max_positions)
    _check_tiny_settings(settings)
    folder = Path(out_dir).expanduser() if out_dir is not None else model_cache_root() / _tiny_folder_name(settings)

    if folder.exists():
        manifest = read_manifest(folder)
        if manifest is not None and manifest.get("tiny_settings") == settings:
            return folder.resolve()
        if manifest is not None or (folder.is_dir() and any(folder.iterdir())) or not folder.is_dir():
            raise GotdInputError(
                f"build_tiny_causal_lm: {folder} already exists and is not a tiny model with these settings; "
                "pass another out_dir or remove that folder"
            )
        folder.rmdir()  # an empty folder: build in its place

    import torch

    start = time.perf_counter()
    with _atomic_folder(folder) as tmp:
        tokenizer = _train_tiny_tokenizer(settings["vocab_size"])
        size = TinyLlamaSize(vocab_size=settings["vocab_size"], hidden_size=settings["hidden_size"],
                             layers=settings["num_hidden_layers"], heads=settings["num_attention_heads"],
                             intermediate_size=settings["intermediate_size"],
                             block_size=settings["max_position_embeddings"])
        token_ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                     "pad_token_id": tokenizer.pad_token_id}
        # Initialise on CPU under a local RNG so the weights depend on the seed alone.
        with torch.random.fork_rng(devices=[]):
            model = new_tiny_llama(size, len(tokenizer), settings["seed"], kv_heads=settings["num_key_value_heads"],
                                   token_ids=token_ids)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json_atomic(
            tmp / MANIFEST_NAME,
            {
                "name": "tiny",
                "kind": "tiny-random",
                "architecture": "LlamaForCausalLM",
                "tiny_settings": settings,
                "parameters": int(sum(p.numel() for p in model.parameters())),
                "note": "randomly initialised; for tests of wiring only, not quality",
                "build_seconds": round(time.perf_counter() - start, 3),
                "provenance": provenance(device="cpu"),
            },
        )
    return folder.resolve()
