"""The solver never fails silently: divergence, bad options, strided input, subsample eps, outlier rows."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gotd.errors import GotdConvergenceError, GotdInputError
from gotd.ot import cost_moments, cost_scale, ot_gradients, ot_gradients_with_diagnostics, sinkhorn

from ot_problems import clustered


def gaussian_problem(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(300, 8)), rng.normal(size=(40, 8)) + rng.normal()


def top(scores: np.ndarray, frac: float) -> set[int]:
    return set(np.argsort(scores, kind="stable")[: max(1, int(round(frac * len(scores))))].tolist())


def dense_marginal_errors(pool: np.ndarray, target: np.ndarray, f: np.ndarray, g: np.ndarray,
                          eps: float) -> tuple[float, float]:
    """L1 errors of the pool and target marginals of the plan of (f, g), in float64 from the dense cost."""
    cost = ((pool[:, None, :] - target[None, :, :]) ** 2).sum(-1)
    n, m = cost.shape
    plan = np.exp((f[:, None] + g[None, :] - cost) / eps) / (n * m)
    return float(np.abs(plan.sum(1) - 1 / n).sum()), float(np.abs(plan.sum(0) - 1 / m).sum())


# ---- divergence -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["stored", "online"])
def test_overrelaxation_that_blows_up_is_restarted_at_omega_one(path: str) -> None:
    # Seed 2 at omega = 1.9 grew to a marginal error ~1e304 and was returned as finite, wrong potentials.
    pool, target = gaussian_problem(2)
    with pytest.warns(RuntimeWarning, match="diverged.*restarting with omega=1.0"):
        res = sinkhorn(pool, target, omega=1.9, path=path)
    plain = sinkhorn(pool, target, omega=1.0, path=path)
    diag = res.diagnostics
    assert diag["diverged"] and diag["restarted"] and diag["converged"] and diag["omega"] == 1.0
    assert diag["omega_requested"] == 1.9 and diag["restart_iteration"] >= 2
    assert diag["marginal_error"] <= diag["tol"]
    np.testing.assert_allclose(res.f, plain.f, atol=1e-4 * pool.var())
    assert not plain.diagnostics["restarted"] and plain.diagnostics["restart_iteration"] is None


def test_a_solve_that_diverges_again_after_the_restart_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    import gotd.ot._solver as solver

    def exploding(dots, f, g, log_a, log_b, eps, omega, pool_error=False):
        return f, g, float("inf"), float("inf")

    monkeypatch.setattr(solver, "log_domain_step", exploding)
    pool, target = gaussian_problem(0)
    with pytest.warns(RuntimeWarning, match="diverged"):
        with pytest.raises(GotdConvergenceError, match=r"eps=.*omega=1.5.*raise eps"):
            sinkhorn(pool, target, path="online")


def test_well_posed_problems_are_not_flagged() -> None:
    for seed in range(4):
        diag = sinkhorn(*gaussian_problem(seed)).diagnostics
        assert diag["converged"] and not diag["diverged"] and not diag["restarted"]


# ---- options ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [{"eps": float("inf")}, {"eps": float("nan")}, {"eps": 0.0}, {"eps": -1.0},
                                    {"eps_rel": float("inf")}, {"eps_rel": float("nan")}, {"eps_rel": 0.0},
                                    {"tol": float("nan")}, {"tol": 0.0}])
def test_non_finite_or_non_positive_regularisation_is_rejected(kwargs: dict) -> None:
    pool, target = gaussian_problem(0)
    name = next(iter(kwargs))
    with pytest.raises(GotdInputError, match=rf"{name} must be > 0 and finite"):
        ot_gradients(pool, target, **kwargs)


@pytest.mark.parametrize("max_iter", [0, -3, 2.5])
def test_max_iter_below_one_is_rejected(max_iter) -> None:
    with pytest.raises(GotdInputError, match="max_iter must be an integer >= 1"):
        sinkhorn(*gaussian_problem(0), max_iter=max_iter)


def test_unknown_options_are_named() -> None:
    with pytest.raises(GotdInputError, match="'epsilon'"):
        ot_gradients(*gaussian_problem(0), epsilon=0.1)


# ---- strided input ----------------------------------------------------------------------------------------
def test_reversed_and_strided_views_give_the_same_gradients_as_copies() -> None:
    pool, target = clustered(400, 30, seed=1)
    wide = np.concatenate([pool, pool], axis=1)  # a column slice of it is non-contiguous
    views = {
        "reversed": (pool[::-1], target[::-1]),
        "every other column pair": (wide[:, : pool.shape[1]], target),
        "fortran order": (np.asfortranarray(pool), target),
        "torch transpose view": (torch.from_numpy(np.ascontiguousarray(pool.T)).T, torch.from_numpy(target)),
    }
    for name, (x, y) in views.items():
        got = ot_gradients(x, y)
        want = ot_gradients(np.ascontiguousarray(np.asarray(x)), np.ascontiguousarray(np.asarray(y)))
        np.testing.assert_array_equal(got, want, err_msg=name)
    np.testing.assert_allclose(ot_gradients(pool[::-1], target)[::-1], ot_gradients(pool, target), atol=1e-5)


def test_text_input_is_still_named() -> None:
    with pytest.raises(GotdInputError, match="pool: expected real numbers"):
        sinkhorn(np.array([["a", "b"]]), np.ones((2, 2)))


# ---- subsampling ------------------------------------------------------------------------------------------
def test_subsample_eps_comes_from_the_full_pool_and_not_the_seed() -> None:
    pool, target = clustered(3000, 40, seed=5)
    _, full_std = cost_moments(pool, target)
    eps = {seed: ot_gradients_with_diagnostics(pool, target, subsample=300, seed=seed)[1]["eps"] for seed in range(4)}
    assert len(set(eps.values())) == 1
    assert eps[0] == pytest.approx(0.05 * full_std, rel=1e-12)


# ---- the cost scale under an outlier row ----------------------------------------------------------------
def _with_outlier(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pool, target = clustered(2000, 100, seed=seed)
    moved = target.copy()
    moved[0] += 30.0  # one target row moved 30 units away from everything
    return pool, target, moved


def test_row_shares_find_the_outlier_row() -> None:
    pool, target, moved = _with_outlier()
    clean, dirty = cost_scale(pool, target), cost_scale(pool, moved)
    assert clean["max_row_share_target"] < 0.05 and clean["max_row_share_pool"] < 0.01
    assert dirty["max_row_share_target"] > 0.5
    # the shares are exact: check against the dense cost
    cost = ((pool[:, None, :] - moved[None, :, :]) ** 2).sum(-1)
    dense = ((cost - cost.mean()) ** 2).mean(axis=0) / cost.var() / cost.shape[1]
    assert dirty["max_row_share_target"] == pytest.approx(dense.max(), rel=1e-6)


def test_an_outlier_row_that_sets_eps_is_warned_about() -> None:
    pool, _, moved = _with_outlier()
    with pytest.warns(RuntimeWarning, match="one target row accounts for .* of the variance"):
        sinkhorn(pool, moved)


def test_median_scale_keeps_the_clean_selection_under_an_outlier_row() -> None:
    pool, target, moved = _with_outlier()
    clean = ot_gradients(pool, target, eps_scale="median")
    dirty = ot_gradients(pool, moved, eps_scale="median")
    overlap = len(top(clean, 0.05) & top(dirty, 0.05)) / len(top(clean, 0.05))
    assert overlap >= 0.9
    diag = ot_gradients_with_diagnostics(pool, moved, eps_scale="median")[1]
    assert diag["eps_scale"] == "median"
    assert diag["eps"] == pytest.approx(0.05 * diag["scale"])


def test_pool_stopping_rule_bounds_the_pool_marginal() -> None:
    pool, target = clustered(300, 30, seed=2)
    res = sinkhorn(pool, target, eps=1.0, tol=1e-3, stop_marginal="pool", path="online", block_size=64)
    pool_error, _ = dense_marginal_errors(pool, target, res.f, res.g, 1.0)
    assert res.diagnostics["converged"] and res.diagnostics["stop_marginal"] == "pool"
    assert pool_error <= 1e-3 and pool_error == pytest.approx(res.diagnostics["marginal_error"], rel=1e-2)
    stored = sinkhorn(pool, target, eps=1.0, tol=1e-3, stop_marginal="pool", path="stored")
    assert dense_marginal_errors(pool, target, stored.f, stored.g, 1.0)[0] <= 1e-3
    assert stored.diagnostics["iterations"] == res.diagnostics["iterations"]
