"""Parameter objects: one frozen dataclass holds the many knobs of one function.

A function with many settings takes them as one object (``TrainConfig`` for :func:`gotd.train.train`,
``EvalConfig`` for :func:`gotd.evaluate.evaluate_models`, ``ZeroShotConfig``, ``ToxicityConfig``,
``FinetuneConfig``, ``SelectConfig``...) and still accepts each field as a keyword argument, which wins over
the object's value: ``f(x, config)`` and ``f(x, seed=1)`` are the same call shape. :class:`ParameterObject`
gives every such dataclass the two operations this needs, so a misspelt keyword fails with one line that
lists the fields.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from gotd.errors import GotdInputError

__all__ = ["ParameterObject"]

P = TypeVar("P", bound="ParameterObject")


class ParameterObject:
    """Mixin of gotd's frozen parameter dataclasses: copies with fields changed by name."""

    def replace(self: P, **changes: Any) -> P:
        """A copy with ``changes`` (validated again by the dataclass); an unknown name raises GotdInputError."""
        names = [f.name for f in dataclasses.fields(self)]  # type: ignore[arg-type]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise GotdInputError(f"{type(self).__name__} has no field(s) {unknown}; fields: {', '.join(names)}")
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    @classmethod
    def resolve(cls: type[P], config: P | None, settings: Mapping[str, Any]) -> P:
        """``config`` (default: the defaults) with the fields named in ``settings`` replaced.

        The keyword form of a function that takes the object: ``settings`` are its ``**settings``.
        """
        if config is not None and not isinstance(config, cls):
            raise GotdInputError(f"config must be a {cls.__name__}, got {type(config).__name__}; pass its fields "
                                 "as keywords or build one with "
                                 f"{cls.__name__}(...)")
        return (config if config is not None else cls()).replace(**settings)
