"""The selector registry: every selector declares what it reads, whether it shows progress and whether
its seed matters, and :func:`run_selector` validates inputs by that declaration before calling it.

Modelled on scikit-learn's estimator tags: the declaration lives with the selector
(:class:`SelectorSpec`), and one conformance test (``tests/test_selectors_conformance.py``) runs over
every registered selector.

The registry is open to other packages the way pytest is to its plugins: a :class:`SelectorSpec` named
under the entry-point group ``gotd.selectors`` (:data:`PLUGIN_GROUP`) of an installed distribution is
registered the first time any process reads the registry (:func:`load_selector_plugins`).
"""
from __future__ import annotations

import importlib.metadata
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import wraps
from typing import Any, Literal

import numpy as np

from gotd.errors import GotdError, GotdInputError
from gotd.selection import Selection
from gotd.selectors._validation import INPUT_KINDS, check_inputs, check_seed, json_safe

Selector = Callable[..., Selection]


@dataclass(frozen=True)
class SelectorSpec:
    """A registered selector and what it declares about itself.

    Attributes
    ----------
    name : str
        The method name (``method=`` of :func:`select`).
    fn : callable
        ``fn(pool, target, budget, *, seed, **options) -> Selection``, called with inputs already
        checked by :func:`gotd.selectors._validation.check_inputs` for ``inputs``.
    inputs : {"embeddings", "texts", "none"}
        What ``pool`` and ``target`` are: (n, d) and (m, d) float matrices, sequences of str, or
        anything with a length (``"none"``: only the pool's size is used).
    progress : bool
        Whether ``fn`` accepts ``progress=`` and shows a progress bar with it.
    randomized : bool
        Whether the selection depends on ``seed`` with default options.
    summary : str
        One line saying what the method selects (for listings such as ``gotd methods``).
    """

    name: str
    fn: Selector
    inputs: Literal["embeddings", "texts", "none"]
    progress: bool
    randomized: bool
    summary: str


_REGISTRY: dict[str, SelectorSpec] = {}
PLUGIN_GROUP = "gotd.selectors"
"""Entry-point group under which other distributions declare selectors (``name = module:spec``)."""
_plugins_loaded = False
_BUILTIN_NAMES: frozenset[str] = frozenset()


def _plugin_error(entry_point: importlib.metadata.EntryPoint, problem: str) -> GotdError:
    dist = entry_point.dist
    where = f"{dist.name} {dist.version}" if dist is not None else "an unnamed distribution"
    return GotdError(f"selector plugin {entry_point.name} = {entry_point.value} (entry point group {PLUGIN_GROUP}, "
                     f"distribution {where}) {problem}; fix that package or uninstall it")


def load_selector_plugins() -> list[str]:
    """Register the selectors that installed distributions declare under :data:`PLUGIN_GROUP`.

    Each entry point ``NAME = module:attribute`` must name a :class:`SelectorSpec` whose ``name`` is
    ``NAME``; it is registered through :func:`register_selector` (so it is checked like a built-in one)
    and cannot replace a built-in method. Called by every read of the registry until it has succeeded
    once, so that every process (the CLI, the notebooks, ``gotd run``'s kernels) sees the same methods;
    call it again after installing a plugin into a running process.

    Returns
    -------
    list of str
        The plugin method names registered, sorted.

    Raises
    ------
    gotd.errors.GotdError
        One line naming the entry point and its distribution when a plugin cannot be imported, is not a
        SelectorSpec, is named differently from its entry point, or is refused by :func:`register_selector`.
    """
    global _plugins_loaded
    names = []
    for entry_point in sorted(importlib.metadata.entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name):
        try:
            spec = entry_point.load()
        except Exception as exc:  # an import error of any kind inside the plugin
            raise _plugin_error(entry_point, f"failed to load ({type(exc).__name__}: {exc})") from None
        if not isinstance(spec, SelectorSpec):
            raise _plugin_error(entry_point, f"is a {type(spec).__name__}, not a gotd.selectors.SelectorSpec")
        if spec.name != entry_point.name:
            raise _plugin_error(entry_point, f"declares the method {spec.name!r} under the name {entry_point.name!r}; "
                                             "use one name for both")
        if spec.name in _BUILTIN_NAMES:
            raise _plugin_error(entry_point, f"would replace gotd's own method {spec.name!r}; choose another name")
        try:
            register_selector(spec.name, spec.fn, inputs=spec.inputs, progress=spec.progress,
                              randomized=spec.randomized, summary=spec.summary)
        except GotdInputError as exc:
            raise _plugin_error(entry_point, f"is refused: {exc}") from None
        names.append(spec.name)
    _plugins_loaded = True
    return names


def mark_builtin_selectors() -> None:
    """Record the methods registered so far as gotd's own (plugins may not replace them)."""
    global _BUILTIN_NAMES
    _BUILTIN_NAMES = frozenset(_REGISTRY)


def _registry() -> dict[str, SelectorSpec]:
    """The registry, with the installed plugins registered on first read."""
    if not _plugins_loaded:
        load_selector_plugins()
    return _REGISTRY


def register_selector(name: str, fn: Selector, *, inputs: Literal["embeddings", "texts", "none"], progress: bool,
                      randomized: bool, summary: str) -> SelectorSpec:
    """Register ``fn`` as method ``name`` (replacing any selector of that name) and return its spec."""
    if not isinstance(name, str) or not name.strip():
        raise GotdInputError(f"a selector needs a non-empty name, got {name!r}")
    if inputs not in INPUT_KINDS:
        raise GotdInputError(f"selector {name!r}: inputs must be one of {', '.join(INPUT_KINDS)}, got {inputs!r}")
    if not callable(fn):
        raise GotdInputError(f"selector {name!r}: fn must be callable, got {type(fn).__name__}")
    if progress and "progress" not in option_names(fn)[0] and not option_names(fn)[1]:
        raise GotdInputError(f"selector {name!r} declares progress=True but takes no progress= keyword")
    spec = SelectorSpec(name=name, fn=fn, inputs=inputs, progress=bool(progress), randomized=bool(randomized),
                        summary=str(summary))
    _REGISTRY[name] = spec
    return spec


def get_selector(method: str) -> SelectorSpec:
    """The spec of a registered method; unknown names raise, listing the available ones."""
    registry = _registry()
    if method not in registry:
        raise GotdInputError(f"unknown selection method {method!r}; choose one of {', '.join(available_methods())}")
    return registry[method]


def available_methods() -> list[str]:
    """Names of the registered selectors, sorted."""
    return sorted(_registry())


def methods_taking(inputs: str) -> list[str]:
    """Names of the registered selectors that read ``inputs`` ("embeddings", "texts" or "none"), sorted."""
    if inputs not in INPUT_KINDS:
        raise GotdInputError(f"unknown input kind {inputs!r}; choose one of {', '.join(INPUT_KINDS)}")
    return sorted(name for name, spec in _registry().items() if spec.inputs == inputs)


def inputs_for(method: str, *, texts: tuple[Any, Any], embeddings: tuple[Any, Any] | None) -> tuple[Any, Any]:
    """The (pool, target) pair ``method`` reads, picked by its declared input.

    ``texts`` are the pool's and target's texts, ``embeddings`` their embeddings (``None`` when nothing was
    embedded). A selector that reads nothing (``"none"``) gets the texts: it uses only the pool's length.

    Raises
    ------
    GotdInputError
        The method reads embeddings and none were given.
    """
    kind = get_selector(method).inputs
    if kind != "embeddings":
        return texts
    if embeddings is None:
        raise GotdInputError(f"method {method!r} reads embeddings; embed the pool and target first")
    return embeddings


def option_names(fn: Selector) -> tuple[set[str], bool]:
    """Keyword options a selector accepts, and whether it forwards more (``**options``) it checks itself."""
    names: set[str] = set()
    forwards = False
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            forwards = True
        elif param.kind is inspect.Parameter.KEYWORD_ONLY and name != "seed":
            names.add(name)
    return names, forwards


def _check_option_names(spec: SelectorSpec, options: dict[str, Any]) -> None:
    names, forwards = option_names(spec.fn)
    unknown = sorted(set(options) - names)
    if unknown and not forwards:
        raise GotdInputError(f"method {spec.name!r} has no option(s) {', '.join(map(repr, unknown))}; "
                             f"its options are {', '.join(sorted(names)) or '(none)'}")


def _check_result(spec: SelectorSpec, selection: Selection, budget: int) -> None:
    # A selector that keeps repeats (knn with distinct=False) returns distinct rows and their multiplicity.
    multiplicity = selection.diagnostics.get("multiplicity")
    size = sum(multiplicity) if multiplicity is not None else selection.budget
    if size != budget:
        raise RuntimeError(f"selector {spec.name!r} returned {size} rows for a budget of {budget}")


def run_selector(pool: Any, target: Any, budget: int, *, method: str = "gotd", seed: int = 0,
                 **options: Any) -> Selection:
    """Run a selector and return the full record: indices, scores, parameters and diagnostics.

    Parameters
    ----------
    pool, target, budget, method, seed, **options
        As :func:`select`. ``pool`` and ``target`` are checked by the input kind the method declares
        (:attr:`SelectorSpec.inputs`); options are checked against the method's signature.

    Returns
    -------
    Selection
        With JSON-safe ``params`` and ``diagnostics`` (the sidecar is JSON).
    """
    spec = get_selector(method)
    seed = check_seed(seed)
    _check_option_names(spec, options)
    pool, target, budget = check_inputs(spec.inputs, pool, target, budget)
    selection = spec.fn(pool, target, budget, seed=seed, **options)
    _check_result(spec, selection, budget)
    selection.params = json_safe(selection.params)
    selection.diagnostics = json_safe(selection.diagnostics)
    return selection


def select(pool: Any, target: Any, budget: int, *, method: str = "gotd", seed: int = 0, **options: Any) -> np.ndarray:
    """Row indices of the ``budget`` pool rows that ``method`` selects for ``target``, best first.

    Parameters
    ----------
    pool : array-like (n, d) or sequence of str
        Candidate embeddings (numpy or torch) or, for text methods (``methods_taking("texts")``), texts.
    target : array-like (m, d) or sequence of str
        Target embeddings or texts, same kind as ``pool`` (ignored by ``random``).
    budget : int
        Number of rows to select, ``1 <= budget <= n``.
    method : str
        One of :func:`available_methods`.
    seed : int
        Seed of any randomness (recorded for every method).
    **options
        Options of the method (see each selector's docstring); unknown names raise.

    Returns
    -------
    numpy.ndarray of int64, shape (budget,)
        Pool row indices, best first, no repeats.
    """
    return run_selector(pool, target, budget, method=method, seed=seed, **options).indices


class _SelectorView(Mapping):
    """``SELECTORS[name]``: a callable running that method through :func:`run_selector` (checked inputs)."""

    def __getitem__(self, name: str) -> Selector:
        spec = get_selector(name)

        @wraps(spec.fn)
        def call(pool: Any, target: Any, budget: int, *, seed: int = 0, **options: Any) -> Selection:
            return run_selector(pool, target, budget, method=name, seed=seed, **options)

        return call

    def __iter__(self) -> Iterator[str]:
        return iter(available_methods())

    def __len__(self) -> int:
        return len(_registry())

    def __contains__(self, name: object) -> bool:
        return name in _registry()


SELECTORS: Mapping[str, Selector] = _SelectorView()
"""Registered selectors by method name (a live read-only view of the registry): each value is a callable
``fn(pool, target, budget, *, seed, **options) -> Selection`` that checks its inputs. Register new ones
with :func:`register_selector`."""
