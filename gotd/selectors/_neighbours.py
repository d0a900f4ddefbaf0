"""Exact nearest neighbours in blocks, and the kNN-TAPT selector built on them.

:func:`nearest_neighbours` computes squared Euclidean distances block by block from one GEMM each and
keeps a running k-smallest per query, so the full distance matrix is never held.
"""
from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from gotd.devices import resolve_device, resolve_dtype
from gotd.errors import GotdInputError
from gotd.selection import Selection
from gotd.selectors._validation import check_pair, check_positive_int

BLOCK_ELEMENTS = 1 << 24
"""Largest distance block (rows x columns) the nearest-neighbour selectors compute at once (128 MiB in float64)."""

NEIGHBOUR_DTYPES = ("float64", "float32")
"""Precisions the distances may be computed in."""


def _to_torch(x: np.ndarray | torch.Tensor, rows: slice, device: torch.device, dtype: torch.dtype,
              factor: float = 1.0) -> torch.Tensor:
    block = x[rows]
    block = block if isinstance(block, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(block))
    if factor != 1.0:  # a power of two, applied in the input's own precision: exact, and before any narrowing
        block = block.to(device=device) * factor
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
                       dtype: str = "float64", max_block_elements: int = BLOCK_ELEMENTS,
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
        ``None`` or "auto": CUDA when available, else CPU (:func:`gotd.devices.resolve_device`).
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
    queries, refs = check_pair(queries, refs, "refs", "queries")
    q, r = queries.shape[0], refs.shape[0]
    k = check_positive_int(k, "k (neighbours)", maximum=r)
    max_block_elements = check_positive_int(max_block_elements, "max_block_elements")
    dev, dt = resolve_device(device), resolve_dtype(dtype, device, allowed=NEIGHBOUR_DTYPES)
    queries_stream = q > r
    large, small = (queries, refs) if queries_stream else (refs, queries)
    n_large, n_small = large.shape[0], small.shape[0]
    # Square-ish blocks when both sides are large; otherwise all of the small side against many large rows.
    small_rows = min(n_small, max(1, math.isqrt(max_block_elements)))
    large_rows = max(1, max_block_elements // small_rows)
    # Values far from 1 (|x| ~ 1e19 squares to ~1e38, the edge of float32; ~1e-19 to ~1e-38) are brought
    # near 1 by one exact power of two; distances are scaled back at the end.
    from gotd.ot import magnitude_factor

    factor = magnitude_factor(queries, refs)
    small_t = _to_torch(small, slice(None), dev, dt, factor)
    small_sq = (small_t * small_t).sum(1)
    small_starts = range(0, n_small, small_rows)

    out_values = torch.empty((q, k), dtype=dt, device=dev)
    out_index = torch.empty((q, k), dtype=torch.int64, device=dev)
    if not queries_stream:  # queries are cached: keep a running best for all of them
        out_values.fill_(math.inf)
        out_index.fill_(r)
    for start in tqdm(range(0, n_large, large_rows), desc="nearest neighbours", unit="block",
                      disable=not progress, leave=False):
        block = _to_torch(large, slice(start, start + large_rows), dev, dt, factor)
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
    with np.errstate(over="ignore", under="ignore"):  # checked just below
        distances = out_values.double().cpu().numpy() / factor / factor
    if factor != 1.0 and not (np.isfinite(distances).all() and (distances[out_values.cpu().numpy() > 0] > 0).all()):
        raise GotdInputError(f"the embeddings' values reach about {0.5 / factor:.3g}: their squared distances do not "
                             "fit in float64; rescale both by one common factor first (e.g. divide both by their largest "
                             "absolute value), or use metric='cosine'")
    return distances, out_index.cpu().numpy()


def neighbour_options(device: Any, dtype: str, max_block_elements: int) -> dict[str, Any]:
    """The nearest-neighbour options as recorded in a selection's params."""
    return {"device": None if device is None else str(device), "dtype": dtype, "max_block_elements": max_block_elements}


def unit_rows(x: np.ndarray | torch.Tensor, name: str) -> np.ndarray | torch.Tensor:
    """Rows scaled to unit L2 norm (cosine geometry); a zero row has no direction and is an error.

    Each row is first divided by its largest absolute value, so the squares summed for the norm lie in
    [0, d] whatever the magnitude: a float16 row with norm > 255 or a float32 row around 1e19 would
    otherwise overflow (and a row around 1e-200 underflow) to a wrong direction. float16 rows come back
    as float32 (a unit row's entries need more precision than float16's 3 digits); float32 and float64
    keep their precision.
    """
    if isinstance(x, torch.Tensor):
        t = x if x.dtype in (torch.float32, torch.float64) else x.to(torch.float32)
        peak = t.abs().amax(dim=1, keepdim=True)
        zero = (peak == 0).reshape(-1)
    else:
        t = x if x.dtype in (np.float32, np.float64) else np.asarray(x, dtype=np.float32)
        peak = np.max(np.abs(t), axis=1, keepdims=True)
        zero = (peak == 0).reshape(-1)
    if bool(zero.any()):
        row = int(zero.nonzero()[0][0]) if isinstance(x, torch.Tensor) else int(np.flatnonzero(zero)[0])
        raise GotdInputError(f"{name}: row {row} is all zeros and has no cosine distance; drop that row or "
                             "use metric='euclidean'")
    scaled = t / peak
    norms = scaled.norm(dim=1, keepdim=True) if isinstance(x, torch.Tensor) else np.linalg.norm(scaled, axis=1,
                                                                                                  keepdims=True)
    return scaled / norms


def round_robin_order(dist: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten (m, k) neighbour lists round by round (rank 1 of every target, then rank 2...).

    Within a round, pairs are ordered by distance, then by target row.
    """
    m, k = idx.shape
    rounds = np.repeat(np.arange(k), m)
    targets = np.tile(np.arange(m), k)
    d, i = dist.T.reshape(-1), idx.T.reshape(-1)
    order = np.lexsort((targets, d, rounds))
    return i[order], d[order]


def select_knn(pool: Any, target: Any, budget: int, *, seed: int = 0, metric: Literal["cosine", "euclidean"] = "cosine",
               distinct: bool = True, neighbours: int | None = None, device: str | torch.device | None = None,
               dtype: str = "float64", max_block_elements: int = BLOCK_ELEMENTS, progress: bool = False) -> Selection:
    """kNN-TAPT: nearest neighbours of the targets, round-robin (curated TAPT, Gururangan et al. 2020).

    Every target row gets its pool candidates sorted by distance (``metric``). Round 1 takes the
    nearest candidate of every target, round 2 the second nearest of every target, and so on, until
    ``budget`` rows are taken. Within a round the closer pairs go first (ties by target row), so when
    ``budget < m`` the targets with the closest candidates are served and the result does not depend
    on the order of the target rows. With ``budget = k m`` this is "each target's k nearest".

    Cosine distance is :math:`1 - \\cos(x, y)`, computed as half the squared Euclidean distance of the
    unit-normalised rows (the same order).

    Defaults. ``metric="cosine"`` as the paper's curated-TAPT code. ``distinct=True`` departs from that
    code, which keeps a candidate once per target that claims it (repeats): with ``distinct=True`` a
    candidate already taken is skipped, so the budget counts distinct rows and is comparable with every
    other selector. ``distinct=False`` is the paper-code behaviour: the returned
    :attr:`Selection.indices` are the distinct rows in claim order and ``diagnostics["multiplicity"]``
    says how often each was claimed (summing to ``budget``); a trainer must repeat rows by it to see the
    paper's data.

    Parameters
    ----------
    pool, target : array-like, shapes (n, d) and (m, d)
    budget : int
    seed : int
        Recorded only; the selection is deterministic.
    metric : {"cosine", "euclidean"}
        Distance between a target and a candidate.
    distinct : bool
        Skip candidates already taken (True) or keep repeats (False, the paper's code).
    neighbours : int, optional
        Neighbours computed per target at first; default ``ceil(budget / m)`` doubled plus 8. With
        ``distinct=True`` it is doubled (and everything recomputed) while collisions leave fewer than
        ``budget`` distinct candidates; the result does not depend on it.
    device, dtype, max_block_elements, progress
        As :func:`nearest_neighbours`.

    Returns
    -------
    Selection
        ``scores`` are each selected row's distance (cosine, or squared Euclidean) to the target that
        claimed it first (lower is better, not sorted across rounds); ``all_scores`` is None.
    """
    if metric not in ("cosine", "euclidean"):
        raise GotdInputError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    if not isinstance(distinct, (bool, np.bool_)):
        raise GotdInputError(f"distinct must be True or False, got {distinct!r}")
    x, y = (unit_rows(pool, "pool"), unit_rows(target, "target")) if metric == "cosine" else (pool, target)
    n, m = x.shape[0], y.shape[0]
    per_target = math.ceil(budget / m)
    k = min(n, check_positive_int(neighbours, "neighbours") if neighbours is not None else 2 * per_target + 8)
    if not distinct:
        k = max(k, per_target)
    initial_k, recomputed = k, 0
    while True:
        dist, idx = nearest_neighbours(y, x, k, device=device, dtype=dtype, max_block_elements=max_block_elements,
                                       progress=progress)
        flat_idx, flat_dist = round_robin_order(dist, idx)
        _, first = np.unique(flat_idx, return_index=True)
        if not distinct or first.size >= budget or k == n:
            break
        k, recomputed = min(n, 2 * k), recomputed + 1
    scale = 0.5 if metric == "cosine" else 1.0  # ||u - v||^2 = 2 (1 - cos) for unit rows
    diagnostics: dict[str, Any] = {"neighbours_per_target": k, "recomputed": recomputed, "n_target": m,
                                   "device": str(resolve_device(device))}
    if distinct:
        taken = np.sort(first)[:budget]  # first claim of each candidate, in claiming order
        indices, scores = flat_idx[taken], scale * flat_dist[taken]
        diagnostics["rounds"] = int(taken[-1] // m) + 1
    else:
        claims = flat_idx[:budget]
        rows, first_claim, counts = np.unique(claims, return_index=True, return_counts=True)
        order = np.argsort(first_claim, kind="stable")
        indices, scores = rows[order], scale * flat_dist[first_claim[order]]
        diagnostics.update(rounds=per_target, multiplicity=counts[order].tolist(),
                           repeated_claims=int(budget - rows.size))
    params = {"budget": budget, "seed": seed, "metric": metric, "distinct": bool(distinct), "neighbours": initial_k,
              **neighbour_options(device, dtype, max_block_elements)}
    score_name = ("cosine_distance" if metric == "cosine" else "squared_distance") + "_to_claiming_target"
    return Selection(indices=indices, scores=scores, method="knn", params=params, diagnostics=diagnostics, seed=seed,
                     all_scores=None, score_name=score_name, score_order="lower_is_better", n_pool=n)
