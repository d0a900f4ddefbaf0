"""Data selectors behind one interface: pick ``budget`` pool rows for a target.

>>> idx = select(pool_embeddings, target_embeddings, 1000, method="gotd")          # doctest: +SKIP
>>> sel = run_selector(pool_texts, target_texts, 1000, method="dsir", seed=1)      # doctest: +SKIP

Every selector returns row indices into the pool, best first, without repeats, deterministic for a
seed; ties are broken by the lower row index. Embedding selectors (``gotd``, ``gotd_contrast``, ``knn``,
``matching``) take (n, d) and (m, d) float arrays (numpy or torch); ``dsir`` takes sequences of strings;
``random`` only needs the pool's length.

========================  ==========================================================================
method                    selects
========================  ==========================================================================
``gotd``                  the most negative calibrated gradients of OT(pool, target) (Kang et al. 2024)
``gotd_contrast``         the most positive gradients w.r.t. a negative target set (paper's GOT-D_contrast)
``random``                a uniform sample without replacement
``dsir``                  importance resampling on hashed n-gram features (Xie et al. 2023)
``knn``                   each target's nearest candidates, round-robin (curated TAPT, Gururangan et al. 2020)
``matching``              the candidates closest on average to their nearest targets (distribution matching)
========================  ==========================================================================

New selectors can be registered in :data:`SELECTORS`: a callable
``fn(pool, target, budget, *, seed, **options) -> Selection``.
"""
from __future__ import annotations

import hashlib
import inspect
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from gotd.errors import GotdInputError
from gotd.selection import Selection

Selector = Callable[..., Selection]

_BLOCK_ELEMENTS = 1 << 24
"""Largest distance block (rows x columns) the nearest-neighbour selectors compute at once (128 MiB in float64)."""

_TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32}


# ---------------------------------------------------------------------------------------------------
# the public interface
# ---------------------------------------------------------------------------------------------------


def select(pool: Any, target: Any, budget: int, *, method: str = "gotd", seed: int = 0, **options: Any) -> np.ndarray:
    """Row indices of the ``budget`` pool rows that ``method`` selects for ``target``, best first.

    Parameters
    ----------
    pool : array-like (n, d) or sequence of str
        Candidate embeddings (numpy or torch) or, for ``dsir``, candidate texts.
    target : array-like (m, d) or sequence of str
        Target embeddings or texts, same kind as ``pool`` (ignored by ``random``).
    budget : int
        Number of rows to select, ``1 <= budget <= n``.
    method : str
        One of :func:`available_methods`.
    seed : int
        Seed of any randomness (recorded for every method).
    **options
        Options of the method (see each ``select_<method>`` function); unknown names raise.

    Returns
    -------
    numpy.ndarray of int64, shape (budget,)
        Pool row indices, best first, no repeats.
    """
    return run_selector(pool, target, budget, method=method, seed=seed, **options).indices


def run_selector(pool: Any, target: Any, budget: int, *, method: str = "gotd", seed: int = 0,
                 **options: Any) -> Selection:
    """Run a selector and return the full record: indices, scores, parameters and diagnostics.

    Same arguments as :func:`select`.
    """
    selector = _lookup(method)
    seed = _check_seed(seed)
    _check_option_names(method, selector, options)
    selection = selector(pool, target, budget, seed=seed, **options)
    _check_result(method, selection, budget)
    return selection


def available_methods() -> list[str]:
    """Names of the registered selectors, sorted."""
    return sorted(SELECTORS)


# ---------------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------------


def _lookup(method: str) -> Selector:
    if method not in SELECTORS:
        raise GotdInputError(f"unknown selection method {method!r}; choose one of {', '.join(available_methods())}")
    return SELECTORS[method]


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise GotdInputError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def _option_names(selector: Selector) -> tuple[set[str], bool]:
    """Keyword options a selector accepts, and whether it forwards more (``**options``) it checks itself."""
    names: set[str] = set()
    forwards = False
    for name, param in inspect.signature(selector).parameters.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            forwards = True
        elif param.kind is inspect.Parameter.KEYWORD_ONLY and name != "seed":
            names.add(name)
    return names, forwards


def _check_option_names(method: str, selector: Selector, options: dict[str, Any]) -> None:
    names, forwards = _option_names(selector)
    unknown = sorted(set(options) - names)
    if unknown and not forwards:
        raise GotdInputError(f"method {method!r} has no option(s) {', '.join(map(repr, unknown))}; "
                             f"its options are {', '.join(sorted(names)) or '(none)'}")


def _check_result(method: str, selection: Selection, budget: int) -> None:
    if selection.budget != budget:
        raise RuntimeError(f"selector {method!r} returned {selection.budget} rows for a budget of {budget}")


def _check_budget(budget: Any, n: int) -> int:
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)):
        raise GotdInputError(f"budget must be an int number of pool rows, got {budget!r} ({type(budget).__name__}); "
                             f"for a fraction of the pool pass round(fraction * {n})")
    if not 1 <= budget <= n:
        raise GotdInputError(f"budget={budget} is outside [1, n={n}] for a pool of n={n} rows; "
                             f"choose a budget between 1 and {n} or add candidates to the pool")
    return int(budget)


def _check_embeddings(x: Any, name: str) -> np.ndarray | torch.Tensor:
    """Return ``x`` as a float numpy array or torch tensor after checking it is a finite non-empty matrix."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
            raise GotdInputError(f"{name}: expected a float tensor, got dtype {t.dtype}")
        _check_matrix_shape(tuple(t.shape), name)
        finite = torch.isfinite(t).all(dim=1) if t.is_floating_point() else torch.ones(t.shape[0], dtype=torch.bool)
        if not bool(finite.all()):
            bad = int((~finite).nonzero()[0, 0])
            raise GotdInputError(f"{name}: row {bad} holds NaN or infinite values; drop or re-embed that row")
        return t if t.is_floating_point() else t.double()
    if isinstance(x, str) or (isinstance(x, Sequence) and x and isinstance(x[0], str)):
        raise GotdInputError(f"{name}: got text, but this method works on embeddings; embed the texts first "
                             "(gotd.embed) or use method='dsir' for raw text")
    try:
        a = np.asarray(x)
        if a.dtype.kind not in "fiu":
            raise TypeError(f"dtype {a.dtype}")
        if a.dtype.kind != "f":
            a = a.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise GotdInputError(f"{name}: expected a numeric (rows, features) array, "
                             f"got {type(x).__name__} ({exc})") from None
    _check_matrix_shape(a.shape, name)
    finite = np.isfinite(a).all(axis=1)
    if not finite.all():
        raise GotdInputError(f"{name}: row {int(np.flatnonzero(~finite)[0])} holds NaN or infinite values; "
                             "drop or re-embed that row")
    return a


def _check_matrix_shape(shape: tuple[int, ...], name: str) -> None:
    if len(shape) != 2:
        raise GotdInputError(f"{name}: expected a 2-D array (rows, features), got shape {shape}; "
                             "reshape a single vector with x[None, :]")
    if shape[0] == 0 or shape[1] == 0:
        raise GotdInputError(f"{name}: has shape {shape}; it needs at least one row and one feature")


def _check_pair(pool: Any, target: Any, target_name: str = "target", pool_name: str = "pool") -> tuple[Any, Any]:
    x = _check_embeddings(pool, pool_name)
    y = _check_embeddings(target, target_name)
    if x.shape[1] != y.shape[1]:
        raise GotdInputError(f"{pool_name} has {x.shape[1]} features per row but {target_name} has {y.shape[1]}; "
                             "embed both with the same encoder")
    return x, y


def _check_texts(texts: Any, name: str) -> list[str]:
    if isinstance(texts, str):
        raise GotdInputError(f"{name}: got a single string; pass a sequence of texts, e.g. [text]")
    if isinstance(texts, (np.ndarray, torch.Tensor)) and texts.ndim == 2:
        raise GotdInputError(f"{name}: got an embedding matrix, but dsir works on raw text; pass the texts")
    try:
        items = list(texts)
    except TypeError:
        raise GotdInputError(f"{name}: expected a sequence of texts, got {type(texts).__name__}") from None
    if not items:
        raise GotdInputError(f"{name}: has no texts; pass at least one")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise GotdInputError(f"{name}[{i}]: expected a string, got {type(item).__name__} ({item!r:.40}); "
                                 "drop missing texts before selecting")
    return items


def _check_positive_int(value: Any, name: str, *, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise GotdInputError(f"{name} must be an int >= 1, got {value!r}")
    if maximum is not None and value > maximum:
        raise GotdInputError(f"{name}={value} exceeds {maximum}; choose a value <= {maximum}")
    return int(value)


def _rank(scores: np.ndarray, *, higher_is_better: bool) -> np.ndarray:
    """Row indices sorted best first; equal scores keep index order (stable sort)."""
    keys = -scores if higher_is_better else scores
    return np.argsort(keys, kind="stable").astype(np.int64)


# ---------------------------------------------------------------------------------------------------
# GOT-D
# ---------------------------------------------------------------------------------------------------


def _ot_option_names() -> set[str]:
    from gotd.ot import sinkhorn

    names = {n for n, p in inspect.signature(sinkhorn).parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    return names | {"subsample"}


def _ot_defaults() -> dict[str, Any]:
    from gotd.ot import sinkhorn

    defaults = {n: p.default for n, p in inspect.signature(sinkhorn).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not inspect.Parameter.empty
                and n not in ("a", "b")}
    return {**defaults, "subsample": None}


def _ot_gradients(pool: Any, target: Any, seed: int, options: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """Calibrated OT gradients of every pool row w.r.t. ``target`` and the solve's diagnostics."""
    from gotd.ot import ot_gradients_with_diagnostics

    unknown = sorted(set(options) - _ot_option_names())
    if unknown:
        raise GotdInputError(f"unknown OT option(s) {', '.join(map(repr, unknown))}; the OT options are "
                             f"{', '.join(sorted(_ot_option_names()))} (see gotd.ot.sinkhorn)")
    return ot_gradients_with_diagnostics(pool, target, seed=seed, **options)


def _json_safe_params(options: dict[str, Any]) -> dict[str, Any]:
    # Weight arrays and devices are recorded by summary, not element by element.
    out: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, (np.ndarray, torch.Tensor)):
            out[key] = f"<array shape {tuple(value.shape)}>"
        elif isinstance(value, torch.device):
            out[key] = str(value)
        else:
            out[key] = value
    return out


def select_gotd(pool: Any, target: Any, budget: int, *, seed: int = 0, **ot_options: Any) -> Selection:
    """GOT-D: the candidates whose extra mass most decreases OT(pool, target).

    Solves one entropic OT problem between all candidates (uniform weights) and the target with the
    squared Euclidean cost, takes LAVA's calibrated gradient of each candidate's mass,
    :math:`\\tilde g_j = f_j - \\frac{1}{n-1}\\sum_{i \\neq j} f_i` (cost units), and selects the ``budget``
    most negative. Unlike distribution matching this favours the parts of the target that the pool
    under-represents.

    Parameters
    ----------
    pool, target : array-like, shapes (n, d) and (m, d)
        Candidate and target embeddings (numpy or torch).
    budget : int
    seed : int
        Used only with ``subsample`` (which candidates the solve sees).
    **ot_options
        Keywords of :func:`gotd.ot.sinkhorn` (``eps``, ``eps_rel``, ``tol``, ``max_iter``, ``device``,
        ``progress``...) and ``subsample`` (solve on a random subset, score all by the c-transform).

    Returns
    -------
    Selection
        ``scores`` / ``all_scores`` are calibrated gradients (lower is better); ``diagnostics`` is the
        solve's (eps, eps_rel, iterations, marginal_error, converged...).

    References
    ----------
    Kang et al., "Get more for less: principled data selection for warming up fine-tuning in LLMs",
    ICLR 2024.
    """
    x, y = _check_pair(pool, target)
    budget = _check_budget(budget, x.shape[0])
    gradients, diagnostics = _ot_gradients(x, y, seed, ot_options)
    order = _rank(gradients, higher_is_better=False)[:budget]
    params = {"budget": budget, "seed": seed, **_ot_defaults(), **_json_safe_params(ot_options)}
    return Selection(indices=order, scores=gradients[order], method="gotd", params=params,
                     diagnostics=diagnostics, seed=seed, all_scores=gradients, score_name="calibrated_gradient",
                     score_order="lower_is_better", n_pool=x.shape[0])


def _zscore(v: np.ndarray) -> np.ndarray:
    std = v.std()
    return (v - v.mean()) / std if std > 0 else np.zeros_like(v)


def select_gotd_contrast(pool: Any, target: Any, budget: int, *, seed: int = 0, positive: Any = None,
                         **ot_options: Any) -> Selection:
    """GOT-D_contrast: the candidates whose extra mass moves the pool furthest from a negative set.

    ``target`` is the NEGATIVE set (e.g. embeddings of toxic text). With calibrated gradients
    :math:`\\tilde g^-_j` of OT(pool, negative), the selection is the ``budget`` MOST POSITIVE: adding
    these candidates' mass increases the pool's distance to the negative set the most.

    With ``positive`` (embeddings of a desired target set), both problems are solved and the score is
    :math:`z(\\tilde g^-)_j - z(\\tilde g^+)_j`, each gradient vector z-scored over the pool so the two
    problems weigh equally: high means far from the negative set and close to the positive one.

    The paper (Kang et al. 2024, detoxification experiments) describes GOT-D_contrast but released no
    code for it; this follows the paper's description.

    Parameters
    ----------
    pool, target : array-like, shapes (n, d) and (m, d)
        Candidate embeddings and the negative set.
    budget : int
    seed : int
        Used only with ``subsample``.
    positive : array-like, shape (p, d), optional
        A desired target set to move toward at the same time.
    **ot_options
        As :func:`select_gotd`; the same options are used for both solves.

    Returns
    -------
    Selection
        Scores are higher-is-better; diagnostics hold the solve's diagnostics, under ``"negative"`` and
        ``"positive"`` when ``positive`` is given.
    """
    x, negative = _check_pair(pool, target, "target (negative set)")
    budget = _check_budget(budget, x.shape[0])
    grad_neg, diag_neg = _ot_gradients(x, negative, seed, ot_options)
    params = {"budget": budget, "seed": seed, "positive": None, **_ot_defaults(), **_json_safe_params(ot_options)}
    if positive is None:
        scores, diagnostics, score_name = grad_neg, diag_neg, "calibrated_gradient_wrt_negative"
    else:
        _, pos = _check_pair(x, positive, "positive")
        grad_pos, diag_pos = _ot_gradients(x, pos, seed, ot_options)
        scores = _zscore(grad_neg) - _zscore(grad_pos)
        diagnostics = {"negative": diag_neg, "positive": diag_pos}
        score_name = "zscore_gradient_negative_minus_positive"
        params["positive"] = f"<array shape {tuple(pos.shape)}>"
    order = _rank(scores, higher_is_better=True)[:budget]
    return Selection(indices=order, scores=scores[order], method="gotd_contrast", params=params,
                     diagnostics=diagnostics, seed=seed, all_scores=scores, score_name=score_name,
                     score_order="higher_is_better", n_pool=x.shape[0])


# ---------------------------------------------------------------------------------------------------
# random
# ---------------------------------------------------------------------------------------------------


def select_random(pool: Any, target: Any, budget: int, *, seed: int = 0) -> Selection:
    """A uniform sample of ``budget`` pool rows without replacement: the first rows of a seeded permutation.

    ``pool`` may be embeddings or texts (only its length is used); ``target`` is ignored. Nested budgets
    are prefixes of the same permutation. ``scores`` are the positions 0..budget-1 (lower first).
    """
    try:
        n = len(pool)
    except TypeError:
        raise GotdInputError(f"pool: expected embeddings or texts with a length, got {type(pool).__name__}") from None
    if n == 0:
        raise GotdInputError("pool: is empty; pass at least one candidate")
    budget = _check_budget(budget, n)
    order = np.random.default_rng(seed).permutation(n)[:budget].astype(np.int64)
    return Selection(indices=order, scores=np.arange(budget, dtype=np.float64), method="random",
                     params={"budget": budget, "seed": seed}, diagnostics={}, seed=seed, all_scores=None,
                     score_name="permutation_position", score_order="lower_is_better", n_pool=n)


# ---------------------------------------------------------------------------------------------------
# DSIR: importance resampling on hashed n-grams
# ---------------------------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")
_U64 = np.uint64


def _token_hash(token: str) -> int:
    """Stable 64-bit hash of a token (blake2b), independent of Python's per-process salted ``hash``."""
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little")


def _mix(h: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """Combine the hash of an n-gram prefix with the next token's hash (splitmix64 finaliser), uint64."""
    with np.errstate(over="ignore"):
        x = h * _U64(0x9E3779B97F4A7C15) + nxt
        x ^= x >> _U64(30)
        x *= _U64(0xBF58476D1CE4E5B9)
        x ^= x >> _U64(27)
        x *= _U64(0x94D049BB133111EB)
        x ^= x >> _U64(31)
    return x


class _Vocabulary:
    """Token -> stable hash, computed once per distinct token."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def encode(self, texts: list[str], progress: bool, desc: str) -> tuple[np.ndarray, np.ndarray]:
        """Token ids of all texts concatenated, and the number of tokens of each text."""
        ids = self.ids
        flat: list[int] = []
        lengths = np.empty(len(texts), dtype=np.int64)
        for i, text in enumerate(tqdm(texts, desc=desc, unit="text", disable=not progress, leave=False)):
            tokens = _WORD.findall(text.lower())
            flat.extend([ids.setdefault(t, len(ids)) for t in tokens])
            lengths[i] = len(tokens)
        return np.asarray(flat, dtype=np.int64), lengths

    def hashes(self) -> np.ndarray:
        return np.fromiter((_token_hash(t) for t in self.ids), dtype=np.uint64, count=len(self.ids))


def _ngram_buckets(token_hashes: np.ndarray, lengths: np.ndarray, ngrams: int,
                   num_buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """Hash buckets of every 1..ngrams-gram of every text, and the text each n-gram belongs to.

    Returns
    -------
    buckets, owners : numpy.ndarray of int64
        ``buckets[k]`` is the bucket of the k-th n-gram, ``owners[k]`` the row of its text.
    """
    owners_tok = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths)
    starts = np.cumsum(lengths) - lengths
    position = np.arange(token_hashes.size, dtype=np.int64) - np.repeat(starts, lengths)
    remaining = np.repeat(lengths, lengths) - position  # tokens from this one to the end of its text
    buckets, owners = [], []
    gram = token_hashes
    for order in range(1, ngrams + 1):
        if order > 1:
            # n-gram at token i = (n-1)-gram at i combined with token i+n-1; only where it fits in the text.
            gram = _mix(gram[:-1], token_hashes[order - 1:])
        valid = remaining[: gram.size] >= order
        buckets.append((gram[valid] % _U64(num_buckets)).astype(np.int64))
        owners.append(owners_tok[: gram.size][valid])
    return np.concatenate(buckets), np.concatenate(owners)


def _smoothed_log_probs(buckets: np.ndarray, num_buckets: int, smoothing: float) -> np.ndarray:
    """log p(bucket) of a categorical model with additive smoothing: (count + s) / (total + s * B)."""
    counts = np.bincount(buckets, minlength=num_buckets).astype(np.float64)
    return np.log(counts + smoothing) - math.log(counts.sum() + smoothing * num_buckets)


def dsir_log_weights(pool: Sequence[str], target: Sequence[str], *, num_buckets: int = 10_000, ngrams: int = 2,
                     smoothing: float = 1.0, progress: bool = False) -> np.ndarray:
    """DSIR's log importance weight of every pool text.

    Each text is lower-cased, split into words (``\\w+``) and represented by the hashed buckets of its
    1..``ngrams``-grams. Two categorical models over the buckets are fitted with additive smoothing
    ``s``: the target model :math:`p_T` on the target texts and the raw model :math:`p_R` on the pool.
    The log importance weight of text j is

    .. math:: \\log w_j = \\sum_{z \\in \\text{n-grams}(j)} \\log p_T(h(z)) - \\log p_R(h(z)).

    Hashing is stable across processes (blake2b of each token, n-grams by a fixed 64-bit mix).

    Returns
    -------
    numpy.ndarray, shape (n,), float64
        Higher means more target-like relative to the pool; a text with no words gets 0.
    """
    vocab = _Vocabulary()
    pool_ids, pool_len = vocab.encode(list(pool), progress, "dsir: pool")
    target_ids, target_len = vocab.encode(list(target), progress, "dsir: target")
    token_hash = vocab.hashes()
    pool_buckets, owners = _ngram_buckets(token_hash[pool_ids], pool_len, ngrams, num_buckets)
    target_buckets, _ = _ngram_buckets(token_hash[target_ids], target_len, ngrams, num_buckets)
    log_ratio = (_smoothed_log_probs(target_buckets, num_buckets, smoothing)
                 - _smoothed_log_probs(pool_buckets, num_buckets, smoothing))
    return np.bincount(owners, weights=log_ratio[pool_buckets], minlength=len(pool_len))


def select_dsir(pool: Sequence[str], target: Sequence[str], budget: int, *, seed: int = 0,
                num_buckets: int = 10_000, ngrams: int = 2, smoothing: float = 1.0, gumbel: bool = True,
                progress: bool = False) -> Selection:
    """DSIR: importance resampling of pool texts toward the target's hashed n-gram distribution.

    Computes :func:`dsir_log_weights` and resamples ``budget`` texts without replacement with
    probability proportional to the weights by the Gumbel top-k trick: the top ``budget`` of
    :math:`\\log w_j + G_j` with :math:`G_j` i.i.d. standard Gumbel (seeded). With ``gumbel=False`` the
    selection is the deterministic top-k of :math:`\\log w_j`.

    Parameters
    ----------
    pool, target : sequence of str
        Candidate and target texts.
    budget : int
    seed : int
        Seed of the Gumbel noise.
    num_buckets : int
        Hash buckets of the n-gram features (DSIR: 10,000).
    ngrams : int
        Largest n-gram order (2: unigrams and bigrams, as in DSIR).
    smoothing : float
        Additive smoothing of both bucket models (> 0).
    gumbel : bool
        Sample (True, DSIR) or take the top-k (False).
    progress : bool
        Show a progress bar over the texts.

    Returns
    -------
    Selection
        ``scores`` / ``all_scores`` are log importance weights (higher is better). With Gumbel sampling
        the rank follows the perturbed weights, so ``scores`` are not sorted.

    References
    ----------
    Xie, Santurkar, Ma, Liang, "Data selection for language models via importance resampling",
    NeurIPS 2023.
    """
    texts = _check_texts(pool, "pool")
    target_texts = _check_texts(target, "target")
    budget = _check_budget(budget, len(texts))
    num_buckets = _check_positive_int(num_buckets, "num_buckets")
    ngrams = _check_positive_int(ngrams, "ngrams")
    if not (isinstance(smoothing, (int, float)) and math.isfinite(smoothing) and smoothing > 0):
        raise GotdInputError("smoothing must be a finite number > 0 (additive smoothing of the bucket counts), "
                             f"got {smoothing!r}")
    log_w = dsir_log_weights(texts, target_texts, num_buckets=num_buckets, ngrams=ngrams,
                             smoothing=float(smoothing), progress=progress)
    keys = log_w + np.random.default_rng(seed).gumbel(size=log_w.size) if gumbel else log_w
    order = _rank(keys, higher_is_better=True)[:budget]
    params = {"budget": budget, "seed": seed, "num_buckets": num_buckets, "ngrams": ngrams,
              "smoothing": float(smoothing), "gumbel": bool(gumbel), "tokenizer": r"lower-case, \w+"}
    diagnostics = {"n_target": len(target_texts), "empty_pool_texts": int(sum(1 for t in texts if not _WORD.search(t)))}
    return Selection(indices=order, scores=log_w[order], method="dsir", params=params, diagnostics=diagnostics,
                     seed=seed, all_scores=log_w, score_name="log_importance_weight",
                     score_order="higher_is_better", n_pool=len(texts))


# ---------------------------------------------------------------------------------------------------
# nearest neighbours in blocks (knn, matching)
# ---------------------------------------------------------------------------------------------------


def _resolve_device(device: str | torch.device | None) -> torch.device:
    return torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _resolve_dtype(dtype: str) -> torch.dtype:
    if dtype not in _TORCH_DTYPES:
        raise GotdInputError(f"dtype must be one of {', '.join(_TORCH_DTYPES)}, got {dtype!r}")
    return _TORCH_DTYPES[dtype]


def _to_torch(x: np.ndarray | torch.Tensor, rows: slice, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    block = x[rows]
    block = block if isinstance(block, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(block))
    return block.to(device=device, dtype=dtype)


def _lexsort_rows(values: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort each row by (value, index): two stable sorts, least significant key first."""
    by_index = torch.argsort(index, dim=1, stable=True)
    values, index = values.gather(1, by_index), index.gather(1, by_index)
    by_value = torch.argsort(values, dim=1, stable=True)
    return values.gather(1, by_value), index.gather(1, by_value)


def _smallest_k_in_block(dist: torch.Tensor, offset: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k smallest entries of each row and their column indices (+ offset), ties to the lower index.

    ``topk`` alone picks arbitrarily among values equal to the k-th smallest; keeping every value below
    it plus the lowest-index equal ones makes the choice exact.
    """
    kth = torch.topk(dist, k, dim=1, largest=False).values[:, -1:]
    below = dist < kth
    equal = dist == kth
    needed = k - below.sum(dim=1, keepdim=True)
    keep = below | (equal & (torch.cumsum(equal, dim=1) <= needed))
    columns = torch.arange(dist.shape[1], device=dist.device).expand_as(dist)
    values = dist[keep].view(dist.shape[0], k)
    index = columns[keep].view(dist.shape[0], k) + offset
    return values, index


def _merge_smallest(best: tuple[torch.Tensor, torch.Tensor], new: tuple[torch.Tensor, torch.Tensor],
                    k: int) -> tuple[torch.Tensor, torch.Tensor]:
    values, index = _lexsort_rows(torch.cat([best[0], new[0]], dim=1), torch.cat([best[1], new[1]], dim=1))
    return values[:, :k], index[:, :k]


def _squared_distances(a: torch.Tensor, a_sq: torch.Tensor, b: torch.Tensor, b_sq: torch.Tensor) -> torch.Tensor:
    """||a_i - b_j||^2 = ||a_i||^2 + ||b_j||^2 - 2 a_i.b_j, clipped at 0 against rounding."""
    return (a_sq[:, None] + b_sq[None, :] - 2.0 * (a @ b.T)).clamp_(min=0.0)


def nearest_neighbours(queries: Any, refs: Any, k: int, *, device: str | torch.device | None = None,
                       dtype: str = "float64", max_block_elements: int = _BLOCK_ELEMENTS,
                       progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest ``refs`` rows of every ``queries`` row by squared Euclidean distance, exactly.

    Distances are computed in blocks of at most ``max_block_elements`` query x ref pairs from one GEMM
    each (:math:`\\|q\\|^2 + \\|r\\|^2 - 2 q r^\\top`); the full matrix is never held. The smaller input is
    converted to ``dtype`` on ``device`` once, the larger one is streamed block by block. Equal
    distances are ordered by the lower ref index.

    Parameters
    ----------
    queries, refs : array-like, shapes (q, d) and (r, d)
    k : int
        Neighbours per query, ``1 <= k <= r``.
    device : str or torch.device, optional
        Default: CUDA when available, else CPU.
    dtype : {"float64", "float32"}
        Precision of the distances.
    max_block_elements : int
        Largest number of distances computed at once.

    Returns
    -------
    distances : numpy.ndarray of float64, shape (q, k)
        Squared distances, ascending along each row.
    indices : numpy.ndarray of int64, shape (q, k)
        Ref row of each distance.
    """
    queries, refs = _check_pair(queries, refs, "refs", "queries")
    q, r = queries.shape[0], refs.shape[0]
    k = _check_positive_int(k, "k (neighbours)", maximum=r)
    max_block_elements = _check_positive_int(max_block_elements, "max_block_elements")
    dev, dt = _resolve_device(device), _resolve_dtype(dtype)
    queries_stream = q > r
    large, small = (queries, refs) if queries_stream else (refs, queries)
    n_large, n_small = large.shape[0], small.shape[0]
    # Square-ish blocks when both sides are large; otherwise all of the small side against many large rows.
    small_rows = min(n_small, max(1, math.isqrt(max_block_elements)))
    large_rows = max(1, max_block_elements // small_rows)
    small_t = _to_torch(small, slice(None), dev, dt)
    small_sq = (small_t * small_t).sum(1)
    small_starts = range(0, n_small, small_rows)

    out_values = torch.empty((q, k), dtype=dt, device=dev)
    out_index = torch.empty((q, k), dtype=torch.int64, device=dev)
    if not queries_stream:  # queries are cached: keep a running best for all of them
        out_values.fill_(math.inf)
        out_index.fill_(r)
    for start in tqdm(range(0, n_large, large_rows), desc="nearest neighbours", unit="block",
                      disable=not progress, leave=False):
        block = _to_torch(large, slice(start, start + large_rows), dev, dt)
        block_sq = (block * block).sum(1)
        if queries_stream:
            best = (torch.full((block.shape[0], k), math.inf, dtype=dt, device=dev),
                    torch.full((block.shape[0], k), r, dtype=torch.int64, device=dev))
            for s in small_starts:
                rows = slice(s, s + small_rows)
                dist = _squared_distances(block, block_sq, small_t[rows], small_sq[rows])
                best = _merge_smallest(best, _smallest_k_in_block(dist, s, min(k, dist.shape[1])), k)
            out_values[start:start + block.shape[0]], out_index[start:start + block.shape[0]] = best
        else:
            kb = min(k, block.shape[0])
            for s in small_starts:
                rows = slice(s, s + small_rows)
                dist = _squared_distances(small_t[rows], small_sq[rows], block, block_sq)
                new = _smallest_k_in_block(dist, start, kb)
                out_values[rows], out_index[rows] = _merge_smallest((out_values[rows], out_index[rows]), new, k)
    return out_values.double().cpu().numpy(), out_index.cpu().numpy()


def _neighbour_options(device: Any, dtype: str, max_block_elements: int) -> dict[str, Any]:
    return {"device": None if device is None else str(device), "dtype": dtype, "max_block_elements": max_block_elements}


def _round_robin_order(dist: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten (m, k) neighbour lists round by round (rank 1 of every target, then rank 2...).

    Within a round, pairs are ordered by distance, then by target row.
    """
    m, k = idx.shape
    rounds = np.repeat(np.arange(k), m)
    targets = np.tile(np.arange(m), k)
    d, i = dist.T.reshape(-1), idx.T.reshape(-1)
    order = np.lexsort((targets, d, rounds))
    return i[order], d[order]


def select_knn(pool: Any, target: Any, budget: int, *, seed: int = 0, neighbours: int | None = None,
               device: str | torch.device | None = None, dtype: str = "float64",
               max_block_elements: int = _BLOCK_ELEMENTS, progress: bool = False) -> Selection:
    """Nearest neighbours of the targets, round-robin (curated TAPT, Gururangan et al. 2020).

    Every target row gets its pool candidates sorted by squared Euclidean distance. Round 1 takes the
    nearest candidate of every target, round 2 the second nearest of every target, and so on, skipping
    candidates already taken, until ``budget`` rows are chosen. Within a round the closer pairs go first
    (ties by target row), so when ``budget < m`` the targets with the closest candidates are served
    and the result does not depend on the order of the target rows.

    Parameters
    ----------
    pool, target : array-like, shapes (n, d) and (m, d)
    budget : int
    seed : int
        Recorded only; the selection is deterministic.
    neighbours : int, optional
        Neighbours computed per target at first; default ``ceil(budget / m)`` doubled plus 8. It is
        doubled (and everything recomputed) while collisions leave fewer than ``budget`` distinct
        candidates; the result does not depend on it.
    device, dtype, max_block_elements, progress
        As :func:`nearest_neighbours`.

    Returns
    -------
    Selection
        ``scores`` are each selected row's squared distance to the target that claimed it (lower is
        better, not sorted across rounds); ``all_scores`` is None.
    """
    x, y = _check_pair(pool, target)
    n, m = x.shape[0], y.shape[0]
    budget = _check_budget(budget, n)
    per_target = math.ceil(budget / m)
    k = min(n, _check_positive_int(neighbours, "neighbours") if neighbours is not None else 2 * per_target + 8)
    initial_k, recomputed = k, 0
    while True:
        dist, idx = nearest_neighbours(y, x, k, device=device, dtype=dtype, max_block_elements=max_block_elements,
                                       progress=progress)
        flat_idx, flat_dist = _round_robin_order(dist, idx)
        _, first = np.unique(flat_idx, return_index=True)
        if first.size >= budget or k == n:
            break
        k, recomputed = min(n, 2 * k), recomputed + 1
    taken = np.sort(first)[:budget]  # first claim of each candidate, in claiming order
    params = {"budget": budget, "seed": seed, "neighbours": initial_k,
              **_neighbour_options(device, dtype, max_block_elements)}
    diagnostics = {"neighbours_per_target": k, "recomputed": recomputed, "rounds": int(taken[-1] // m) + 1,
                   "n_target": m, "device": str(_resolve_device(device))}
    return Selection(indices=flat_idx[taken], scores=flat_dist[taken], method="knn", params=params,
                     diagnostics=diagnostics, seed=seed, all_scores=None,
                     score_name="squared_distance_to_claiming_target", score_order="lower_is_better", n_pool=n)


def select_matching(pool: Any, target: Any, budget: int, *, seed: int = 0, k_neighbors: int | None = None,
                    device: str | torch.device | None = None, dtype: str = "float64",
                    max_block_elements: int = _BLOCK_ELEMENTS, progress: bool = False) -> Selection:
    """Distribution matching: the candidates closest on average to their nearest targets.

    .. math:: s_j = \\frac{1}{k} \\sum_{t \\in \\mathrm{kNN}_k(x_j)} \\|x_j - y_t\\|^2

    and the ``budget`` lowest are selected. This picks data that looks like the target, the approach
    GOT-D argues against: it ignores what the pool already contains.

    Parameters
    ----------
    pool, target : array-like, shapes (n, d) and (m, d)
    budget : int
    seed : int
        Recorded only; the selection is deterministic.
    k_neighbors : int, optional
        Targets averaged per candidate, default ``min(10, m)``.
    device, dtype, max_block_elements, progress
        As :func:`nearest_neighbours`.

    Returns
    -------
    Selection
        ``scores`` / ``all_scores`` are mean squared distances (lower is better).
    """
    x, y = _check_pair(pool, target)
    n, m = x.shape[0], y.shape[0]
    budget = _check_budget(budget, n)
    k = min(10, m) if k_neighbors is None else _check_positive_int(k_neighbors, "k_neighbors", maximum=m)
    dist, _ = nearest_neighbours(x, y, k, device=device, dtype=dtype, max_block_elements=max_block_elements,
                                 progress=progress)
    scores = dist.mean(axis=1)
    order = _rank(scores, higher_is_better=False)[:budget]
    params = {"budget": budget, "seed": seed, "k_neighbors": k, **_neighbour_options(device, dtype, max_block_elements)}
    return Selection(indices=order, scores=scores[order], method="matching", params=params,
                     diagnostics={"n_target": m, "device": str(_resolve_device(device))}, seed=seed,
                     all_scores=scores, score_name="mean_squared_distance_to_nearest_targets",
                     score_order="lower_is_better", n_pool=n)


SELECTORS: dict[str, Selector] = {
    "gotd": select_gotd,
    "gotd_contrast": select_gotd_contrast,
    "random": select_random,
    "dsir": select_dsir,
    "knn": select_knn,
    "matching": select_matching,
}
"""Registered selectors by method name: ``fn(pool, target, budget, *, seed, **options) -> Selection``."""
