"""What the select stage asks the selector registry: each method's spec, checked before any work.

:mod:`gotd.selectors` is the one place that knows a method's input and whether it shows progress (the
spec each selector registers); nothing here lists method names.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from gotd.errors import GotdInputError
from gotd.selectors import SelectorSpec, available_methods, get_selector


def selector_specs(methods: Sequence[str]) -> dict[str, SelectorSpec]:
    """The registry record of each method, in order; an unknown name fails before any work is done."""
    if isinstance(methods, str) or not methods:
        raise GotdInputError(f"methods must be a non-empty list of method names, got {methods!r}; "
                             f"e.g. ['gotd', 'random'] (methods: {', '.join(available_methods())})")
    if len(set(methods)) != len(methods):
        raise GotdInputError(f"methods {list(methods)} name a method twice; list each once")
    return {m: get_selector(m) for m in methods}


def accepts(fn: Callable[..., Any], name: str) -> bool:
    """True when ``fn`` takes the keyword ``name`` (or forwards any keyword, as the OT selectors do)."""
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
