"""Token losses and perplexity of a causal LM on held-out texts, windowed so nothing is truncated."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from gotd.errors import GotdInputError
from gotd.evaluate._common import _bos, _check_texts, _device_of, _encode, _model_and_tokenizer, _model_name, _model_window, _pad_id, _progress, _table
from gotd.evaluate._stats import bootstrap_ci


def token_nll(model: Any, sequences: Sequence[Sequence[int]], *, score_from: Sequence[int] | None = None,
              batch_size: int = 8, pad_id: int = 0, progress: bool = False,
              desc: str = "scoring") -> tuple[np.ndarray, np.ndarray]:
    """Summed next-token loss of each token sequence and the number of tokens it covers.

    For sequence ``x`` the loss is ``sum_{t >= s} -log p(x_t | x_<t)`` in nats, where
    ``s = max(1, score_from[i])`` (the first token has no prediction).

    Parameters
    ----------
    model : transformers causal LM
    sequences : sequence of sequence of int
        Token ids, each at most the model's window long (not checked here).
    score_from : sequence of int, optional
        First scored position per sequence (default 1: every predicted token).
    batch_size : int
        Sequences per forward pass; sequences are sorted by length so that padding is small.
    pad_id : int
        Id written in padding positions (masked out; any valid id works).

    Returns
    -------
    nll : numpy.ndarray of float64, shape (n,)
    n_tokens : numpy.ndarray of int64, shape (n,)
    """
    import torch

    n = len(sequences)
    starts = np.ones(n, dtype=np.int64) if score_from is None else np.maximum(1, np.asarray(score_from, dtype=np.int64))
    nll = np.zeros(n, dtype=np.float64)
    counts = np.zeros(n, dtype=np.int64)
    order = sorted(range(n), key=lambda i: -len(sequences[i]))
    device = _device_of(model)
    was_training = model.training
    model.eval()
    bar = _progress(n, desc, progress)
    try:
        with torch.inference_mode():
            for lo in range(0, n, batch_size):
                batch = order[lo:lo + batch_size]
                width = max(len(sequences[i]) for i in batch)
                ids = torch.full((len(batch), width), int(pad_id), dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                scored = torch.zeros((len(batch), width), dtype=torch.bool)
                for row, i in enumerate(batch):
                    seq = sequences[i]
                    ids[row, :len(seq)] = torch.tensor(list(seq), dtype=torch.long)
                    mask[row, :len(seq)] = 1
                    scored[row, int(starts[i]):len(seq)] = True
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
                # position t-1 predicts token t; compute in fp32 whatever the model's dtype
                losses = torch.nn.functional.cross_entropy(
                    logits[:, :-1].float().transpose(1, 2), ids[:, 1:].to(device), reduction="none")
                keep = scored[:, 1:].to(device)
                sums = (losses * keep).sum(dim=1).double().cpu().numpy()
                kept = keep.sum(dim=1).cpu().numpy()
                for row, i in enumerate(batch):
                    nll[i] = sums[row]
                    counts[i] = kept[row]
                bar.update(len(batch))
    finally:
        bar.close()
        model.train(was_training)
    return nll, counts


def _windows(ids: list[int], window: int) -> list[list[int]]:
    """Split a token sequence into windows that overlap by one token, so every token after the first is
    predicted exactly once (with the context available inside its window)."""
    if len(ids) <= window:
        return [ids]
    step = window - 1
    return [ids[s:s + window] for s in range(0, len(ids) - 1, step)]


def _text_losses(model: Any, tokenizer: Any, texts: list[str], *, max_length: int, batch_size: int,
                 progress: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """Summed loss (nats) and scored tokens of each text, windowed as :func:`perplexity` says; and the
    number of windows."""
    limit = _model_window(model)
    if max_length < 2 or (limit is not None and max_length > limit):
        raise GotdInputError(f"max_length={max_length} must be in [2, {limit}] (the model's position limit)")
    encoded = [_bos(tokenizer) + ids for ids in _encode(tokenizer, texts)]
    windows: list[list[int]] = []
    owner: list[int] = []
    for i, ids in enumerate(encoded):
        for w in _windows(ids, max_length):
            windows.append(w)
            owner.append(i)
    sums, counts = token_nll(model, windows, batch_size=batch_size, pad_id=_pad_id(tokenizer), progress=progress,
                             desc="perplexity")
    per_text_nll = np.bincount(owner, weights=sums, minlength=len(texts))
    per_text_tokens = np.bincount(owner, weights=counts, minlength=len(texts)).astype(np.int64)
    return per_text_nll, per_text_tokens, len(windows)


def per_text_nll(model: Any, tokenizer: Any, texts: Sequence[str], *, max_length: int = 512, batch_size: int = 8,
                 progress: bool = True) -> pd.DataFrame:
    """The summed next-token loss and the scored tokens of every text: per-example losses for paired tests.

    The same windows as :func:`perplexity` (a document-start token in front, windows of ``max_length``
    tokens overlapping by one; nothing truncated), so that for texts ``i`` with loss sums ``L_i`` and
    token counts ``T_i``, ``perplexity = exp(sum_i L_i / sum_i T_i)``. Two models scored on the same
    texts give paired differences ``L_i(a) / T_i - L_i(b) / T_i`` (the tokenizer, hence ``T_i``, must be
    shared for the pairing to be per token).

    Parameters
    ----------
    model, tokenizer
        A causal LM and its tokenizer (or a model name/folder and ``tokenizer=None``).
    texts : sequence of str
        Non-empty texts.
    max_length : int
        Window length in tokens (at most the model's position limit).

    Returns
    -------
    pandas.DataFrame
        One row per text, in input order: ``text_index`` (int64), ``nll_sum`` (float64, nats),
        ``n_tokens`` (int64, scored tokens), ``nll_per_token`` (``nll_sum / n_tokens``, nats per token; NaN for a
        text with no scored token).
    """
    texts = _check_texts(texts, "texts")
    model, tokenizer, _ = _model_and_tokenizer(model, tokenizer)
    sums, tokens, _ = _text_losses(model, tokenizer, texts, max_length=max_length, batch_size=batch_size,
                                   progress=progress)
    return _per_text_frame(sums, tokens)


def _per_text_frame(sums: np.ndarray, tokens: np.ndarray) -> pd.DataFrame:
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(tokens > 0, sums / np.maximum(tokens, 1), np.nan)
    return pd.DataFrame({"text_index": np.arange(len(sums), dtype=np.int64), "nll_sum": sums.astype(np.float64),
                         "n_tokens": tokens.astype(np.int64), "nll_per_token": mean})


def perplexity(model: Any, tokenizer: Any, texts: Sequence[str], *, max_length: int = 512, batch_size: int = 8,
               model_name: str | None = None, task: str = "texts", n_bootstrap: int = 1000,
               confidence: float = 0.95, seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Token-weighted perplexity of a causal LM on held-out texts.

    Each text is tokenised with a document-start token in front (``<|endoftext|>`` when the vocabulary
    has it, else bos, else eos: :func:`gotd.models.document_prefix_ids`), so the first word is scored
    too, and split into windows of ``max_length`` tokens that overlap by one token: every token after
    the first is predicted exactly once, from the context inside its window.
    Nothing is truncated. With ``L`` the summed loss over all scored tokens of all texts and ``T`` their
    number, perplexity is ``exp(L / T)`` (token-weighted, not a mean of per-text perplexities).

    Parameters
    ----------
    model, tokenizer
        A causal LM and its tokenizer (or a model name/folder and ``tokenizer=None``).
    texts : sequence of str
        Held-out texts.
    max_length : int
        Window length in tokens (at most the model's position limit).
    n_bootstrap, confidence, seed
        Percentile bootstrap over texts for the interval of both rows.

    Returns
    -------
    pandas.DataFrame
        Rows ``perplexity`` and ``nll_per_token`` (nats per token), ``n`` = number of texts, plus ``n_tokens``
        (scored tokens) and ``n_windows``.
    """
    return perplexity_with_texts(model, tokenizer, texts, max_length=max_length, batch_size=batch_size,
                                 model_name=model_name, task=task, n_bootstrap=n_bootstrap, confidence=confidence,
                                 seed=seed, progress=progress)[0]


def perplexity_with_texts(model: Any, tokenizer: Any, texts: Sequence[str], *, max_length: int = 512,
                          batch_size: int = 8, model_name: str | None = None, task: str = "texts",
                          n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0,
                          progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`perplexity`'s table and, from the same forward passes, :func:`per_text_nll`'s frame."""
    texts = _check_texts(texts, "texts")
    model, tokenizer, name = _model_and_tokenizer(model, tokenizer)
    per_text_nll, per_text_tokens, n_windows = _text_losses(model, tokenizer, texts, max_length=max_length,
                                                            batch_size=batch_size, progress=progress)
    if per_text_tokens.sum() == 0:
        raise GotdInputError("no token to score: every text is a single token and the tokenizer has "
                             "no document-start token to put in front; give longer texts")

    def mean_nll(idx: np.ndarray) -> float:
        tokens = per_text_tokens[idx].sum()
        return float(per_text_nll[idx].sum() / tokens) if tokens else float("nan")

    nll = mean_nll(np.arange(len(texts)))
    low, high = bootstrap_ci(mean_nll, len(texts), n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
    common = {"model": _model_name(model, model_name or name), "task": task, "seed": seed, "n": len(texts),
              "n_tokens": int(per_text_tokens.sum()), "n_windows": n_windows, "max_length": max_length}
    table = _table([
        {**common, "metric": "perplexity", "value": math.exp(nll), "ci_low": math.exp(low), "ci_high": math.exp(high)},
        {**common, "metric": "nll_per_token", "value": nll, "ci_low": low, "ci_high": high},
    ])
    return table, _per_text_frame(per_text_nll, per_text_tokens)
