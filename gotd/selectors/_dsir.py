"""DSIR: importance resampling on hashed n-gram features (Xie et al., NeurIPS 2023).

Reproduces the reference package ``data-selection`` (p-lambda/dsir, ``data_selection.HashedNgramDSIR``,
version 1.0.3) feature for feature, vectorised: the package hashes every n-gram occurrence with
SHA-256 in Python; here each *distinct* n-gram is hashed once and the counts are numpy bincounts.
``tests/test_selectors_dsir.py`` runs both on the same texts.
"""
from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import regex
from tqdm.auto import tqdm

from gotd.errors import GotdInputError
from gotd.selection import Selection
from gotd.selectors._validation import check_fraction, check_positive_int

TOKEN_PATTERN = regex.compile(r"\w+|[^\w\s]+")
"""nltk's ``WordPunctTokenizer``: runs of word characters, or runs of other non-space characters.

The reference is the package as installed with current nltk, which compiles this pattern with the
``regex`` engine (``nltk.redos``): there ``\\w`` also matches combining marks, so "i̇zmir" (i + U+0307)
is one word. Python's ``re`` splits it into "i", "̇", "zmir" (as nltk did before it moved to ``regex``),
which changes the n-grams of any text with combining marks; ``regex`` is used here for that reason.
"""

PROBABILITY_FLOOR = 1e-8
"""The package's smoothing: added to each bucket probability before the log (not to the counts)."""


def _no_smoothing(smoothing: object) -> None:
    """``smoothing`` once meant add-one on the counts; its value now would mean something else: refuse it."""
    if smoothing is not None:
        raise GotdInputError(
            f"dsir: smoothing={smoothing!r} is no longer accepted: it used to be added to the bucket counts, and "
            "the constant added to the bucket probabilities is now called probability_floor (the package's "
            f"1e-8 by default); pass probability_floor=... instead (smoothing=1.0 as a probability floor would "
            "flatten every weight)")


def bucket_of(gram: str, num_buckets: int) -> int:
    """The package's hash bucket of an n-gram string: ``int(sha256(utf-8).hexdigest(), 16) % num_buckets``."""
    return int.from_bytes(hashlib.sha256(gram.encode("utf-8")).digest(), "big") % num_buckets


def _tokenize(texts: list[str], progress: bool, desc: str) -> tuple[list[str], np.ndarray]:
    """Tokens of all lower-cased texts concatenated, and the number of tokens of each text."""
    flat: list[str] = []
    lengths = np.empty(len(texts), dtype=np.int64)
    findall = TOKEN_PATTERN.findall
    for i, text in enumerate(tqdm(texts, desc=desc, unit="text", disable=not progress, leave=False)):
        tokens = findall(text.lower())
        flat.extend(tokens)
        lengths[i] = len(tokens)
    return flat, lengths


def _buckets_of(grams: list[str], num_buckets: int) -> list[int]:
    """:func:`bucket_of` of many strings (the loop inlined: it is the featuriser's hot spot)."""
    sha, to_int = hashlib.sha256, int.from_bytes
    return [to_int(sha(g.encode("utf-8")).digest(), "big") % num_buckets for g in grams]


def _ngram_buckets(tokens: np.ndarray, lengths: np.ndarray, words: list[str], ngrams: int,
                   num_buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """Bucket of every 1..``ngrams``-gram inside each text (as the package: the n tokens joined by a space).

    Each distinct n-gram is hashed once: n-grams get dense ids (order by order, from the pair
    (id of the (n-1)-gram at p, token at p+n-1)), and only the first occurrence of each id is hashed.

    Returns
    -------
    buckets, owners : numpy.ndarray of int64
        ``buckets[k]`` is the bucket of the k-th n-gram, ``owners[k]`` the row of its text.
    """
    owners_tok = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths)
    starts = np.cumsum(lengths) - lengths
    remaining = np.repeat(lengths, lengths) - (np.arange(tokens.size, dtype=np.int64) - np.repeat(starts, lengths))
    buckets, owners = [], []
    gram = tokens  # gram[p]: an id of the n-gram starting at token p (distinct n-grams, distinct ids)
    for order in range(1, ngrams + 1):
        if order == 1:
            table = np.asarray(_buckets_of(words, num_buckets), dtype=np.int64)
            valid = np.flatnonzero(remaining >= 1)
        else:
            if gram.size <= 1:
                break
            _, gram = np.unique(gram[:-1] * (len(words) + 1) + tokens[order - 1:], return_inverse=True)
            gram = gram.astype(np.int64).reshape(-1)
            valid = np.flatnonzero(remaining[: gram.size] >= order)
            ids, first = np.unique(gram[valid], return_index=True)
            table = np.zeros(int(gram.max()) + 1 if gram.size else 0, dtype=np.int64)
            start = valid[first]
            columns = [[words[t] for t in tokens[start + offset].tolist()] for offset in range(order)]
            table[ids] = _buckets_of([" ".join(parts) for parts in zip(*columns)], num_buckets)
        buckets.append(table[gram[valid]])
        owners.append(owners_tok[valid])
    if not buckets:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(buckets), np.concatenate(owners)


def _log_probs(buckets: np.ndarray, num_buckets: int, probability_floor: float, name: str) -> np.ndarray:
    counts = np.bincount(buckets, minlength=num_buckets).astype(np.float64)
    if counts.sum() == 0:
        raise GotdInputError(f"{name}: no text has a single token; DSIR needs words to count")
    return np.log(counts / counts.sum() + probability_floor)


def _features(pool: list[str], target: list[str], ngrams: int, num_buckets: int, progress: bool):
    """Buckets and owning rows of the pool's n-grams, the pool's token counts, and the target's buckets.

    Pool and target are featurised in one pass, so an n-gram they share is hashed once.
    """
    pool_tok, pool_len = _tokenize(pool, progress, "dsir: pool")
    target_tok, target_len = _tokenize(target, progress, "dsir: target")
    # token ids by a C hash table (pandas), words in first-seen order
    ids, words = pd.factorize(pd.Series(pool_tok + target_tok, dtype=object), sort=False)
    buckets, owners = _ngram_buckets(ids.astype(np.int64), np.concatenate([pool_len, target_len]),
                                     [str(w) for w in words], ngrams, num_buckets)
    in_pool = owners < pool_len.size
    return buckets[in_pool], owners[in_pool], pool_len, buckets[~in_pool]


def dsir_log_weights(pool: Sequence[str], target: Sequence[str], *, num_buckets: int = 10_000, ngrams: int = 2,
                     probability_floor: float = PROBABILITY_FLOOR, progress: bool = False,
                     smoothing: None = None) -> np.ndarray:
    """DSIR's log importance weight of every pool text, as ``data_selection.HashedNgramDSIR``.

    Each text is lower-cased and split by nltk's word-punct rule (``\\w+|[^\\w\\s]+``); its features are
    the counts :math:`c_j(h)` of the buckets :math:`h(z) = \\mathrm{sha256}(z) \\bmod B` of its 1..``ngrams``
    -grams (an n-gram is its tokens joined by one space). Bag-of-buckets models are fitted on the target
    texts, :math:`p_T`, and on all pool texts, :math:`p_R` (normalised counts), and

    .. math:: \\log w_j = \\sum_h c_j(h)\\,\\bigl[\\log(p_T(h) + s) - \\log(p_R(h) + s)\\bigr]

    with the package's :math:`s = 10^{-8}` (``probability_floor``) added to the probabilities. The package
    fits :math:`p_R` on at most :math:`10^5 B` pool n-grams ("auto"); this fits on all of them (the same
    below 10^9 n-grams). ``smoothing`` (once add-one on the counts) is refused, naming ``probability_floor``.

    Returns
    -------
    numpy.ndarray, shape (n,), float64
        Higher means more target-like relative to the pool; a text with no tokens gets 0.
    """
    _no_smoothing(smoothing)
    pool_buckets, owners, pool_len, target_buckets = _features(list(pool), list(target), ngrams, num_buckets, progress)
    log_ratio = (_log_probs(target_buckets, num_buckets, probability_floor, "target")
                 - _log_probs(pool_buckets, num_buckets, probability_floor, "pool"))
    return np.bincount(owners, weights=log_ratio[pool_buckets], minlength=pool_len.size)


def package_lengths(lengths: np.ndarray, ngrams: int) -> np.ndarray:
    """The package's example length: ``(features.sum() + n(n-1)/2) // n``, the token count for n <= 2."""
    n_features = sum(np.maximum(lengths - k + 1, 0) for k in range(1, ngrams + 1))
    return (n_features + ngrams * (ngrams - 1) // 2) // ngrams


def select_dsir(pool: list[str], target: list[str], budget: int, *, seed: int = 0, num_buckets: int = 10_000,
                ngrams: int = 2, probability_floor: float = PROBABILITY_FLOOR, min_length: int = 100,
                gumbel: bool = True, short_texts: Literal["last", "error"] = "last", progress: bool = False,
                smoothing: None = None) -> Selection:
    """DSIR: importance resampling of pool texts toward the target's hashed n-gram distribution.

    Computes :func:`dsir_log_weights` and, as the package's ``resample``, keeps the texts of at least
    ``min_length`` tokens and draws ``budget`` of them without replacement with probability proportional
    to the weights by the Gumbel top-k trick: the top ``budget`` of :math:`\\log w_j + G_j`, with the
    :math:`G_j` drawn by ``numpy.random.RandomState(seed).gumbel`` over the kept texts in pool order —
    the package's draws after ``numpy.random.seed(seed)``, so the selected set is the package's.
    ``gumbel=False`` is the package's ``top_k=True`` (the top-k of :math:`\\log w_j`).

    Short texts. The package drops texts under ``min_length`` tokens. Here they are ranked after every
    long text (in the order of their own Gumbel keys, drawn next from the same stream), so the first
    rows equal the package's selection and a budget larger than the number of long texts still gets
    ``budget`` rows: with ``short_texts="last"`` (default) that case warns and
    ``diagnostics["selected_short"]`` counts them; ``short_texts="error"`` raises instead.

    Parameters
    ----------
    pool, target : sequence of str
        Candidate and target texts.
    budget : int
    seed : int
        Seed of the Gumbel noise.
    num_buckets : int
        Hash buckets of the n-gram features (package: 10,000).
    ngrams : int
        Largest n-gram order (package: 2, unigrams and bigrams).
    probability_floor : float
        Constant added to each bucket probability before the log (package: 1e-8).
    min_length : int
        Texts with fewer tokens rank after all others (package: 100; 0 keeps all in one ranking).
    gumbel : bool
        Sample (True, the package's default) or take the top-k (False).
    short_texts : {"last", "error"}
        What a budget larger than the number of long texts does.
    progress : bool
        Show a progress bar over the texts.
    smoothing : None
        Refused: it once meant add-one on the counts; the probability constant is ``probability_floor``.

    Returns
    -------
    Selection
        ``scores`` / ``all_scores`` are log importance weights (higher is better). With Gumbel sampling
        the rank follows the perturbed weights, so ``scores`` are not sorted.

    References
    ----------
    Xie, Santurkar, Ma, Liang, "Data selection for language models via importance resampling",
    NeurIPS 2023; package ``data-selection`` 1.0.3.
    """
    _no_smoothing(smoothing)
    num_buckets = check_positive_int(num_buckets, "num_buckets")
    ngrams = check_positive_int(ngrams, "ngrams")
    probability_floor = check_fraction(probability_floor, "probability_floor (constant added to the bucket "
                                       "probabilities)", low=0.0, high=1.0, closed_low=False)
    if isinstance(min_length, bool) or not isinstance(min_length, (int, np.integer)) or min_length < 0:
        raise GotdInputError(f"min_length must be an int >= 0 (tokens), got {min_length!r}")
    if short_texts not in ("last", "error"):
        raise GotdInputError(f"short_texts must be 'last' or 'error', got {short_texts!r}")
    pool_buckets, owners, lengths, target_buckets = _features(pool, target, ngrams, num_buckets, progress)
    log_ratio = (_log_probs(target_buckets, num_buckets, probability_floor, "target")
                 - _log_probs(pool_buckets, num_buckets, probability_floor, "pool"))
    log_w = np.bincount(owners, weights=log_ratio[pool_buckets], minlength=lengths.size)
    long = package_lengths(lengths, ngrams) >= min_length
    n_long = int(long.sum())
    if budget > n_long and short_texts == "error":
        raise GotdInputError(f"dsir: only {n_long} of {len(pool)} pool texts have >= min_length={min_length} tokens, "
                             f"fewer than budget={budget}; lower the budget, lower min_length, or pass "
                             "short_texts='last'")
    rng = np.random.RandomState(seed)
    keys = log_w.copy()
    for group in (long, ~long):  # the long texts' noise first: the package's stream
        if gumbel:
            keys[group] += rng.gumbel(size=int(group.sum()))
    order = np.lexsort((np.arange(lengths.size), -keys, ~long))[:budget].astype(np.int64)
    selected_short = max(0, budget - n_long)
    if selected_short:
        warnings.warn(f"dsir: only {n_long} of {len(pool)} pool texts have >= min_length={min_length} tokens; the last "
                      f"{selected_short} selected rows are shorter texts, ranked after every long one (the package "
                      "would drop them); pass min_length=0 to rank all texts together", UserWarning, stacklevel=3)
    params = {"budget": budget, "seed": seed, "num_buckets": num_buckets, "ngrams": ngrams, "probability_floor": probability_floor,
              "min_length": int(min_length), "gumbel": bool(gumbel), "short_texts": short_texts,
              "tokenizer": "wordpunct (\\w+|[^\\w\\s]+, regex engine), lower-case", "hash": "sha256 mod num_buckets"}
    diagnostics = {"n_target": len(target), "n_short": int(lengths.size - n_long), "selected_short": selected_short,
                   "empty_pool_texts": int((lengths == 0).sum()), "reference": "data-selection 1.0.3 HashedNgramDSIR"}
    return Selection(indices=order, scores=log_w[order], method="dsir", params=params, diagnostics=diagnostics,
                     seed=seed, all_scores=log_w, score_name="log_importance_weight",
                     score_order="higher_is_better", n_pool=lengths.size)
