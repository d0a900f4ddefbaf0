"""The OT solver against POT, the gradient against finite differences, and the scoring helpers."""
from __future__ import annotations

import numpy as np
import ot as pot
import pytest
import torch
from scipy.stats import spearmanr

from gotd import ot_gradients
from gotd.errors import GotdConvergenceError, GotdInputError
from gotd.ot import (
    c_transform_scores,
    calibrated_gradients,
    cost_moments,
    ot_gradients_with_diagnostics,
    resolve_compile,
    resolve_eps,
    resolve_gemm_dtype,
    sinkhorn,
)

from gotd.ot._inputs import _as_matrix
from ot_problems import clustered


def pot_potential(pool: np.ndarray, target: np.ndarray, eps: float) -> np.ndarray:
    """Candidate potential from POT's float64 log-domain Sinkhorn, in cost units."""
    cost = pot.dist(pool, target)
    a = np.full(len(pool), 1 / len(pool))
    b = np.full(len(target), 1 / len(target))
    _, log = pot.bregman.sinkhorn_log(a, b, cost, eps, numItermax=200_000, stopThr=1e-11, log=True)
    return eps * log["log_u"]


def entropic_value(pool: np.ndarray, target: np.ndarray, a: np.ndarray, b: np.ndarray, eps: float) -> float:
    """<P, C> + eps KL(P | a x b) at POT's float64 optimum."""
    cost = pot.dist(pool, target)
    plan = pot.bregman.sinkhorn_log(a, b, cost, eps, numItermax=200_000, stopThr=1e-13)
    ref = np.outer(a, b)
    mask = plan > 0
    kl = np.sum(plan[mask] * np.log(plan[mask] / ref[mask])) - plan.sum() + ref.sum()
    return float(np.sum(plan * cost) + eps * kl)


@pytest.mark.parametrize("eps_rel", [0.5, 0.1, 0.05])
@pytest.mark.parametrize("path", ["stored", "online"])
def test_potentials_match_pot(eps_rel: float, path: str) -> None:
    pool, target = clustered(600, 40)
    res = sinkhorn(pool, target, eps_rel=eps_rel, tol=1e-5, path=path, block_size=128)
    reference = pot_potential(pool, target, res.diagnostics["eps"])
    assert res.diagnostics["converged"]
    assert spearmanr(res.f, reference)[0] >= 0.999
    # Same ranking of the top 5%: what a selection would take.
    k = 30
    assert set(np.argsort(res.f)[:k]) == set(np.argsort(reference)[:k])
    # Up to an additive constant (POT's potentials carry eps log a), the values agree in cost units.
    gap = (res.f - res.f.mean()) - (reference - reference.mean())
    assert np.abs(gap).max() <= 1e-3 * np.ptp(reference)


def test_default_tolerance_already_gives_the_converged_top_selection() -> None:
    pool, target = clustered(2000, 50, seed=3)
    loose = sinkhorn(pool, target)
    tight = sinkhorn(pool, target, tol=1e-6, eps=loose.diagnostics["eps"])
    k = 100
    overlap = len(set(np.argsort(loose.f)[:k]) & set(np.argsort(tight.f)[:k])) / k
    assert loose.diagnostics["marginal_error"] <= 1e-2
    assert overlap >= 0.95


def test_overrelaxation_saves_iterations_and_agrees() -> None:
    pool, target = clustered(1000, 50, seed=1)
    plain = sinkhorn(pool, target, omega=1.0, tol=1e-4)
    fast = sinkhorn(pool, target, omega=1.5, tol=1e-4)
    assert fast.diagnostics["iterations"] < plain.diagnostics["iterations"]
    assert spearmanr(plain.f, fast.f)[0] > 0.9999


def test_calibrated_gradient_is_the_directional_derivative() -> None:
    """Finite difference of OT_eps along 'add mass to candidate j, take it evenly from the others'."""
    pool, target = clustered(60, 12, d=4, seed=2)
    n, m = len(pool), len(target)
    a, b = np.full(n, 1 / n), np.full(m, 1 / m)
    res = sinkhorn(pool, target, eps_rel=0.2, tol=1e-7, max_iter=100_000)
    eps = res.diagnostics["eps"]
    grads = calibrated_gradients(res.f)
    t = 1e-4
    for j in (0, 17, 41):
        direction = np.full(n, -1.0 / (n - 1))
        direction[j] = 1.0
        plus = entropic_value(pool, target, a + t * direction, b, eps)
        minus = entropic_value(pool, target, a - t * direction, b, eps)
        numeric = (plus - minus) / (2 * t)
        assert numeric == pytest.approx(grads[j], rel=2e-3, abs=2e-3 * np.abs(grads).max())


def test_calibration_is_an_increasing_affine_map() -> None:
    f = np.array([3.0, -1.0, 2.0, 0.5])
    g = calibrated_gradients(f)
    expected = np.array([f[j] - np.delete(f, j).mean() for j in range(4)])
    np.testing.assert_allclose(g, expected)
    assert list(np.argsort(g)) == list(np.argsort(f))


def test_cost_moments_are_exact() -> None:
    pool, target = clustered(300, 20)
    cost = pot.dist(pool, target)
    mean, std = cost_moments(pool, target)
    assert mean == pytest.approx(cost.mean(), rel=1e-10)
    assert std == pytest.approx(cost.std(), rel=1e-8)


def test_eps_absolute_and_relative() -> None:
    assert resolve_eps(0.2, None, 4.0) == (0.2, 0.05)
    assert resolve_eps(None, 0.1, 4.0) == pytest.approx((0.4, 0.1))
    assert resolve_eps(None, None, 2.0) == pytest.approx((0.1, 0.05))
    with pytest.raises(GotdInputError, match="not both"):
        resolve_eps(0.1, 0.1, 1.0)
    with pytest.raises(GotdInputError, match="eps must be > 0"):
        resolve_eps(-1.0, None, 1.0)


def test_diagnostics_are_recorded() -> None:
    pool, target = clustered(500, 30)
    d = sinkhorn(pool, target, eps=0.5).diagnostics
    for key in ("eps", "eps_rel", "cost_std", "iterations", "marginal_error", "converged", "seconds", "path"):
        assert key in d
    assert d["eps"] == 0.5
    assert d["eps_rel"] == pytest.approx(0.5 / d["cost_std"])
    assert d["marginal_error"] == d["error_history"][-1]
    assert d["path"] == "stored"


def test_c_transform_reproduces_the_solved_potential() -> None:
    pool, target = clustered(800, 40)
    res = sinkhorn(pool, target, tol=1e-6, omega=1.0)
    scored = c_transform_scores(pool, target, res.g, eps=res.diagnostics["eps"], block_size=100)
    np.testing.assert_allclose(scored, res.f, atol=1e-3 * np.ptp(res.f))


def test_subsample_then_score_agrees_with_the_full_solve() -> None:
    # Measured here: Spearman 0.99993, top-5% overlap 0.981 (a 10% subsample of 20k candidates).
    pool, target = clustered(20_000, 200, seed=5)
    full = ot_gradients(pool, target)
    approx, diag = ot_gradients_with_diagnostics(pool, target, subsample=0.1, seed=0)
    assert diag["subsample"] == 2000 and approx.shape == (20_000,)
    assert spearmanr(full, approx)[0] >= 0.999
    k = 1000
    overlap = len(set(np.argsort(full)[:k]) & set(np.argsort(approx)[:k])) / k
    assert overlap >= 0.95


def test_public_function_accepts_torch_and_numpy_alike() -> None:
    pool, target = clustered(300, 20)
    from_numpy = ot_gradients(pool, target, eps=1.0)
    from_torch = ot_gradients(torch.as_tensor(pool, dtype=torch.float32), torch.as_tensor(target), eps=1.0)
    assert from_numpy.shape == (300,) and from_numpy.dtype == np.float64
    assert spearmanr(from_numpy, from_torch)[0] > 0.9999


def test_bfloat16_gemm_keeps_the_ranking() -> None:
    pool, target = clustered(3000, 50, d=32, seed=4)
    exact = ot_gradients(pool, target, path="online")
    low = ot_gradients(pool, target, path="online", gemm_dtype="bfloat16")
    assert spearmanr(exact, low)[0] > 0.99


def test_underrepresented_target_mass_gets_the_most_negative_gradients() -> None:
    rng = np.random.default_rng(0)
    pool = np.vstack([rng.normal([0, 0], 0.3, size=(900, 2)), rng.normal([4, 0], 0.3, size=(100, 2))])
    target = np.vstack([rng.normal([0, 0], 0.3, size=(50, 2)), rng.normal([4, 0], 0.3, size=(50, 2))])
    grads = ot_gradients(pool, target)
    chosen = np.argsort(grads, kind="stable")[:100]
    assert np.mean(chosen >= 900) >= 0.9


@pytest.mark.parametrize(
    ("pool", "target", "message"),
    [
        (np.zeros((0, 3)), np.zeros((2, 3)), "no rows"),
        (np.zeros((3,)), np.zeros((2, 3)), "2-D"),
        (np.ones((4, 3)), np.ones((2, 5)), "same encoder"),
        (np.array([[0.0, np.nan]]), np.ones((2, 2)), "row 0"),
    ],
)
def test_bad_input_is_named(pool: np.ndarray, target: np.ndarray, message: str) -> None:
    with pytest.raises(GotdInputError, match=message):
        sinkhorn(pool, target)


def test_non_convergence_raises_unless_allowed_then_warns_and_is_recorded() -> None:
    # Changed on purpose (issue 12): an unconverged solve used to return with only a warning.
    pool, target = clustered(200, 20)
    with pytest.raises(GotdConvergenceError, match="max_iter=2.*allow_unconverged=True"):
        sinkhorn(pool, target, max_iter=2, tol=1e-8)
    with pytest.raises(GotdConvergenceError, match="max_iter=2"):
        ot_gradients(pool, target, max_iter=2, tol=1e-8)
    with pytest.warns(RuntimeWarning, match="max_iter"):
        res = sinkhorn(pool, target, max_iter=2, tol=1e-8, allow_unconverged=True)
    assert res.diagnostics["converged"] is False
    assert res.diagnostics["iterations"] == 2
    with pytest.warns(RuntimeWarning, match="max_iter"):
        _, diag = ot_gradients_with_diagnostics(pool, target, max_iter=2, tol=1e-8, allow_unconverged=True)
    assert diag["converged"] is False and diag["allow_unconverged"] is True


# ---- GPU path options, checked on the CPU ----------------------------------------------------------------
def test_compile_and_gemm_defaults_follow_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_compile(None, cpu) is None
    assert resolve_compile(None, cuda) == "inductor"
    assert resolve_compile(True, cpu) == "inductor"
    assert resolve_compile(False, cuda) is None
    assert resolve_compile("aot_eager", cpu) == "aot_eager"
    with pytest.raises(GotdInputError, match="not a torch.compile backend"):
        resolve_compile("no-such-backend", cpu)
    assert resolve_gemm_dtype(None, cpu) == "float32"
    assert resolve_gemm_dtype("bfloat16", cpu) == "bfloat16"
    with pytest.raises(GotdInputError, match="gemm_dtype"):
        resolve_gemm_dtype("int8", cpu)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert resolve_gemm_dtype(None, cuda) == "bfloat16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert resolve_gemm_dtype(None, cuda) == "float32"


def test_cpu_defaults_are_recorded_and_unchanged() -> None:
    pool, target = clustered(300, 20)
    d = sinkhorn(pool, target, eps=0.5).diagnostics
    assert d["compile"] is None and d["gemm_dtype"] == "float32" and d["device"] == "cpu"


@pytest.mark.parametrize("path", ["online", "stored"])
def test_compiled_block_step_matches_the_eager_step(path: str) -> None:
    # "aot_eager" traces the functional step through dynamo and AOTAutograd in full (fullgraph=True, so
    # a graph break fails the test) without C++ code generation, which takes minutes on a small CPU.
    pool, target = clustered(512, 32, seed=6)  # whole blocks only: one compiled shape
    eager = sinkhorn(pool, target, tol=1e-5, path=path, block_size=128)
    compiled = sinkhorn(pool, target, tol=1e-5, path=path, block_size=128, compile="aot_eager")
    assert compiled.diagnostics["compile"] == "aot_eager"
    assert compiled.diagnostics["iterations"] == eager.diagnostics["iterations"]
    np.testing.assert_allclose(compiled.f, eager.f, atol=1e-5 * np.ptp(eager.f))
    np.testing.assert_allclose(compiled.g, eager.g, atol=1e-5 * np.ptp(eager.g))
    eps = eager.diagnostics["eps"]
    scored = c_transform_scores(pool, target, eager.g, eps=eps, block_size=128)
    scored_compiled = c_transform_scores(pool, target, eager.g, eps=eps, block_size=128, compile="aot_eager")
    np.testing.assert_allclose(scored_compiled, scored, atol=1e-5 * np.ptp(scored))


def test_torch_input_is_not_copied() -> None:
    pool = torch.randn(50, 4)
    assert _as_matrix(pool, "pool").data_ptr() == pool.data_ptr()


def test_subsample_diagnostics_time_the_scoring_pass() -> None:
    pool, target = clustered(2000, 40, seed=7)
    _, diag = ot_gradients_with_diagnostics(pool, target, subsample=500, seed=1)
    assert diag["subsample"] == 500 and diag["subsample_seed"] == 1 and diag["n"] == 2000
    assert diag["scoring_seconds"] >= 0 and diag["compile"] is None


def test_a_failing_compiler_falls_back_to_the_eager_step(monkeypatch: pytest.MonkeyPatch) -> None:
    import gotd.ot._step as ot_module

    def broken(name: str, backend: str | None):
        def step(*args, **kwargs):
            raise RuntimeError("simulated inductor failure")
        return step

    pool, target = clustered(300, 20, seed=8)
    eager = sinkhorn(pool, target, eps=0.5, path="online", block_size=64)
    monkeypatch.setattr(ot_module, "_compiled", broken)
    with pytest.warns(RuntimeWarning, match="torch.compile of the Sinkhorn block step failed.*simulated"):
        fallback = sinkhorn(pool, target, eps=0.5, path="online", block_size=64, compile="aot_eager")
    np.testing.assert_array_equal(fallback.f, eager.f)
    assert fallback.diagnostics["compile"] is None
    assert "simulated inductor failure" in fallback.diagnostics["compile_error"]
    with pytest.warns(RuntimeWarning, match="simulated"):
        scored = c_transform_scores(pool, target, eager.g, eps=0.5, block_size=64, compile="aot_eager")
    np.testing.assert_array_equal(scored, c_transform_scores(pool, target, eager.g, eps=0.5, block_size=64))
    assert eager.diagnostics["gemm_fp32_output"] is False  # a CPU build has no float32-output bf16 GEMM


def test_auto_path_stores_the_cost_only_within_the_budget() -> None:
    from gotd.ot import KERNEL_BUDGET_CAP_BYTES, default_kernel_budget

    budget = default_kernel_budget(torch.device("cpu"))
    assert 0 < budget <= KERNEL_BUDGET_CAP_BYTES
    pool, target = clustered(400, 25)
    entries = 400 * 25
    stored = sinkhorn(pool, target, eps=0.5, kernel_budget_bytes=8 * entries)
    online = sinkhorn(pool, target, eps=0.5, kernel_budget_bytes=8 * entries - 1)
    assert stored.diagnostics["path"] == "stored"
    assert online.diagnostics["path"] == "online"
    assert np.corrcoef(stored.f, online.f)[0, 1] > 0.9999
