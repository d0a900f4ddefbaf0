"""What the select stage asks the selector registry: which input a method takes, whether it shows progress.

MERGE: every function here forwards to the selector registry (``gotd.selectors.get_selector``,
``available_methods``, ``methods_taking``) as soon as ``gotd.selectors`` defines ``get_selector``. Until then
``_selector_spec`` builds the same record from the registry's behaviour today (``_SHIM_*`` below); delete the
shim branch and the ``_SHIM_*`` tables at merge. The same holds for :func:`count_exact_duplicates`
(``gotd.data.count_exact_duplicates``).
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gotd.errors import GotdInputError

INPUT_KINDS = ("embeddings", "texts", "none")
"""What a selector reads: embeddings of pool and target, their raw texts, or nothing but the pool's size."""

# MERGE: temporary, today's behaviour of the registry; replaced by the fields of gotd.selectors.SelectorSpec.
_SHIM_INPUTS = {"dsir": "texts", "random": "none"}
_SHIM_NO_PROGRESS = {"random"}
_SHIM_RANDOMIZED = {"random", "dsir"}


@dataclass(frozen=True)
class _SpecShim:
    """The fields of ``gotd.selectors.SelectorSpec`` (MERGE: replaced by it)."""

    name: str
    fn: Callable[..., Any]
    inputs: str
    progress: bool
    randomized: bool
    summary: str


def _selector_spec(method: str) -> Any:
    """The registry's record of ``method`` (MERGE: ``gotd.selectors.get_selector``)."""
    from gotd import selectors

    if hasattr(selectors, "get_selector"):
        return selectors.get_selector(method)
    if method not in selectors.SELECTORS:  # MERGE: shim below
        raise GotdInputError(f"unknown selection method {method!r}; choose one of "
                             f"{', '.join(selectors.available_methods())}")
    fn = selectors.SELECTORS[method]
    doc = (fn.__doc__ or "").strip().splitlines()
    return _SpecShim(name=method, fn=fn, inputs=_SHIM_INPUTS.get(method, "embeddings"),
                     progress=method not in _SHIM_NO_PROGRESS, randomized=method in _SHIM_RANDOMIZED,
                     summary=doc[0] if doc else "")


def available_methods() -> list[str]:
    """The registered method names, sorted."""
    from gotd import selectors

    return list(selectors.available_methods())


def methods_taking(inputs: str) -> list[str]:
    """The methods that read ``inputs`` (one of :data:`INPUT_KINDS`)."""
    from gotd import selectors

    if hasattr(selectors, "methods_taking"):
        return list(selectors.methods_taking(inputs))
    return [m for m in available_methods() if _selector_spec(m).inputs == inputs]  # MERGE: shim


def selector_specs(methods: Sequence[str]) -> dict[str, Any]:
    """The registry record of each method, in order; an unknown name fails before any work is done."""
    if isinstance(methods, str) or not methods:
        raise GotdInputError(f"methods must be a non-empty list of method names, got {methods!r}; "
                             f"e.g. ['gotd', 'random'] (methods: {', '.join(available_methods())})")
    if len(set(methods)) != len(methods):
        raise GotdInputError(f"methods {list(methods)} name a method twice; list each once")
    return {m: _selector_spec(m) for m in methods}


def accepts(fn: Callable[..., Any], name: str) -> bool:
    """True when ``fn`` takes the keyword ``name`` (or forwards any keyword, as the OT selectors do)."""
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def solver_accepts(name: str) -> bool:
    """True when the OT solver takes ``name`` (MERGE: ``allow_unconverged``/``preset`` land with the solver)."""
    from gotd import ot

    return any(name in inspect.signature(fn).parameters for fn in (ot.sinkhorn, ot.ot_gradients_with_diagnostics))


def count_exact_duplicates(texts: Sequence[str]) -> int:
    """Rows whose text equals an earlier row's: ``len(texts) - len(set(texts))``.

    MERGE: replaced by ``gotd.data.count_exact_duplicates``.
    """
    from gotd import data

    if hasattr(data, "count_exact_duplicates"):
        return int(data.count_exact_duplicates(texts))
    return len(texts) - len(set(texts))
