"""Every embedding selector, every dtype it accepts, extreme magnitudes: the right picks or one clear error."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from gotd.errors import GotdInputError
from gotd.selectors import methods_taking, run_selector

SCALE_INVARIANT = {"gotd", "gotd_contrast", "knn", "matching"}
"""Selectors whose picks do not change when both embeddings are multiplied by one factor (OT: eps_rel scales
with the cost); tsds has an absolute bandwidth and cost scale, so its picks are compared at the same scale."""


@pytest.fixture(scope="module")
def embeddings() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(120, 16)), rng.normal(size=(25, 16)) + 0.5


# powers of two, so that scaling back for the reference is exact: float16 rows with norm > 255,
# float32 and float64 around 1e19 and 1e-19
CASES = [("float16", 2.0 ** 8), ("float16", 2.0 ** -6), ("float32", 2.0 ** 64), ("float32", 2.0 ** -64),
         ("float64", 2.0 ** 64), ("float64", 2.0 ** -64)]


@pytest.mark.parametrize("method", methods_taking("embeddings"))
@pytest.mark.parametrize(("dtype", "scale"), CASES)
def test_extreme_magnitudes_give_the_float64_picks(embeddings, method: str, dtype: str, scale: float) -> None:
    pool, target = embeddings
    low_pool, low_target = (pool * scale).astype(dtype), (target * scale).astype(dtype)
    # the reference: the same (rounded) values in float64, at unit scale where the selector allows it
    back = 1.0 / scale if method in SCALE_INVARIANT else 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # an overflow warning is a wrong answer here
        ref = run_selector(low_pool.astype(np.float64) * back, low_target.astype(np.float64) * back, 15,
                           method=method)
        got = run_selector(low_pool, low_target, 15, method=method)
    assert got.indices.tolist() == ref.indices.tolist()
    assert np.isfinite(got.scores).all()


@pytest.mark.parametrize("method", methods_taking("embeddings"))
@pytest.mark.parametrize("scale", [1e200, 1e-200])
def test_costs_beyond_float64_are_one_clear_error(embeddings, method: str, scale: float) -> None:
    pool, target = embeddings
    try:
        got = run_selector(pool * scale, target * scale, 15, method=method)
    except GotdInputError as exc:
        message = str(exc)
        assert "do not fit in float64" in message and "common factor" in message and "eps" not in message.split(";")[0]
        return
    assert method == "knn"  # cosine geometry only needs directions, which the safe norms keep
    assert got.indices.tolist() == run_selector(pool, target, 15, method=method).indices.tolist()
