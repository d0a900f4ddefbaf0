"""Measures of a selection: domain make-up, overlap between methods, OT distances, a 2-D projection.

These are what the notebooks tabulate and plot next to each selection. The OT distances use the same
entropic problem as :mod:`gotd.ot` (squared Euclidean cost, eps in cost units) and the value

.. math:: \\mathrm{OT}_\\varepsilon(a, b) = \\langle a, f \\rangle + \\langle b, g \\rangle,

the dual objective at convergence (the entropic term of the dual vanishes once the marginals hold).
Compare values only at one fixed absolute eps: the entropic bias grows with eps.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from gotd.errors import GotdInputError
from gotd.ot import sinkhorn
from gotd.validation import check_matrix


def domain_shares(domains: Sequence[Any], selections: Mapping[str, np.ndarray], *,
                  include_pool: bool = True) -> pd.DataFrame:
    """Share of each domain in each selection (rows: selections, columns: domains; rows sum to 1).

    Parameters
    ----------
    domains : sequence, length n
        The domain label of every pool row.
    selections : mapping of name to int array
        Selected pool row indices per method.
    include_pool : bool
        Add a last row ``"(pool)"`` with the shares in the whole pool, the reference to compare against.
    """
    labels = pd.Series(np.asarray(domains, dtype=object))
    rows = {}
    for name, idx in selections.items():
        idx = _check_indices(idx, len(labels), name)
        rows[name] = labels.iloc[idx].value_counts(normalize=True)
    if include_pool:
        rows["(pool)"] = labels.value_counts(normalize=True)
    table = pd.DataFrame(rows).T.fillna(0.0)
    return table[sorted(table.columns, key=str)]


def overlap_matrix(selections: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Share of rows two selections have in common, ``|A ∩ B| / min(|A|, |B|)``, for every pair."""
    names = list(selections)
    sets = {name: set(np.asarray(idx).tolist()) for name, idx in selections.items()}
    data = [[len(sets[a] & sets[b]) / max(1, min(len(sets[a]), len(sets[b]))) for b in names] for a in names]
    return pd.DataFrame(data, index=names, columns=names)


def _check_indices(idx: Any, n: int, name: str) -> np.ndarray:
    arr = np.asarray(idx)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise GotdInputError(f"selection {name!r}: expected a 1-D array of integer row indices, got {arr.dtype} "
                             f"shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise GotdInputError(f"selection {name!r}: row indices must lie in [0, {n}), got {arr.min()}..{arr.max()}")
    return arr


def ot_distance(x: Any, y: Any, *, eps: float, a: Any = None, b: Any = None, tol: float = 1e-4,
                max_iter: int = 10_000) -> float:
    """Entropic OT value between weighted point sets at an absolute ``eps`` (cost units).

    Returns :math:`\\langle a, f \\rangle + \\langle b, g \\rangle` from :func:`gotd.ot.sinkhorn`, in
    squared-embedding-distance units. ``tol`` is tighter than the selection default because the value,
    not only the ranking, is used.
    """
    result = sinkhorn(x, y, eps=eps, a=a, b=b, tol=tol, max_iter=max_iter)
    n, m = len(result.f), len(result.g)
    wa = np.full(n, 1.0 / n) if a is None else np.asarray(a, dtype=float) / np.sum(a)
    wb = np.full(m, 1.0 / m) if b is None else np.asarray(b, dtype=float) / np.sum(b)
    return float(wa @ result.f + wb @ result.g)


def mixture_weights(n: int, selected: np.ndarray, lam: float) -> np.ndarray:
    """Weights of the mixture ``(1 - lam) * pool + lam * selection`` over the n pool rows.

    Every pool row keeps ``(1 - lam) / n``; each selected row gets ``lam / k`` on top. This is the
    distribution GOT-D moves toward: light fine-tuning on the selection shifts the model's training
    distribution by a small ``lam``.
    """
    if not 0.0 <= lam < 1.0:
        raise GotdInputError(f"lam must be in [0, 1) so every pool row keeps positive weight, got {lam}")
    selected = _check_indices(selected, n, "selected")
    if selected.size == 0:
        raise GotdInputError("selected is empty; a mixture needs at least one selected row")
    w = np.full(n, (1.0 - lam) / n)
    np.add.at(w, selected, lam / selected.size)
    return w


def mixture_ot_distances(pool: Any, target: Any, selections: Mapping[str, np.ndarray], *, eps: float,
                         lams: Sequence[float] = (0.05, 0.2), progress: bool = False) -> pd.DataFrame:
    """OT(mixture of pool and selection, target) for each selection and mixing weight ``lam``.

    GOT-D picks the rows whose extra mass lowers this distance fastest at small ``lam``; the table shows
    whether it does on the data at hand, next to the baselines. Also holds ``lam = 0`` (the pool alone)
    as row ``"(pool)"``.

    Returns
    -------
    pandas.DataFrame
        Columns ``method``, ``lam``, ``ot_distance`` (cost units), ``change`` (minus the pool's distance).
    """
    pool = np.asarray(pool, dtype=np.float64)
    base = ot_distance(pool, target, eps=eps)
    rows = [{"method": "(pool)", "lam": 0.0, "ot_distance": base, "change": 0.0}]
    jobs = [(name, lam) for name in selections for lam in lams]
    for name, lam in tqdm(jobs, desc="mixture OT", disable=not progress, leave=False):
        value = ot_distance(pool, target, eps=eps, a=mixture_weights(len(pool), selections[name], lam))
        rows.append({"method": name, "lam": float(lam), "ot_distance": value, "change": value - base})
    return pd.DataFrame(rows)


def domain_ot_distances(pool: Any, domains: Sequence[Any], target: Any, *, eps: float,
                        max_rows_per_domain: int | None = 10_000, seed: int = 0,
                        progress: bool = False) -> pd.DataFrame:
    """The paper's domain relevance test: OT distance between the target and each pool domain.

    The paper solved OT (eps 0.5) between the target and 10k samples of each domain and kept the closest
    2-4 domains. Domains larger than ``max_rows_per_domain`` are sampled without replacement (seeded) and
    the number used is reported; ``None`` uses every row.

    Returns
    -------
    pandas.DataFrame
        Columns ``domain``, ``rows`` (in the pool), ``rows_used``, ``ot_distance`` (cost units), sorted
        closest first.
    """
    pool = np.asarray(pool)
    labels = np.asarray(domains, dtype=object)
    if labels.shape != (len(pool),):
        raise GotdInputError(f"domains has {labels.shape[0] if labels.ndim else 0} labels for {len(pool)} pool rows; "
                             "pass one domain per pool row")
    rng = np.random.default_rng(seed)
    rows = []
    for domain in tqdm(sorted(set(labels.tolist()), key=str), desc="domain OT", disable=not progress, leave=False):
        idx = np.flatnonzero(labels == domain)
        used = idx
        if max_rows_per_domain is not None and idx.size > max_rows_per_domain:
            used = np.sort(rng.choice(idx, size=max_rows_per_domain, replace=False))
        if used.size < 2:
            rows.append({"domain": domain, "rows": idx.size, "rows_used": used.size, "ot_distance": np.nan})
            continue
        rows.append({"domain": domain, "rows": idx.size, "rows_used": used.size,
                     "ot_distance": ot_distance(pool[used], target, eps=eps)})
    return pd.DataFrame(rows).sort_values("ot_distance", kind="stable").reset_index(drop=True)


def pca_2d(*arrays: Any) -> tuple[list[np.ndarray], np.ndarray]:
    """Project several (n_i, d) arrays onto the top two principal axes of their union.

    Returns the projected arrays (each (n_i, 2)) and the share of variance each axis explains. A linear
    map: distances in the picture are shrunk versions of the real ones, and clusters that overlap in 2-D
    may be apart in d dimensions.
    """
    if not arrays:
        raise GotdInputError("pca_2d needs at least one array")
    mats = [np.asarray(check_matrix(np.asarray(a), f"pca_2d array {i}", dtype=("float64",)))
            for i, a in enumerate(arrays)]
    dims = {m.shape[1] for m in mats}
    if len(dims) != 1:
        raise GotdInputError(f"pca_2d needs 2-D arrays with one feature count, got shapes {[m.shape for m in mats]}")
    union = np.vstack(mats)
    centre = union.mean(axis=0)
    _, s, vt = np.linalg.svd(union - centre, full_matrices=False)
    axes = vt[:2]
    if axes.shape[0] < 2:  # one feature: pad a zero axis so the picture still has two coordinates
        axes = np.vstack([axes, np.zeros_like(axes)])
        s = np.r_[s, 0.0]
    var = s ** 2
    explained = var[:2] / var.sum() if var.sum() > 0 else np.zeros(2)
    # Fix the sign of each axis so the picture does not flip between runs.
    signs = np.sign(axes[np.arange(2), np.abs(axes).argmax(axis=1)])
    axes = axes * np.where(signs == 0, 1.0, signs)[:, None]
    return [(m - centre) @ axes.T for m in mats], explained
