"""What changes a GOT-D ranking: solver settings, how the pool is split, pool size, calibration.

Every function compares rankings against a reference by

- top-k agreement, :math:`|\\mathrm{top}_k(s) \\cap \\mathrm{top}_k(s_{ref})| / k` (1 = same selection),
  where top-k is the k lowest scores (GOT-D selects the most negative gradients), and
- Spearman rank correlation of the full score vectors.

They measure the *selection*; whether a change in the selection changes a fine-tuned model is the job of
the pre-fine-tuning and evaluation notebooks.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from gotd.errors import GotdInputError
from gotd.ot import calibrated_gradients, ot_gradients_with_diagnostics, sinkhorn

STRATEGIES = ("global", "chunks", "subsample")
"""How the OT problem over the pool is solved: one global solve, independent chunks, subsample + c-transform."""


def top_k(scores: Any, k: int) -> np.ndarray:
    """Indices of the k lowest scores, ties by lower index (the order :mod:`gotd.selectors` uses)."""
    scores = np.asarray(scores, dtype=np.float64)
    if not 1 <= k <= scores.size:
        raise GotdInputError(f"k={k} must be between 1 and the number of scores ({scores.size})")
    return np.argsort(scores, kind="stable")[:k]


def topk_agreement(scores: Any, reference: Any, k: int) -> float:
    """Share of the reference's top k (lowest scores) that ``scores`` also puts in its top k."""
    scores, reference = np.asarray(scores), np.asarray(reference)
    if scores.shape != reference.shape:
        raise GotdInputError(f"scores {scores.shape} and reference {reference.shape} must score the same rows")
    return len(np.intersect1d(top_k(scores, k), top_k(reference, k))) / k


def spearman(x: Any, y: Any) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either vector is constant."""
    rx = pd.Series(np.asarray(x, dtype=np.float64)).rank().to_numpy()
    ry = pd.Series(np.asarray(y, dtype=np.float64)).rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def _k_of(fraction: float, n: int) -> int:
    if not 0.0 < fraction <= 1.0:
        raise GotdInputError(f"budget fractions must be in (0, 1], got {fraction}")
    return max(1, int(round(fraction * n)))


def chunked_gradients(pool: Any, target: Any, n_chunks: int, *, seed: int = 0, **ot_options: Any) -> np.ndarray:
    """Calibrated gradients from ``n_chunks`` independent OT problems on a seeded random split of the pool.

    Each chunk is solved against the whole target and its gradients are calibrated within the chunk;
    the scores are then ranked together as if they came from one problem. This is what the design
    warns against (each chunk must transport the whole target on its own); it is here to measure that.
    """
    pool = np.asarray(pool)
    n = len(pool)
    if not 1 <= n_chunks <= n // 2:
        raise GotdInputError(f"n_chunks={n_chunks} must be between 1 and n/2={n // 2} (each chunk needs >= 2 rows)")
    parts = np.array_split(np.random.default_rng(seed).permutation(n), n_chunks)
    scores = np.empty(n, dtype=np.float64)
    for rows in parts:
        rows = np.sort(rows)
        scores[rows] = calibrated_gradients(sinkhorn(pool[rows], target, **ot_options).f)
    return scores


def strategy_scores(pool: Any, target: Any, strategy: str, *, setting: float | int | None = None, seed: int = 0,
                    **ot_options: Any) -> tuple[np.ndarray, float]:
    """Scores of every pool row under one solve strategy, and the seconds it took.

    ``strategy`` is ``"global"`` (``setting`` unused), ``"chunks"`` (``setting`` = number of chunks) or
    ``"subsample"`` (``setting`` = fraction or count of rows in the solve, then the c-transform).
    """
    started = time.perf_counter()
    if strategy == "global":
        scores, _ = ot_gradients_with_diagnostics(pool, target, **ot_options)
    elif strategy == "chunks":
        scores = chunked_gradients(pool, target, int(setting), seed=seed, **ot_options)
    elif strategy == "subsample":
        scores, _ = ot_gradients_with_diagnostics(pool, target, subsample=setting, seed=seed, **ot_options)
    else:
        raise GotdInputError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    return scores, time.perf_counter() - started


def compare_strategies(pool: Any, target: Any, *, chunk_counts: Sequence[int] = (2, 10),
                       subsample_fractions: Sequence[float] = (0.1, 0.5),
                       budget_fractions: Sequence[float] = (0.01, 0.05), seeds: Sequence[int] = (0,),
                       progress: bool = False, **ot_options: Any) -> pd.DataFrame:
    """Top-k agreement with one global solve for independent chunks and for subsample + c-transform.

    Returns
    -------
    pandas.DataFrame
        Columns ``strategy``, ``setting`` (chunks, or subsample fraction), ``seed``, ``budget_fraction``,
        ``k``, ``topk_agreement``, ``spearman``, ``seconds``. The global solve itself is the row with
        agreement 1 (its seconds are the reference cost).
    """
    n = len(np.asarray(pool))
    reference, ref_seconds = strategy_scores(pool, target, "global", **ot_options)
    rows = []
    for fraction in budget_fractions:
        k = _k_of(fraction, n)
        rows.append({"strategy": "global", "setting": None, "seed": None, "budget_fraction": fraction, "k": k,
                     "topk_agreement": 1.0, "spearman": 1.0, "seconds": ref_seconds})
    jobs = [("chunks", c, s) for c in chunk_counts for s in seeds]
    jobs += [("subsample", f, s) for f in subsample_fractions for s in seeds]
    for strategy, setting, seed in tqdm(jobs, desc="strategies", disable=not progress, leave=False):
        scores, seconds = strategy_scores(pool, target, strategy, setting=setting, seed=seed, **ot_options)
        rho = spearman(scores, reference)
        for fraction in budget_fractions:
            k = _k_of(fraction, n)
            rows.append({"strategy": strategy, "setting": setting, "seed": seed, "budget_fraction": fraction,
                         "k": k, "topk_agreement": topk_agreement(scores, reference, k), "spearman": rho,
                         "seconds": seconds})
    return pd.DataFrame(rows)


def sweep_solver_option(pool: Any, target: Any, name: str, values: Sequence[Any], *, reference: Any,
                        budget_fractions: Sequence[float] = (0.01, 0.05), progress: bool = False,
                        **ot_options: Any) -> tuple[pd.DataFrame, dict[Any, np.ndarray]]:
    """Solve once per value of one :func:`gotd.ot.sinkhorn` option (``eps_rel``, ``tol``...) and compare.

    Parameters
    ----------
    name : str
        The option swept; every other option comes from ``ot_options``.
    values : sequence
        Its values.
    reference : array-like, shape (n,)
        The scores to compare with (e.g. a tightly converged solve at the default settings).

    Returns
    -------
    table : pandas.DataFrame
        Columns ``option``, ``value``, ``budget_fraction``, ``k``, ``topk_agreement``, ``spearman``, and
        the solve's ``eps``, ``eps_rel``, ``iterations``, ``marginal_error``, ``converged``, ``seconds``.
    scores : dict
        The scores of every value, for plots.
    """
    if name in ot_options:
        raise GotdInputError(f"{name!r} is the swept option; do not also pass it as a fixed option")
    reference = np.asarray(reference, dtype=np.float64)
    n = reference.size
    rows, all_scores = [], {}
    for value in tqdm(values, desc=f"sweep {name}", disable=not progress, leave=False):
        scores, diag = ot_gradients_with_diagnostics(pool, target, **{name: value}, **ot_options)
        all_scores[value] = scores
        rho = spearman(scores, reference)
        for fraction in budget_fractions:
            k = _k_of(fraction, n)
            rows.append({"option": name, "value": value, "budget_fraction": fraction, "k": k,
                         "topk_agreement": topk_agreement(scores, reference, k), "spearman": rho,
                         **{key: diag[key] for key in ("eps", "eps_rel", "iterations", "marginal_error",
                                                         "converged", "seconds")}})
    return pd.DataFrame(rows), all_scores


def pool_size_effect(pool: Any, target: Any, sizes: Sequence[float], *, reference: Any,
                     budget_fraction: float = 0.05, labels: Sequence[Any] | None = None, seed: int = 0,
                     progress: bool = False, **ot_options: Any) -> pd.DataFrame:
    """Solve on seeded random sub-pools and compare with the full pool's ranking of the same rows.

    For a sub-pool S, the reference ranking restricted to S is the full solve's order of S's rows; the
    agreement says whether the rows that look best among S depend on which other candidates are present.

    Parameters
    ----------
    sizes : sequence of float
        Sub-pool sizes as fractions of the pool, in (0, 1].
    labels : sequence, optional
        A label per pool row (e.g. domain); adds the selection's share of each label as ``share:<label>``.

    Returns
    -------
    pandas.DataFrame
        Columns ``pool_fraction``, ``pool_rows``, ``k``, ``topk_agreement``, ``spearman``, ``eps``,
        ``iterations`` (and ``share:<label>``).
    """
    pool = np.asarray(pool)
    reference = np.asarray(reference, dtype=np.float64)
    n = len(pool)
    rng = np.random.default_rng(seed)
    rows = []
    for fraction in tqdm(sizes, desc="pool sizes", disable=not progress, leave=False):
        size = _k_of(fraction, n)
        if size < 2:
            raise GotdInputError(f"pool fraction {fraction} leaves {size} rows; need at least 2")
        sub = np.sort(rng.choice(n, size=size, replace=False)) if size < n else np.arange(n)
        scores, diag = ot_gradients_with_diagnostics(pool[sub], target, **ot_options)
        k = _k_of(budget_fraction, size)
        row = {"pool_fraction": float(fraction), "pool_rows": size, "k": k,
               "topk_agreement": topk_agreement(scores, reference[sub], k),
               "spearman": spearman(scores, reference[sub]), "eps": diag["eps"], "iterations": diag["iterations"]}
        if labels is not None:
            chosen = pd.Series(np.asarray(labels, dtype=object)[sub][top_k(scores, k)])
            for label, share in chosen.value_counts(normalize=True).items():
                row[f"share:{label}"] = share
        rows.append(row)
    table = pd.DataFrame(rows)
    shares = [c for c in table.columns if c.startswith("share:")]
    table[shares] = table[shares].fillna(0.0)  # a label absent from a selection has share 0
    return table


def calibration_check(problems: Mapping[str, tuple[Any, Any]], **ot_options: Any) -> pd.DataFrame:
    """Raw potentials against calibrated gradients on several problems.

    For each named (pool, target) problem: Spearman between the raw candidate potential ``f`` and the
    calibrated gradient (1 when calibration changes no ranking), and the mean and spread of each. Raw
    potentials carry an arbitrary per-problem offset (``f + c, g - c`` is the same solution); calibrated
    gradients are centred, so they can be compared across problems.
    """
    rows = []
    for name, (pool, target) in problems.items():
        result = sinkhorn(pool, target, **ot_options)
        grad = calibrated_gradients(result.f)
        rows.append({"problem": name, "n": len(result.f), "spearman_raw_vs_calibrated": spearman(result.f, grad),
                     "raw_mean": float(result.f.mean()), "raw_std": float(result.f.std()),
                     "calibrated_mean": float(grad.mean()), "calibrated_std": float(grad.std()),
                     "eps": result.diagnostics["eps"]})
    return pd.DataFrame(rows)


def variant_encoder(model: str, variant: str, *, max_length: int = 256) -> Any:
    """The encoder of an encoder-settings variant: ``"mean"``, ``"cls"``, ``"mean_with_padding"``, each
    optionally with ``"+normalize"`` (unit-length embeddings)."""
    from gotd.stages import encoder_for

    pooling, _, extra = variant.partition("+")
    if extra not in ("", "normalize"):
        raise GotdInputError(f"encoder variant {variant!r}: write POOLING or POOLING+normalize (e.g. mean+normalize)")
    return encoder_for(model, pooling=pooling, normalize=extra == "normalize", max_length=max_length)


def encoder_variants_table(pool_texts: Sequence[str], target_texts: Sequence[str], variants: Sequence[str], *,
                           model: str, reference: Any, ks: Mapping[float, int], k_main: int,
                           base: tuple[Any, Any], max_length: int = 256, cache_dir: Any = None,
                           **ot_options: Any) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """GOT-D rankings under other encoder settings, against the reference ranking.

    The first variant is the reference's own: its embeddings are ``base`` (not computed again). Returns
    one row per variant and budget fraction (``topk_agreement``, ``spearman``, ``iterations``) and each
    variant's top ``k_main`` selection.
    """
    rows, selections = [], {}
    for i, variant in enumerate(variants):
        if i == 0:
            p_emb, t_emb = base
        else:
            enc = variant_encoder(model, variant, max_length=max_length)
            p_emb, t_emb = (enc.encode(list(t), cache_dir=cache_dir) for t in (pool_texts, target_texts))
        scores, diag = ot_gradients_with_diagnostics(p_emb, t_emb, **ot_options)
        selections[variant] = top_k(scores, k_main)
        for fraction, k in ks.items():
            rows.append({"variant": variant, "budget_fraction": fraction, "k": k,
                         "topk_agreement": topk_agreement(scores, reference, k),
                         "spearman": spearman(scores, reference), "iterations": diag["iterations"]})
    return pd.DataFrame(rows), selections


def record_table(run: Any, table: pd.DataFrame, ablation: str, setting_column: str, *, task: str, model: str,
                 metrics: tuple[str, ...] = ("topk_agreement", "spearman")) -> int:
    """File an ablation table in a run's results (``run.add_result``): one row per setting, budget and metric.

    Non-finite values are left out (a setting that could not be measured). Returns the rows filed.
    """
    filed = 0
    for row in table.to_dict(orient="records"):
        for metric in metrics:
            value = row.get(metric)
            if value is None or not np.isfinite(value):
                continue
            run.add_result(task=task, method="gotd", budget=row.get("k"), seed=row.get("seed"), model=model,
                           metric=metric, value=float(value), ablation=ablation, setting=str(row[setting_column]),
                           budget_fraction=row.get("budget_fraction"))
            filed += 1
    return filed


def smoke_knobs(smoke: bool, **knobs: list[Any]) -> tuple[list[Any], ...]:
    """The ablation notebook's knob lists, cut to a few settings each in smoke mode (in the order given).

    Cuts: one budget fraction (0.1), every third eps, every other tolerance, the first chunk count, the last
    subsample fraction, pool fractions 0.5 and 1, budgets 5/10/20, two encoder variants, one seed.
    """
    if not smoke:
        return tuple(knobs.values())
    cuts = {"budget_fractions": lambda v: [0.1], "eps_rel_values": lambda v: v[::3], "tol_values": lambda v: v[::2],
            "chunk_counts": lambda v: v[:1], "subsample_fractions": lambda v: v[-1:],
            "pool_fractions": lambda v: [0.5, 1.0], "budgets": lambda v: [5, 10, 20],
            "encoder_variants": lambda v: v[:2], "seeds": lambda v: v[:1]}
    print("smoke mode: fewer settings per knob")
    return tuple(cuts[name](list(value)) if name in cuts else value for name, value in knobs.items())
