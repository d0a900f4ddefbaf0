"""Pre-training a tiny Llama from scratch on a set of texts, cached under a key of everything it depends on.

The tokenizer (:func:`gotd.models.train_bpe_tokenizer`, ``<bos>``/``<pad>``, pairs seen twice or more), the
model (:func:`gotd.models.new_tiny_llama`) and the plain loop (:func:`gotd.train.train_loop`) on the texts
packed into full blocks, each text preceded by ``<bos>``. The folder ``<cache_dir>/<key>/`` holds ``model/``
(``save_pretrained``, with the tokenizer) and ``manifest.json``; the key is the SHA-256 of the texts'
fingerprint and count, the held-out texts' fingerprint, the sizes, the recipe, the seed and the curve's
spacing, so a changed pool or recipe trains a new model. The library versions that trained a model are
recorded in its manifest, not keyed: the weights of a finished run stay valid under later versions. An
interrupted run resumes from ``partial/checkpoint.pt``; ``manifest.json`` is written last and is the one
sign of a finished model.

A folder of finished models shipped with the project (``shipped``, e.g. ``data/testbed-lm``) is searched
first: a model there with the same key is used in place, read-only, so a long pre-training done once (and
reproducible with the same call) need not be repeated on every machine.
"""
from __future__ import annotations

import hashlib
import math
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gotd._io import atomic_path, package_versions, write_json_atomic
from gotd.errors import GotdInputError
from gotd.models import TinyLlamaSize, encode_after_bos, new_tiny_llama, train_bpe_tokenizer
from gotd.train._loop import LoopRecipe, full_blocks, train_loop

BOS, PAD = "<bos>", "<pad>"
SPECIAL_TOKENS = {"bos_token": BOS, "pad_token": PAD}
MANIFEST = "manifest.json"
OPTIMIZER = "optimizer.pt"


def pretrain_from_scratch(texts: Sequence[str], cache_dir: str | Path, *, size: TinyLlamaSize = TinyLlamaSize(),
                          recipe: LoopRecipe = LoopRecipe(), seed: int = 0, progress: bool = True,
                          heldout: Sequence[str] = (), evaluate_every: int = 0,
                          shipped: str | Path | None = None) -> Path:
    """Train (or reuse) a tokenizer and a tiny Llama on ``texts``; return the model's cache folder.

    See the module docstring for the folder and its key. With ``heldout`` texts (same distribution, other
    documents) the manifest's ``training.curve`` holds their NLL (nats/token, the texts cut to one block)
    before training, every ``evaluate_every`` steps and at the end, and ``references`` the unigram and
    bigram perplexities of the same held-out tokens (:func:`ngram_reference_nll`): the learning curve
    that shows whether pre-training reached a plateau and beat the n-gram baselines. The final AdamW
    state is saved as ``optimizer.pt`` (:func:`load_optimizer_state`) so a light warm-up can continue it.
    ``shipped`` is a folder of finished models searched before ``cache_dir`` (module docstring). Raises :class:`~gotd.errors.GotdInputError` when ``texts`` is empty.
    """
    from gotd.data import texts_fingerprint

    if not texts:
        raise GotdInputError("pretrain_from_scratch got no texts; pass the pool's texts")
    versions = dict(package_versions(("torch", "transformers", "tokenizers")))
    inputs = {"pool_sha256": texts_fingerprint(texts), "n_texts": len(texts), "size": asdict(size),
              "recipe": asdict(recipe), "seed": seed,
              "heldout_sha256": texts_fingerprint(list(heldout)) if heldout else None,
              "evaluate_every": evaluate_every}
    key = pretraining_key(inputs)
    for root in ([Path(shipped)] if shipped else []) + [Path(cache_dir)]:
        if is_finished(root / key):
            return root / key
    folder = Path(cache_dir) / key
    partial = folder / "partial"
    partial.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.perf_counter(), time.process_time()
    tokenizer = train_bpe_tokenizer(texts, size.vocab_size, special_tokens=SPECIAL_TOKENS, min_frequency=2)
    blocks = full_blocks(encode_after_bos(tokenizer, texts), size.block_size)
    tok_s = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}
    model = new_tiny_llama(size, len(tokenizer), seed)
    references: dict[str, float] = {}
    evaluate = None
    if heldout:
        from gotd.evaluate import per_text_nll

        held_ids = [ids[:size.block_size] for ids in encode_after_bos(tokenizer, list(heldout))]
        references = ngram_reference_nll([list(b) for b in blocks.tolist()], held_ids, len(tokenizer))

        def evaluate() -> float:
            scores = per_text_nll(model, tokenizer, list(heldout), max_length=size.block_size, batch_size=64,
                                  progress=False)
            return float(scores["nll_sum"].sum() / scores["n_tokens"].sum())
    stats = train_loop(model, blocks, recipe, seed, checkpoint=partial / "checkpoint.pt", progress=progress,
                       desc="pre-training the tiny LM", evaluate=evaluate, evaluate_every=evaluate_every,
                       keep_optimizer=True)
    import torch

    with atomic_path(folder / OPTIMIZER) as tmp:
        torch.save(stats.pop("optimizer_state"), tmp)
    staging = folder / "model.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(folder / "model", ignore_errors=True)
    staging.replace(folder / "model")
    n_params = sum(p.numel() for p in model.parameters())
    write_json_atomic(folder / MANIFEST, {**inputs, "versions": versions, "key": key, "parameters": n_params, "blocks": len(blocks),
                                          "pool_tokens": int(blocks.numel()), "tokenizer": tok_s, "training": stats,
                                          "references": references})
    shutil.rmtree(partial, ignore_errors=True)
    return folder


def pretraining_key(inputs: dict[str, Any]) -> str:
    """The cache key of a pre-training: the first 16 hex digits of the SHA-256 of its inputs as sorted JSON."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def is_finished(folder: Path) -> bool:
    """True when ``folder`` holds a finished pre-training: manifest, model config and optimizer state."""
    return (folder / MANIFEST).is_file() and (folder / "model" / "config.json").is_file() \
        and (folder / OPTIMIZER).is_file()


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


def load_optimizer_state(folder: str | Path) -> dict[str, Any]:
    """The AdamW state at the end of a :func:`pretrain_from_scratch` run (for :func:`gotd.train.train_loop`)."""
    import torch

    path = Path(folder) / OPTIMIZER
    if not path.is_file():
        raise GotdInputError(f"{folder} has no {OPTIMIZER}: pre-train again with this version of gotd")
    return torch.load(path, weights_only=False)


def ngram_reference_nll(train_ids: Sequence[Sequence[int]], heldout_ids: Sequence[Sequence[int]],
                        vocab_size: int) -> dict[str, float]:
    """Unigram and bigram reference NLLs (nats/token) and perplexities of ``heldout_ids`` under ``train_ids``.

    Scored on the same positions as the LM (every token after the first of each held-out sequence).
    Unigram: add-one counts, :math:`p(w) = (c_w + 1) / (N + V)`. Bigram: interpolated with the unigram,
    :math:`p(w|v) = \\lambda c_{vw}/c_v + (1 - \\lambda) p(w)` with :math:`\\lambda = c_v / (c_v + 5)`
    (Witten-Bell-like, no tuning on the held-out text). An LM that does not beat the bigram has learnt little
    of its pool.
    """
    import numpy as np

    flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in train_ids if len(s)])
    uni = np.bincount(flat, minlength=vocab_size).astype(np.float64)
    p_uni = (uni + 1.0) / (uni.sum() + vocab_size)
    pairs: dict[tuple[int, int], int] = {}
    prev_counts = np.zeros(vocab_size)
    for s in train_ids:
        for a, b in zip(s[:-1], s[1:]):
            pairs[(a, b)] = pairs.get((a, b), 0) + 1
            prev_counts[a] += 1
    nll_u = nll_b = 0.0
    n = 0
    for s in heldout_ids:
        for a, b in zip(s[:-1], s[1:]):
            nll_u -= math.log(p_uni[b])
            c_v = prev_counts[a]
            lam = c_v / (c_v + 5.0)
            p = (lam * pairs.get((a, b), 0) / c_v if c_v else 0.0) + (1 - lam) * p_uni[b]
            nll_b -= math.log(p)
            n += 1
    n = max(n, 1)
    return {"unigram_nll": nll_u / n, "bigram_nll": nll_b / n, "unigram_ppl": math.exp(nll_u / n),
            "bigram_ppl": math.exp(nll_b / n), "n_tokens": n}
