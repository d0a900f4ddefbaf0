"""The cost scale: exact moments of the squared Euclidean cost, the eps it implies, and outlier checks.

The regularisation is stated either absolutely (``eps``, cost units) or relative to a scale statistic of
the cost matrix, ``eps = eps_rel * scale(C)``. Every statistic here is computed without forming the
n x m cost: the mean and standard deviation exactly from one-sided moments (O((n + m) d^2)), the median
from a fixed random sample of pairs.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from gotd.errors import GotdInputError
from gotd.ot._inputs import _ROW_CHUNK, _as_matrix, _check_dims, _positive_finite

DEFAULT_EPS_REL = 0.05
"""Default entropic regularisation relative to the cost scale: eps = 0.05 * std(C)."""

EPS_SCALES = ("std", "mean", "median")
"""Scale statistics ``eps_rel`` may be relative to (see :func:`cost_scale`)."""

DEFAULT_EPS_SCALE = "std"
"""The default statistic, kept from earlier releases so that default selections do not change."""

ROW_SHARE_WARNING = 0.5
"""Warn when one pool or target row accounts for more than this share of var(C) (an outlier row)."""

_MEDIAN_ROWS, _MEDIAN_COLS = 4096, 1024
"""Pool and target rows the sampled median uses (all rows when there are fewer): ~4M pairs."""


def _centred_moments(x: torch.Tensor, centre: torch.Tensor, other: dict[str, torch.Tensor] | None = None
                     ) -> dict[str, torch.Tensor]:
    """Float64 means over the rows of ``c = x - centre``: c, c c^T, p = |c|^2, p^2 and p c (chunked).

    With ``other`` (the other side's moments) the same pass also returns, per row i, ``row1`` =
    E_j[C_ij] and ``row2`` = E_j[C_ij^2] over the other side, from which :func:`_max_row_share` gets each
    row's share of var(C); that costs one more (rows, d) x (d, d) product per chunk.
    """
    d = x.shape[1]
    centre = centre.to(x.device)
    acc = {name: torch.zeros(shape, dtype=torch.float64, device=x.device)
           for name, shape in (("c", (d,)), ("cc", (d, d)), ("p", ()), ("pp", ()), ("pc", (d,)))}
    rows1, rows2 = [], []
    if other is not None:
        o_cc, o_c, o_p, o_pp, o_pc = (other[k].to(x.device) for k in ("cc", "c", "p", "pp", "pc"))
        o_cc_low = o_cc.to(x.dtype)
    for start in range(0, x.shape[0], _ROW_CHUNK):
        c = x[start:start + _ROW_CHUNK].double() - centre
        p = (c * c).sum(1)
        acc["c"] += c.sum(0)
        # The d x d product is the only O(n d^2) step: for float32 embeddings a float32 GEMM per chunk
        # (summed in float64) keeps the input's precision at a fraction of the float64 cost.
        c_gemm = c.to(x.dtype)
        acc["cc"] += (c_gemm.T @ c_gemm).double()
        acc["p"] += p.sum()
        acc["pp"] += (p * p).sum()
        acc["pc"] += (p[:, None] * c).sum(0)
        if other is not None:
            # E_j[(p_i + q_j - 2 c_i.e_j)^k] for k = 1, 2, expanded in the other side's moments
            c_e = c @ o_c
            quad = ((c_gemm @ o_cc_low).double() * c).sum(1)
            rows1.append(p + o_p - 2 * c_e)
            rows2.append(p * p + o_pp + 4 * quad + 2 * p * o_p - 4 * p * c_e - 4 * (c @ o_pc))
    out = {k: (v / x.shape[0]).cpu() for k, v in acc.items()}
    if other is not None:
        out["row1"], out["row2"] = torch.cat(rows1), torch.cat(rows2)
    return out


def _max_row_share(moments: dict[str, torch.Tensor], mean: float, var: float) -> float:
    """Largest share of var(C) from one row: ``max_i E_j[(C_ij - mu)^2] / (rows var(C))``.

    The shares of one side sum to 1; a clean set gives ~1/rows each.
    """
    if not var > 0:
        return 0.0
    spread = moments["row2"] - 2 * mean * moments["row1"] + mean * mean
    return float(spread.max()) / (spread.shape[0] * var)


def _mean_and_second(mx: dict[str, torch.Tensor], my: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """E[C] and E[C^2] over all pairs from the one-sided moments (see :func:`cost_moments`)."""
    mean = mx["p"] + my["p"] - 2 * mx["c"] @ my["c"]
    e_ss = (mx["cc"] * my["cc"]).sum()
    second = (mx["pp"] + my["pp"] + 4 * e_ss + 2 * mx["p"] * my["p"]
              - 4 * mx["pc"] @ my["c"] - 4 * mx["c"] @ my["pc"])
    return mean, second


def cost_moments(pool: Any, target: Any) -> tuple[float, float]:
    """Exact mean and standard deviation of the squared Euclidean cost over all n x m pairs.

    With :math:`p_i = \\|x_i\\|^2`, :math:`q_j = \\|y_j\\|^2`, :math:`s_{ij} = x_i^\\top y_j` and
    :math:`C = p + q - 2s`, every moment is a mean over one side only, e.g.
    :math:`\\mathbb{E}[s^2] = \\mathrm{tr}(\\Sigma_x \\Sigma_y)` with second-moment matrices
    :math:`\\Sigma_x = X^\\top X / n`; the cost costs O((n + m) d^2), not O(n m d).

    Returns
    -------
    (mean, std) : tuple of float
        In cost units (squared embedding distance).
    """
    x = _as_matrix(pool, "pool")
    y = _as_matrix(target, "target")
    _check_dims(x, y)
    # Centre on the target mean: distances are unchanged and the moments lose less precision.
    centre = y.double().mean(dim=0)
    mean, second = _mean_and_second(_centred_moments(x, centre), _centred_moments(y, centre))
    return float(mean), math.sqrt(max(float(second - mean * mean), 0.0))


def _sampled_median(x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> float:
    """Median of C over a fixed random sample of at most 4096 x 1024 pool-target pairs (O(s t d))."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(x.shape[0], size=min(x.shape[0], _MEDIAN_ROWS), replace=False))
    cols = np.sort(rng.choice(y.shape[0], size=min(y.shape[0], _MEDIAN_COLS), replace=False))
    xs = x[torch.as_tensor(rows, device=x.device)].double()
    ys = y[torch.as_tensor(cols, device=y.device)].double()
    centre = ys.mean(dim=0)
    cost = torch.cdist(xs - centre, ys - centre).square_()
    return float(cost.flatten().median())


def cost_scale(pool: Any, target: Any, statistic: str = DEFAULT_EPS_SCALE) -> dict[str, float]:
    """The cost scale ``eps_rel`` is relative to, with the exact mean and std of C and outlier shares.

    Parameters
    ----------
    pool, target : array-like, shapes (n, d) and (m, d)
    statistic : {"std", "mean", "median"}
        ``"std"`` (default): the exact standard deviation of C. ``"mean"``: the exact mean of C (ott-jax's
        ``scale_cost="mean"``). ``"median"``: the median of C over a fixed sample of pairs, the statistic
        least moved by an outlier row (see the README's "Choices worth knowing").

    Returns
    -------
    dict
        ``scale`` (the chosen statistic, cost units), ``cost_mean``, ``cost_std``, and
        ``max_row_share_pool`` / ``max_row_share_target`` (largest share of var(C) from one row).
    """
    if statistic not in EPS_SCALES:
        raise GotdInputError(f"eps_scale must be one of {', '.join(EPS_SCALES)}, got {statistic!r}")
    x = _as_matrix(pool, "pool")
    y = _as_matrix(target, "target")
    _check_dims(x, y)
    # One pass over the pool serves the mean, the std and the pool rows' shares; the target (m rows) is
    # read twice, once for its moments and once for its rows' shares.
    centre = y.double().mean(dim=0)
    my = _centred_moments(y, centre)
    mx = _centred_moments(x, centre, other=my)
    my = _centred_moments(y, centre, other=mx)
    mean_t, second = _mean_and_second(mx, my)
    mean, var = float(mean_t), max(float(second - mean_t * mean_t), 0.0)
    std = math.sqrt(var)
    share_pool, share_target = _max_row_share(mx, mean, var), _max_row_share(my, mean, var)
    scale = {"std": std, "mean": mean}.get(statistic)
    if scale is None:
        scale = _sampled_median(x, y)
    return {"scale": scale, "cost_mean": mean, "cost_std": std,
            "max_row_share_pool": share_pool, "max_row_share_target": share_target}


def resolve_eps(eps: float | None, eps_rel: float | None, cost_std: float) -> tuple[float, float]:
    """Return (eps, eps_rel) from an absolute ``eps`` or a relative ``eps_rel`` (at most one given).

    ``cost_std`` is the scale ``eps_rel`` is relative to (std(C) by default; see :func:`cost_scale`).
    With neither given, ``eps_rel = DEFAULT_EPS_REL``. eps and eps_rel must be finite and > 0.
    """
    if eps is not None and eps_rel is not None:
        raise GotdInputError("give either eps (absolute, cost units) or eps_rel (relative to std of the cost), not both")
    if eps is not None:
        eps = _positive_finite(eps, "eps", "pass an absolute regularisation in cost units, e.g. eps=0.1, "
                                           "or leave it unset for the default eps_rel=0.05")
    if eps_rel is not None:
        eps_rel = _positive_finite(eps_rel, "eps_rel", "pass a fraction of the cost scale, e.g. eps_rel=0.05")
    if cost_std <= 0:
        if eps is None:
            raise GotdInputError("every pool-target distance is the same (std of the cost is 0); "
                                 "eps_rel is undefined: pass an absolute eps or check the embeddings")
        return eps, math.inf
    if eps is None:
        eps_rel = DEFAULT_EPS_REL if eps_rel is None else eps_rel
        return eps_rel * cost_std, eps_rel
    return eps, eps / cost_std


SAFE_MAGNITUDE = (2.0 ** -20, 2.0 ** 20)
"""Largest absolute embedding value below/above which the solve runs on exactly rescaled embeddings."""


def magnitude_factor(*matrices: Any) -> float:
    """The power of two that brings the largest absolute value of ``matrices`` into [0.5, 1); 1.0 when it
    already lies in :data:`SAFE_MAGNITUDE` (or every value is 0).

    Why: the cost is a squared distance, so values around 1e19 (or 1e-19) give costs around 1e38 (1e-38),
    at the edge of float32 (the GEMM precision) and, further out, of float64; the kernel then overflows or
    underflows and Sinkhorn fails for a reason that raising eps cannot fix. Multiplying every embedding by
    one power of two is exact in binary floating point, scales the cost by its square and leaves the
    selection unchanged as long as eps scales with it: ``eps_rel`` does by construction (eps = eps_rel x
    scale(C)), an absolute ``eps`` is scaled here by the same square (:func:`scaled_settings`).
    """
    peak = 0.0
    for m in matrices:
        if isinstance(m, torch.Tensor):
            if m.numel():
                peak = max(peak, float(m.detach().abs().max()))
        else:
            arr = np.asarray(m)
            if arr.size:
                peak = max(peak, float(np.max(np.abs(arr))))
    if peak == 0.0 or not math.isfinite(peak) or SAFE_MAGNITUDE[0] <= peak <= SAFE_MAGNITUDE[1]:
        return 1.0
    exponent = min(max(math.frexp(peak)[1], -1000), 1000)
    return math.ldexp(1.0, -exponent)


def scaled_settings(settings: dict[str, Any], factor: float) -> dict[str, Any]:
    """``settings`` with an absolute ``eps`` (cost units) multiplied by ``factor**2`` (see :func:`magnitude_factor`)."""
    if factor == 1.0 or settings.get("eps") is None:
        return settings
    return {**settings, "eps": float(settings["eps"]) * factor * factor}


def unscaled_result(values: np.ndarray, diagnostics: dict[str, Any], factor: float
                    ) -> tuple[np.ndarray, dict[str, Any]]:
    """OT gradients (cost units) and diagnostics of a solve on embeddings multiplied by ``factor``, given back
    in the units of the original embeddings.

    Raises
    ------
    GotdInputError
        When the costs of the original embeddings do not fit in float64 (their squared distances overflow
        or underflow): the message names the magnitude and the fix.
    """
    if factor == 1.0:
        return values, diagnostics
    # two divisions: factor**2 itself can under- or overflow where each step does not
    with np.errstate(over="ignore", under="ignore"):  # checked just below
        out = np.asarray(values, dtype=np.float64) / factor / factor
    fixed = {key: float(diagnostics[key]) / factor / factor for key in ("eps", "scale", "cost_mean", "cost_std")
             if isinstance(diagnostics.get(key), (int, float))}
    representable = np.isfinite(out).all() and all(math.isfinite(v) for v in fixed.values()) and \
        fixed.get("cost_std", 1.0) > np.finfo(np.float64).tiny
    if not representable:
        raise GotdInputError(f"the embeddings' values reach about {0.5 / factor:.3g}: their squared distances (the OT "
                             "cost, ~" f"{diagnostics.get('cost_mean', 1.0) / factor / factor:.3g}) do not fit in "
                             "float64; rescale pool and target by one common factor first (e.g. divide both by their "
                             "largest absolute value): the OT selection with eps_rel does not change")
    return out, {**diagnostics, **fixed, "embedding_rescale": factor}
