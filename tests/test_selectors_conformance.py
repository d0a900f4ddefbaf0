"""One contract for every registered selector (like scikit-learn's check_estimator).

Parametrised over ``available_methods()``: a selector registered tomorrow gets these checks with no
edit here. Inputs are built from the kind each selector declares (``SelectorSpec.inputs``).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from gotd.errors import GotdInputError
from gotd.selectors import available_methods, get_selector, run_selector

N = 240
WORDS = "the a striker goal bank rates onion garlic telescope galaxy , . ! ( ) don't e-mail 3,000".split()


def inputs_for(kind: str, seed: int = 0) -> tuple[object, object]:
    rng = np.random.default_rng(seed)
    if kind == "texts":
        pool = [" ".join(rng.choice(WORDS, size=int(rng.integers(60, 160)))) for _ in range(N)]
        target = [" ".join(rng.choice(WORDS[6:12], size=120)) for _ in range(10)]
        return pool, target
    return rng.normal(size=(N, 4)), rng.normal(size=(30, 4)) + 0.7


def wrong_kind(kind: str) -> tuple[object, object]:
    """Inputs of another kind than the declared one."""
    if kind == "embeddings":
        return inputs_for("texts")
    if kind == "texts":
        return inputs_for("embeddings")
    return 12345, None  # "none" needs a pool with a length


@pytest.fixture(params=available_methods())
def spec(request):
    return get_selector(request.param)


def run(spec, budget, seed=0, **options):
    pool, target = inputs_for(spec.inputs)
    with _quiet():
        return run_selector(pool, target, budget, method=spec.name, seed=seed, **options)


class _quiet:
    """Selectors may warn about their inputs (e.g. dsir's short texts); the contract does not depend on it."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", UserWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


@pytest.mark.parametrize("budget", [1, 37, N])
def test_budget_respected_without_repeats_in_range(spec, budget):
    sel = run(spec, budget)
    assert sel.method == spec.name and sel.n_pool == N and sel.indices.dtype == np.int64
    assert sel.budget == budget and np.unique(sel.indices).size == budget
    assert sel.indices.min() >= 0 and sel.indices.max() < N
    assert sel.scores.shape == (budget,) and np.isfinite(sel.scores).all()
    assert sel.params["budget"] == budget and sel.params["seed"] == 0


def test_deterministic_for_a_seed(spec):
    a, b = run(spec, 50, seed=11), run(spec, 50, seed=11)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.scores, b.scores)
    if not spec.randomized:  # a selector that declares no randomness ignores the seed
        np.testing.assert_array_equal(a.indices, run(spec, 50, seed=12).indices)


def test_randomized_selectors_use_the_seed(spec):
    if not spec.randomized:
        pytest.skip(f"{spec.name} declares randomized=False")
    draws = {tuple(run(spec, 50, seed=s).indices.tolist()) for s in range(4)}
    assert len(draws) > 1


def test_record_is_json_safe(spec):
    sel = run(spec, 20)
    json.dumps({"params": sel.params, "diagnostics": sel.diagnostics}, allow_nan=False)


def test_declared_progress_is_accepted(spec):
    if spec.progress:
        assert run(spec, 5, progress=False).budget == 5
    else:
        with pytest.raises(GotdInputError, match="progress"):
            run(spec, 5, progress=True)


@pytest.mark.parametrize("budget", [0, -3, N + 1, 2.5, True, "10"])
def test_bad_budget(spec, budget):
    with pytest.raises(GotdInputError, match="budget"):
        run(spec, budget)


def test_wrong_input_kind(spec):
    pool, target = wrong_kind(spec.inputs)
    with pytest.raises(GotdInputError):
        run_selector(pool, target, 5, method=spec.name)


def test_wrong_shapes(spec):
    pool, target = inputs_for(spec.inputs)
    if spec.inputs == "embeddings":
        bad = [(pool[0], target, "2-D"), (pool, target[:, :3], "features"), (pool, target[:0], "at least one row"),
               (pool[:0], target, "at least one row")]
    elif spec.inputs == "texts":
        bad = [("one string", target, "single string"), (pool, [], "no texts"), (pool[:3] + [None], target, "string")]
    else:
        bad = [([], target, "empty")]
    for p, t, message in bad:
        with pytest.raises(GotdInputError, match=message):
            run_selector(p, t, 1, method=spec.name)


def test_unknown_option(spec):
    with pytest.raises(GotdInputError, match="no_such_option"):
        run(spec, 5, no_such_option=1)


def test_bad_seed(spec):
    with pytest.raises(GotdInputError, match="seed"):
        run(spec, 5, seed=-1)
