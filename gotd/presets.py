"""Named bundles of settings that reproduce a published procedure across stages.

A preset fixes, for each stage, the options that define a procedure; anything a user passes
explicitly still wins. Every selection made with a preset records its name in the sidecar.

``paper``
    The GOT-D paper's released procedure (Kang et al. 2024; code: REDSgnaoh/DV4LLM,
    ``ot-selection.ipynb``, which calls ott-jax 0.6 ``PointCloud(target, candidates, epsilon=0.1,
    batch_size=2000)`` and ``Sinkhorn(momentum=Momentum(value=1.3), threshold=0.1, inner_iterations=1,
    max_iterations=2000)``): eps = 0.1 absolute in squared-Euclidean cost units on unnormalised
    embeddings, over-relaxation 1.3 from the first iteration, a stop when the L1 error of the candidate
    marginal is below 0.1, at most 2000 iterations, the release's calibration ``g - (mean(g) - g / n)``,
    and mean pooling over all positions including padding. The solver-side values live in
    :data:`gotd.ot.SOLVER_PRESETS` and are applied by ``preset="paper"`` there (explicit options win).
"""
from __future__ import annotations

from typing import Any

from gotd.errors import GotdInputError

__all__ = ["PRESETS", "preset_names", "preset_options"]

#: stage -> options, per preset. Stages: ``encoder`` (gotd.embed.Encoder keywords), ``ot`` (keywords of
#: gotd.ot.ot_gradients / the OT-based selectors).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        "encoder": {"pooling": "mean_with_padding", "normalize": False},
        "ot": {"preset": "paper"},
    },
}


def preset_names() -> list[str]:
    """The known preset names, sorted."""
    return sorted(PRESETS)


def preset_options(name: str | None, stage: str) -> dict[str, Any]:
    """The options preset ``name`` fixes for ``stage`` (a copy; ``{}`` for ``name=None``).

    Raises
    ------
    GotdInputError
        Unknown preset or stage, naming the known ones.
    """
    if name is None:
        return {}
    if name not in PRESETS:
        raise GotdInputError(f"unknown preset {name!r}; choose from {', '.join(preset_names())} or leave it unset")
    stages = PRESETS[name]
    if stage not in ("encoder", "ot"):
        raise GotdInputError(f"unknown stage {stage!r} for presets; use 'encoder' or 'ot'")
    return dict(stages.get(stage, {}))
