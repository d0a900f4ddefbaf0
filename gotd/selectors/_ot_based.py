"""The OT-gradient selectors: GOT-D and GOT-D_contrast (Kang et al., ICLR 2024).

Both call :func:`gotd.ot.ot_gradients_with_diagnostics`; the OT options they accept are read from the
signatures of that function and of :func:`gotd.ot.sinkhorn` at call time, so a keyword added there
(e.g. ``preset``, ``allow_unconverged``) passes through without an edit here.
"""
from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from gotd.errors import GotdInputError
from gotd.selection import Selection
from gotd.selectors._validation import check_embeddings, check_pair, json_safe, rank

_NOT_OT_OPTIONS = {"pool", "target", "seed"}


def _keyword_params(fn: Any) -> dict[str, inspect.Parameter]:
    return {n: p for n, p in inspect.signature(fn).parameters.items()
            if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
            and n not in _NOT_OT_OPTIONS}


def _ot_functions() -> list[Any]:
    from gotd import ot

    return [ot.ot_gradients_with_diagnostics, ot.sinkhorn]


def ot_option_names() -> set[str]:
    """Keyword options the OT-based selectors forward to :func:`gotd.ot.ot_gradients_with_diagnostics`."""
    names: set[str] = set()
    for fn in _ot_functions():
        names |= set(_keyword_params(fn))
    return names


def ot_defaults() -> dict[str, Any]:
    """Default of every forwarded OT option (recorded in a selection's params); weights excluded."""
    defaults: dict[str, Any] = {}
    for fn in reversed(_ot_functions()):  # the outer function's defaults win
        defaults.update({n: p.default for n, p in _keyword_params(fn).items()
                         if p.default is not inspect.Parameter.empty and n not in ("a", "b")})
    return defaults


def ot_gradients(pool: Any, target: Any, seed: int, options: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """Calibrated OT gradients of every pool row w.r.t. ``target`` and the solve's diagnostics."""
    from gotd.ot import ot_gradients_with_diagnostics

    names = ot_option_names()
    unknown = sorted(set(options) - names)
    if unknown:
        raise GotdInputError(f"unknown OT option(s) {', '.join(map(repr, unknown))}; the OT options are "
                             f"{', '.join(sorted(names))} (see gotd.ot.sinkhorn)")
    return ot_gradients_with_diagnostics(pool, target, seed=seed, **options)


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
        Keywords of :func:`gotd.ot.ot_gradients_with_diagnostics` and :func:`gotd.ot.sinkhorn`
        (``eps``, ``eps_rel``, ``tol``, ``max_iter``, ``device``, ``progress``, ``subsample``...).

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
    gradients, diagnostics = ot_gradients(pool, target, seed, ot_options)
    order = rank(gradients, higher_is_better=False)[:budget]
    params = {"budget": budget, "seed": seed, **ot_defaults(), **json_safe(ot_options)}
    return Selection(indices=order, scores=gradients[order], method="gotd", params=params,
                     diagnostics=diagnostics, seed=seed, all_scores=gradients, score_name="calibrated_gradient",
                     score_order="lower_is_better", n_pool=pool.shape[0])


def percentile(v: np.ndarray) -> np.ndarray:
    """Fraction of the other rows with a smaller value (ties count half), in [0, 1]."""
    n = v.size
    if n == 1:
        return np.ones(1)
    ordered = np.sort(v)
    below = np.searchsorted(ordered, v, side="left")
    upto = np.searchsorted(ordered, v, side="right")
    return (below + (upto - below - 1) / 2.0) / (n - 1)


def select_gotd_contrast(pool: Any, target: Any, budget: int, *, seed: int = 0, positive: Any = None,
                         **ot_options: Any) -> Selection:
    """GOT-D_contrast: the candidates whose extra mass moves the pool furthest from a negative set.

    ``target`` is the NEGATIVE set (e.g. embeddings of toxic text). With calibrated gradients
    :math:`\\tilde g^-_j` of OT(pool, negative), the selection is the ``budget`` MOST POSITIVE: adding
    these candidates' mass increases the pool's distance to the negative set the most. This is the
    form the paper gives (Kang et al. 2024, detoxification); it released no code for it.

    With ``positive`` (embeddings of a desired target set) both problems are solved; the combination
    is not from the paper. Each gradient is turned into a percentile over the pool,

    .. math:: u_j = \\Pr_i[\\tilde g^-_i < \\tilde g^-_j] \\;(\\text{far from negative}), \\qquad
              v_j = \\Pr_i[\\tilde g^+_i > \\tilde g^+_j] \\;(\\text{close to positive}),

    (ties count half) and the score is :math:`s_j = \\min(u_j, v_j)`, ties broken by
    :math:`(u_j + v_j)/2`, then by row. A row comes first only when it is good on *both* problems: if
    row a beats row b on both gradients, a ranks ahead of b, and a cluster far from both sets (bad
    :math:`v`) ranks behind the rows close to the positive set whatever the two gradients' spreads.
    A difference of z-scores, :math:`z(\\tilde g^-) - z(\\tilde g^+)`, has no such guarantee: when the
    negative gradients spread more, rows far from both sets can win on :math:`\\tilde g^-` alone.

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
        Scores are higher-is-better (gradients w.r.t. the negative set, or :math:`s_j`); diagnostics
        hold the solve's diagnostics, under ``"negative"`` and ``"positive"`` when ``positive`` is given.
    """
    x, negative = pool, target
    n = x.shape[0]
    grad_neg, diag_neg = ot_gradients(x, negative, seed, ot_options)
    params = {"budget": budget, "seed": seed, "positive": None, **ot_defaults(), **json_safe(ot_options)}
    if positive is None:
        scores, diagnostics, score_name = grad_neg, diag_neg, "calibrated_gradient_wrt_negative"
        order = rank(scores, higher_is_better=True)[:budget]
    else:
        _, pos = check_pair(x, check_embeddings(positive, "positive"), "positive")
        grad_pos, diag_pos = ot_gradients(x, pos, seed, ot_options)
        far_from_negative, close_to_positive = percentile(grad_neg), percentile(-grad_pos)
        scores = np.minimum(far_from_negative, close_to_positive)
        tie_break = (far_from_negative + close_to_positive) / 2.0
        order = np.lexsort((np.arange(n), -tie_break, -scores))[:budget].astype(np.int64)
        diagnostics = {"negative": diag_neg, "positive": diag_pos}
        score_name = "min_percentile_far_from_negative_close_to_positive"
        params["positive"] = f"<array shape {tuple(pos.shape)}>"
        params["combination"] = "min_percentile"
    return Selection(indices=order, scores=scores[order], method="gotd_contrast", params=params,
                     diagnostics=diagnostics, seed=seed, all_scores=scores, score_name=score_name,
                     score_order="higher_is_better", n_pool=n)
