"""Data selectors behind one interface: pick ``budget`` pool rows for a target.

>>> idx = select(pool_embeddings, target_embeddings, 1000, method="gotd")          # doctest: +SKIP
>>> sel = run_selector(pool_texts, target_texts, 1000, method="dsir", seed=1)      # doctest: +SKIP

Every selector returns row indices into the pool, best first, without repeats, deterministic for a
seed; ties are broken by the lower row index. Each registered selector declares (:class:`SelectorSpec`)
what it reads — embeddings ((n, d) and (m, d) float arrays, numpy or torch), texts, or only the pool's
length — whether it shows progress, and whether its seed matters; :func:`run_selector` checks the
inputs by that declaration. List them with :func:`available_methods` / :func:`methods_taking`.

=================  ============================================================================
method             selects (reference it is tested against)
=================  ============================================================================
``gotd``           the most negative calibrated gradients of OT(pool, target) (Kang et al. 2024)
``gotd_contrast``  the most positive gradients w.r.t. a negative set (the paper's GOT-D_contrast)
``random``         a uniform sample without replacement
``dsir``           hashed n-gram importance resampling (package ``data-selection``, Xie et al. 2023)
``knn``            each target's nearest candidates, round-robin (curated TAPT, Gururangan et al. 2020)
``matching``       the selection OT-closest to the target distribution (distribution matching)
``tsds``           OT alignment with a kernel-density diversity term (Liu et al. 2024, ZifanL/TSDS)
=================  ============================================================================

Register a new selector with :func:`register_selector`.

Selectors from other packages (plugins)
---------------------------------------
Another installed distribution adds a method by declaring a :class:`SelectorSpec` under the entry-point
group ``gotd.selectors`` (the convention of pytest's ``pytest11``)::

    # pyproject.toml of the plugin
    [project.entry-points."gotd.selectors"]
    shortest = "gotd_shortest:spec"

    # gotd_shortest.py
    spec = SelectorSpec(name="shortest", fn=select_shortest, inputs="texts", progress=False,
                        randomized=False, summary="the shortest pool texts")

The entry point's name and the spec's ``name`` are the method name (one name for both; a plugin cannot
replace a built-in method). ``fn`` follows the contract above: ``fn(pool, target, budget, *, seed,
**options) -> Selection`` with inputs of the declared kind already checked, ``budget`` rows best first
without repeats, deterministic for a seed, JSON-safe ``params`` and ``diagnostics``. Plugins are
registered on the first read of the registry in every process, so ``gotd select --method shortest``,
``gotd methods``, the notebooks and ``gotd run`` see them, and the conformance suite
(``tests/test_selectors_conformance.py``) runs over them. A plugin that fails to load stops the first read
with one line naming its entry point and distribution.

Layout: ``_registry`` (specs, lookup, :func:`run_selector`), ``_validation`` (the input checks),
``_ot_based`` (gotd, gotd_contrast), ``_dsir``, ``_neighbours`` (exact kNN, knn), ``_matching``,
``_tsds``, ``_random``.
"""
from __future__ import annotations

from gotd.selectors._dsir import dsir_log_weights, select_dsir
from gotd.selectors._matching import select_matching
from gotd.selectors._neighbours import nearest_neighbours, select_knn
from gotd.selectors._ot_based import select_gotd, select_gotd_contrast
from gotd.selectors._random import select_random
from gotd.selectors._registry import (
    PLUGIN_GROUP,
    SELECTORS,
    Selector,
    SelectorSpec,
    available_methods,
    get_selector,
    inputs_for,
    load_selector_plugins,
    mark_builtin_selectors,
    methods_taking,
    register_selector,
    run_selector,
    select,
)
from gotd.selectors._tsds import select_tsds
from gotd.selectors._validation import INPUT_KINDS

__all__ = [
    "INPUT_KINDS", "PLUGIN_GROUP", "SELECTORS", "load_selector_plugins", "Selector", "SelectorSpec", "available_methods", "dsir_log_weights", "get_selector", "inputs_for",
    "methods_taking", "nearest_neighbours", "register_selector", "run_selector", "select", "select_dsir",
    "select_gotd", "select_gotd_contrast", "select_knn", "select_matching", "select_random", "select_tsds",
]

register_selector("gotd", select_gotd, inputs="embeddings", progress=True, randomized=False,
                  summary="the most negative calibrated gradients of OT(pool, target) (Kang et al. 2024)")
register_selector("gotd_contrast", select_gotd_contrast, inputs="embeddings", progress=True, randomized=False,
                  summary="the most positive OT gradients w.r.t. a negative set, optionally toward a positive one")
register_selector("random", select_random, inputs="none", progress=False, randomized=True,
                  summary="a uniform sample without replacement")
register_selector("dsir", select_dsir, inputs="texts", progress=True, randomized=True,
                  summary="importance resampling on hashed n-grams (data-selection's HashedNgramDSIR)")
register_selector("knn", select_knn, inputs="embeddings", progress=True, randomized=False,
                  summary="each target's nearest candidates by cosine distance, round-robin (kNN-TAPT)")
register_selector("matching", select_matching, inputs="embeddings", progress=True, randomized=True,
                  summary="the selection whose distribution is OT-closest to the target's (distribution matching)")
register_selector("tsds", select_tsds, inputs="embeddings", progress=True, randomized=True,
                  summary="OT alignment with the target plus a near-duplicate penalty (TSDS, Liu et al. 2024)")
mark_builtin_selectors()
