"""Solver settings of published procedures (``preset=`` of :func:`gotd.ot.sinkhorn` / ``ot_gradients``).

``paper``: the GOT-D release (Kang et al. 2024, code REDSgnaoh/DV4LLM, ``ot-selection.ipynb``) solves with
ott-jax 0.6::

    PointCloud(target, candidates, epsilon=0.1, batch_size=2000)
    Sinkhorn(momentum=Momentum(value=1.3), threshold=0.1, inner_iterations=1, max_iterations=2000)

and calibrates the candidate potential ``g`` as ``g - (mean(g) - g / n)``. In gotd's terms:

- eps = 0.1 absolute (squared Euclidean cost units; ott's default ``scale_cost=1``);
- over-relaxation 1.3 from the first iteration (ott's ``Momentum(value=1.3)``, ``start=0``);
- stop when the L1 error of the *candidate* marginal is below 0.1, checked every iteration: ott-jax's
  ``threshold`` is ``marginal_error(..., axis=0, norm_error=1)``, the ``b`` side, which in the paper's
  call is the candidates, measured after both half-steps (``Sinkhorn.lse_step`` updates the
  candidate potential first, then the target's);
- at most 2000 iterations;
- calibration divisor n (LAVA's formula uses n - 1; both rank candidates identically).
"""
from __future__ import annotations

from typing import Any

from gotd.errors import GotdInputError

SOLVER_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"eps": 0.1, "omega": 1.3, "tol": 0.1, "max_iter": 2000, "stop_marginal": "pool",
              "relax_first": True, "calibration": "paper"},
}


def resolve_preset(preset: str | None, explicit: dict[str, Any]) -> dict[str, Any]:
    """The preset's settings overridden by the ``explicit`` options (those the caller passed).

    An explicit ``eps_rel`` replaces the preset's absolute ``eps``. Returns ``explicit`` unchanged when
    ``preset`` is None.
    """
    if preset is None:
        return dict(explicit)
    if preset not in SOLVER_PRESETS:
        raise GotdInputError(f"unknown solver preset {preset!r}; choose from {', '.join(sorted(SOLVER_PRESETS))} "
                             "or leave preset unset")
    settings = dict(SOLVER_PRESETS[preset])
    if explicit.get("eps_rel") is not None:
        settings.pop("eps")
    settings.update({k: v for k, v in explicit.items() if v is not None or k not in settings})
    return settings
