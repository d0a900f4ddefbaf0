"""Pre-training a tiny Llama from scratch on a set of texts, cached under a key of everything it depends on.

The tokenizer (:func:`gotd.models.train_bpe_tokenizer`, ``<bos>``/``<pad>``, pairs seen twice or more), the
model (:func:`gotd.models.new_tiny_llama`) and the plain loop (:func:`gotd.train.train_loop`) on the texts
packed into full blocks, each text preceded by ``<bos>``. The folder ``<cache_dir>/<key>/`` holds ``model/``
(``save_pretrained``, with the tokenizer) and ``manifest.json``; the key is the SHA-256 of the texts'
fingerprint and count, the sizes, the recipe, the seed and the library versions, so a changed pool or
recipe trains a new model. An interrupted run resumes from ``partial/checkpoint.pt``; ``manifest.json`` is
written last and is the one sign of a finished model.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gotd._io import package_versions, write_json_atomic
from gotd.errors import GotdInputError
from gotd.models import TinyLlamaSize, encode_after_bos, new_tiny_llama, train_bpe_tokenizer
from gotd.train._loop import LoopRecipe, full_blocks, train_loop

BOS, PAD = "<bos>", "<pad>"
SPECIAL_TOKENS = {"bos_token": BOS, "pad_token": PAD}
MANIFEST = "manifest.json"


def pretrain_from_scratch(texts: Sequence[str], cache_dir: str | Path, *, size: TinyLlamaSize = TinyLlamaSize(),
                          recipe: LoopRecipe = LoopRecipe(), seed: int = 0, progress: bool = True) -> Path:
    """Train (or reuse) a tokenizer and a tiny Llama on ``texts``; return the model's cache folder.

    See the module docstring for the folder and its key. Raises :class:`~gotd.errors.GotdInputError` when
    ``texts`` is empty.
    """
    from gotd.data import texts_fingerprint

    if not texts:
        raise GotdInputError("pretrain_from_scratch got no texts; pass the pool's texts")
    versions = dict(package_versions(("torch", "transformers", "tokenizers")))
    inputs = {"pool_sha256": texts_fingerprint(texts), "n_texts": len(texts), "size": asdict(size),
              "recipe": asdict(recipe), "seed": seed, "versions": versions}
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(cache_dir) / key
    if (folder / MANIFEST).is_file() and (folder / "model" / "config.json").is_file():
        return folder
    partial = folder / "partial"
    partial.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.perf_counter(), time.process_time()
    tokenizer = train_bpe_tokenizer(texts, size.vocab_size, special_tokens=SPECIAL_TOKENS, min_frequency=2)
    blocks = full_blocks(encode_after_bos(tokenizer, texts), size.block_size)
    tok_s = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}
    model = new_tiny_llama(size, len(tokenizer), seed)
    stats = train_loop(model, blocks, recipe, seed, checkpoint=partial / "checkpoint.pt", progress=progress,
                       desc="pre-training the tiny LM")
    staging = folder / "model.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(folder / "model", ignore_errors=True)
    staging.replace(folder / "model")
    n_params = sum(p.numel() for p in model.parameters())
    write_json_atomic(folder / MANIFEST, {**inputs, "key": key, "parameters": n_params, "blocks": len(blocks),
                                          "pool_tokens": int(blocks.numel()), "tokenizer": tok_s, "training": stats})
    shutil.rmtree(partial, ignore_errors=True)
    return folder


def load_pretrained(folder: str | Path) -> tuple[Any, Any, dict[str, Any]]:
    """The model (eval mode, fp32), tokenizer and manifest of a :func:`pretrain_from_scratch` folder."""
    import torch
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise GotdInputError(f"{folder} is not a pre-trained tiny model (no {MANIFEST}); run pretrain_from_scratch "
                             "first")
    model = AutoModelForCausalLM.from_pretrained(folder / "model", dtype=torch.float32).eval()
    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder / "model")
    return model, tokenizer, json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
