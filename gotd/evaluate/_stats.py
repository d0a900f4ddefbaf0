"""Statistics of the evaluations: percentile bootstrap intervals, accuracy and macro-F1."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gotd.errors import GotdInputError


def bootstrap_ci(statistic: Callable[[np.ndarray], float], n: int, *, n_bootstrap: int = 1000,
                 confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over ``n`` items.

    Parameters
    ----------
    statistic : callable
        Maps an index array (a resample of ``range(n)`` with replacement) to a number.
    n : int
        Number of items.
    n_bootstrap : int
        Resamples (0 returns NaNs).
    confidence : float
        Coverage of the interval, e.g. 0.95 for the 2.5th and 97.5th percentiles.
    seed : int
        Seed of the resampling (``numpy.random.default_rng``).
    """
    if not 0 < confidence < 1:
        raise GotdInputError(f"confidence={confidence} must be in (0, 1)")
    if n_bootstrap <= 0 or n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n, size=n)) for _ in range(n_bootstrap)], dtype=np.float64)
    alpha = (1 - confidence) / 2
    low, high = np.nanquantile(values, [alpha, 1 - alpha])
    return float(low), float(high)


def _macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Unweighted mean F1 over the classes that occur in ``y_true`` or ``y_pred`` (as scikit-learn)."""
    present = np.union1d(y_true, y_pred)
    scores = []
    for c in present:
        tp = np.sum((y_pred == c) & (y_true == c))
        fp = np.sum((y_pred == c) & (y_true != c))
        fn = np.sum((y_pred != c) & (y_true == c))
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(scores)) if scores else float("nan")


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int, *,
                           n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0) -> list[dict[str, Any]]:
    """Accuracy and macro-F1 with bootstrap intervals over examples, as result rows (without model/task).

    ``y_true`` and ``y_pred`` are class indices in ``range(n_classes)``.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    n = int(y_true.size)
    rows = []
    for metric, fn in (("accuracy", lambda t, p: float(np.mean(t == p))),
                       ("macro_f1", lambda t, p: _macro_f1(t, p, n_classes))):
        low, high = bootstrap_ci(lambda idx: fn(y_true[idx], y_pred[idx]), n, n_bootstrap=n_bootstrap,
                                 confidence=confidence, seed=seed)
        rows.append({"metric": metric, "value": fn(y_true, y_pred), "seed": seed, "n": n,
                     "ci_low": low, "ci_high": high})
    return rows
