"""``preset="paper"`` against the paper's own solver call (ott-jax 0.6.0) on real MiniLM embeddings.

The GOT-D release (REDSgnaoh/DV4LLM, ``ot-selection.ipynb``) runs
``PointCloud(target, candidates, epsilon=0.1, batch_size=2000)`` and
``Sinkhorn(momentum=Momentum(value=1.3), threshold=0.1, inner_iterations=1, max_iterations=2000)`` and
ranks candidates by ``g - (mean(g) - g / n)``. The texts are the standard library's docstring paragraphs
(tests/ot_paper_texts.py), embedded with the paper preset's encoder settings, so no download is needed.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from gotd.ot import calibrated_gradients, ot_gradients_with_diagnostics, sinkhorn
from gotd.presets import preset_options

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ot_paper_texts import paper_texts  # noqa: E402


def top(scores: np.ndarray, frac: float) -> set[int]:
    return set(np.argsort(scores, kind="stable")[: int(round(frac * len(scores)))].tolist())


def overlap(a: np.ndarray, b: np.ndarray, frac: float) -> float:
    return len(top(a, frac) & top(b, frac)) / int(round(frac * len(a)))


# ---- the preset's settings, without ott-jax ------------------------------------------------------------------
def test_paper_preset_sets_the_solver_and_explicit_options_win() -> None:
    rng = np.random.default_rng(0)
    pool, target = rng.normal(scale=0.3, size=(200, 6)), rng.normal(scale=0.3, size=(20, 6)) + 0.2
    grads, diag = ot_gradients_with_diagnostics(pool, target, preset="paper")
    assert diag["preset"] == "paper" and diag["eps"] == 0.1 and diag["omega"] == 1.3 and diag["tol"] == 0.1
    assert diag["stop_marginal"] == "pool" and diag["calibration"] == "paper"
    f = sinkhorn(pool, target, preset="paper").f
    np.testing.assert_allclose(grads, f - (f.sum() - f) / f.size)  # the release's divisor n
    _, mine = ot_gradients_with_diagnostics(pool, target, preset="paper", eps_rel=0.05, tol=0.01, omega=1.0)
    assert mine["eps_rel"] == 0.05 and mine["tol"] == 0.01 and mine["omega"] == 1.0 and mine["preset"] == "paper"
    assert ot_gradients_with_diagnostics(pool, target)[1]["preset"] is None
    assert preset_options("paper", "ot") == {"preset": "paper"}


def test_paper_calibration_ranks_like_lava() -> None:
    f = np.random.default_rng(1).normal(size=50)
    assert (np.argsort(calibrated_gradients(f, "paper")) == np.argsort(calibrated_gradients(f))).all()


# ---- against ott-jax -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm_embeddings() -> tuple[np.ndarray, np.ndarray]:
    from gotd.embed import Encoder

    pool_texts, target_texts = paper_texts()
    encoder = Encoder(device="cpu", max_length=128, **preset_options("paper", "encoder"))
    return encoder.encode(pool_texts, progress=False), encoder.encode(target_texts, progress=False)


@pytest.mark.slow
def test_paper_preset_selects_what_ott_jax_selects(minilm_embeddings: tuple[np.ndarray, np.ndarray]) -> None:
    jax = pytest.importorskip("jax", reason="the ott-jax comparison needs the optional extra: pip install 'gotd[ott]'")
    pytest.importorskip("ott", reason="the ott-jax comparison needs the optional extra: pip install 'gotd[ott]'")
    from ott.geometry import pointcloud
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import acceleration, sinkhorn as ott_sinkhorn

    pool, target = minilm_embeddings
    assert pool.shape[0] >= 2000 and pool.shape[1] == 384
    geom = pointcloud.PointCloud(jax.numpy.asarray(target), jax.numpy.asarray(pool), epsilon=0.1, batch_size=2000)
    solver = ott_sinkhorn.Sinkhorn(momentum=acceleration.Momentum(value=1.3), threshold=0.1, inner_iterations=1,
                                   max_iterations=2000)
    out = jax.jit(solver)(linear_problem.LinearProblem(geom))
    assert bool(out.converged)
    g = np.asarray(out.g, dtype=np.float64)
    reference = g - (g.mean() - g / g.size)  # the release's calibration, verbatim
    grads, diag = ot_gradients_with_diagnostics(pool, target, preset="paper")
    assert diag["converged"] and diag["preset"] == "paper"
    assert overlap(grads, reference, 0.05) >= 0.98
