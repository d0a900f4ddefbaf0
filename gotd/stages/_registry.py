"""What the select stage asks the selector registry: which input a method takes, whether it shows progress.

Thin views over :mod:`gotd.selectors` (the one place that knows a method's input, from the spec each
selector registers) and :func:`gotd.data.count_exact_duplicates`; nothing here lists method names.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from gotd.errors import GotdInputError

INPUT_KINDS = ("embeddings", "texts", "none")
"""What a selector reads: embeddings of pool and target, their raw texts, or nothing but the pool's size."""

def _selector_spec(method: str) -> Any:
    """The registry's record of ``method`` (:func:`gotd.selectors.get_selector`)."""
    from gotd import selectors

    return selectors.get_selector(method)


def available_methods() -> list[str]:
    """The registered method names, sorted."""
    from gotd import selectors

    return list(selectors.available_methods())


def methods_taking(inputs: str) -> list[str]:
    """The methods that read ``inputs`` (one of :data:`INPUT_KINDS`)."""
    from gotd import selectors

    return list(selectors.methods_taking(inputs))


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


def count_exact_duplicates(texts: Sequence[str]) -> int:
    """Rows whose text equals an earlier row's (:func:`gotd.data.count_exact_duplicates`)."""
    from gotd import data

    return int(data.count_exact_duplicates(texts))
