"""Entropic optimal transport between a candidate pool and a target set, and GOT-D's gradients.

The problem solved is, for candidates :math:`x_1..x_n` (weights :math:`a`, uniform by default) and
targets :math:`y_1..y_m` (weights :math:`b`) with the squared Euclidean cost
:math:`C_{ij} = \\|x_i - y_j\\|^2`,

.. math::

    \\mathrm{OT}_\\varepsilon(a, b) = \\min_{P \\in \\Pi(a, b)} \\langle P, C \\rangle
        + \\varepsilon \\, \\mathrm{KL}(P \\,\\|\\, a \\otimes b),

whose dual potentials :math:`f \\in \\mathbb{R}^n, g \\in \\mathbb{R}^m` (in cost units) give the optimal plan
:math:`P_{ij} = a_i b_j \\exp((f_i + g_j - C_{ij}) / \\varepsilon)` and the gradient
:math:`\\partial \\mathrm{OT}_\\varepsilon / \\partial a_i = f_i` (Feydy et al. 2019; Just et al. 2023, LAVA).
``eps`` is the same quantity as POT's ``reg``: an absolute value in cost units. ``eps_rel`` states it
relative to the cost scale, ``eps = eps_rel * std(C)`` by default, with ``std(C)`` computed exactly over
all n x m pairs from moments of the embeddings (no sampling).

The solver is log-domain Sinkhorn with over-relaxation (Thibault et al. 2017), run over row blocks of the
cost. Each iteration is one pass over the cost: a block's cost comes from one GEMM
(:math:`C = \\|x\\|^2 + \\|y\\|^2 - 2 x y^\\top`), updates the block's candidate potentials, and contributes its
column log-sum-exp to the target update and to the target-marginal error used to stop. Memory is
O((n + m) d) on the online path; when the n x m cost fits in ``kernel_budget_bytes`` it is kept between
iterations instead of recomputed (the "stored" path, faster on a CPU). A solve never fails silently:
divergence is restarted at omega = 1 or raised, and an unconverged solve raises
:class:`gotd.errors.GotdConvergenceError` unless ``allow_unconverged=True``.

Layout (a facade over private modules, like POT's ``ot/bregman/`` and ott-jax's geometry / problem /
solver / potentials split):

- ``_inputs``: checked matrices and weights (:func:`check_weights`, also used by :mod:`gotd.distributed`);
- ``_scale``: exact cost moments, the eps scale statistic, outlier-row shares, :func:`resolve_eps`;
- ``_backend``: device (via :mod:`gotd.devices`), GEMM precision, compile backend, memory budget;
- ``_geometry``: the cost in row blocks (scaled products, stored or recomputed);
- ``_step``: one log-domain iteration, written once for the eager and compiled paths;
- ``_kernel``: the stored-kernel scaling iteration (the CPU fast path);
- ``_solver``: the loop, stopping rules, divergence recovery, :func:`sinkhorn`;
- ``_presets``: solver settings of published procedures (``preset="paper"``);
- ``_scores``: calibration, c-transform and :func:`ot_gradients`.

References
----------
Kang et al., "Get more for less: principled data selection for warming up fine-tuning in LLMs", ICLR 2024.
Just et al., "LAVA: data valuation without pre-specified learning algorithms", ICLR 2023.
Thibault, Chizat, Dossal, Papadakis, "Overrelaxed Sinkhorn-Knopp algorithm for regularized optimal
transport", 2017.
"""
from __future__ import annotations

from gotd.ot._backend import (
    KERNEL_BUDGET_CAP_BYTES,
    available_memory_bytes,
    default_device,
    default_kernel_budget,
    resolve_compile,
    resolve_gemm_dtype,
)
from gotd.ot._inputs import check_weights
from gotd.ot._presets import SOLVER_PRESETS
from gotd.ot._scale import (
    DEFAULT_EPS_REL,
    DEFAULT_EPS_SCALE,
    EPS_SCALES,
    cost_moments,
    cost_scale,
    magnitude_factor,
    resolve_eps,
)
from gotd.ot._scores import c_transform_scores, calibrated_gradients, ot_gradients, ot_gradients_with_diagnostics
from gotd.ot._solver import DEFAULT_TOL, DIVERGENCE_FACTOR, SinkhornResult, sinkhorn

__all__ = [
    "DEFAULT_EPS_REL",
    "DEFAULT_EPS_SCALE",
    "DEFAULT_TOL",
    "DIVERGENCE_FACTOR",
    "EPS_SCALES",
    "KERNEL_BUDGET_CAP_BYTES",
    "SOLVER_PRESETS",
    "SinkhornResult",
    "available_memory_bytes",
    "c_transform_scores",
    "calibrated_gradients",
    "check_weights",
    "cost_moments",
    "cost_scale",
    "default_device",
    "default_kernel_budget",
    "magnitude_factor",
    "ot_gradients",
    "ot_gradients_with_diagnostics",
    "resolve_compile",
    "resolve_eps",
    "resolve_gemm_dtype",
    "sinkhorn",
]
