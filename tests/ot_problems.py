"""Synthetic OT problems shared by the solver's test modules."""
from __future__ import annotations

import numpy as np


def clustered(n: int, m: int, d: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A pool of ``n`` points around six Gaussian centres and a target of ``m`` points around three of them.

    The target covers only half of the pool's clusters, so the pool under-represents it unevenly: the
    setting where the ranking of candidates matters.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(6, d))
    pool = centres[rng.integers(0, 6, n)] + rng.normal(size=(n, d))
    target = centres[rng.integers(0, 3, m)] + rng.normal(size=(m, d))
    return pool, target
