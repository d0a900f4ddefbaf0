"""The random baseline: a seeded uniform sample without replacement."""
from __future__ import annotations

from typing import Any

import numpy as np

from gotd.selection import Selection


def select_random(pool: Any, target: Any, budget: int, *, seed: int = 0) -> Selection:
    """A uniform sample of ``budget`` pool rows without replacement: the first rows of a seeded permutation.

    ``pool`` may be embeddings or texts (only its length is used); ``target`` is ignored. Nested budgets
    are prefixes of the same permutation, ``numpy.random.default_rng(seed).permutation(n)``. ``scores``
    are the positions 0..budget-1 (lower first).
    """
    n = len(pool)
    order = np.random.default_rng(seed).permutation(n)[:budget].astype(np.int64)
    return Selection(indices=order, scores=np.arange(budget, dtype=np.float64), method="random",
                     params={"budget": budget, "seed": seed}, diagnostics={}, seed=seed, all_scores=None,
                     score_name="permutation_position", score_order="lower_is_better", n_pool=n)
