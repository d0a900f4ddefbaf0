"""Grid expansion: every stage of a run becomes one point per combination of its grid axes.

A point knows its notebook, its parameters (templates rendered), its folder and the points it waits for.
Point ``P`` of stage ``S`` depends on every point of each stage in ``S.after`` that agrees with ``P`` on the
axes both stages vary over (the select point with the same task, budget and seed; all the pre-fine-tuning
points of one task, budget and seed for an evaluation that compares methods).
"""
from __future__ import annotations

import itertools
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gotd.errors import GotdInputError
from gotd.runner.config import RunConfig, Stage, _slug

_SINGLE_FIELD = re.compile(r"^\{([^{}]+)\}$")


@dataclass
class Point:
    """One notebook execution: a stage at one combination of its grid axes."""

    stage: Stage
    axes: dict[str, Any]
    name: str
    run_dir: Path
    parameters: dict[str, Any] = field(default_factory=dict)
    depends_on: list[str] = field(default_factory=list)

    @property
    def output_notebook(self) -> Path:
        """The executed notebook: ``<run>/<name>.ipynb`` next to the point's folder."""
        return self.run_dir.parent / f"{self.name}.ipynb"

    @property
    def html(self) -> Path:
        """The executed notebook rendered without code: ``<run>/<name>.html``."""
        return self.run_dir.parent / f"{self.name}.html"


def point_name(stage: Stage, axes: Mapping[str, Any]) -> str:
    """``<notebook stem or label>-<axis>=<value>-...`` in the order of ``stage.over``."""
    parts = [stage.prefix] + [f"{axis}={_slug(axes[axis])}" for axis in stage.over]
    return "-".join(parts)


def expand_points(config: RunConfig, run_root: Path) -> list[Point]:
    """Expand every stage over its grid axes, in stage order, with rendered parameters and dependencies.

    Parameters
    ----------
    config : RunConfig
        The validated run configuration.
    run_root : Path
        The run's report folder (``<reports_dir>/<name>``), made absolute so notebooks can run anywhere.

    Raises
    ------
    GotdInputError
        If a template names an unknown field or an ambiguous ``dirs[...]`` entry.
    """
    run_root = run_root.resolve()
    points: list[Point] = []
    by_stage: dict[str, list[Point]] = {}
    for stage in config.stages:
        combos = itertools.product(*(config.grid[axis] for axis in stage.over))
        stage_points = []
        for combo in combos:
            axes = dict(zip(stage.over, combo))
            name = point_name(stage, axes)
            point = Point(stage=stage, axes=axes, name=name, run_dir=run_root / name)
            point.depends_on = [p.name for dep in stage.after for p in by_stage[dep]
                                if _agrees(p.axes, axes)]
            merged = {**config.params, **stage.params}
            context = _Context(config, by_stage, run_root, point)
            point.parameters = {key: _render(value, context, f"stage {stage.name}: params.{key}")
                                for key, value in merged.items()}
            point.parameters["run_dir"] = str(point.run_dir)
            stage_points.append(point)
        by_stage[stage.name] = stage_points
        points.extend(stage_points)
    return points


def _agrees(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return all(a[k] == b[k] for k in a.keys() & b.keys())


class _StageDirs(Mapping[str, str]):
    """``dirs[stage]``: the folder of the one point of ``stage`` that matches the current axes."""

    def __init__(self, by_stage: dict[str, list[Point]], axes: dict[str, Any], allowed: tuple[str, ...]) -> None:
        self._by_stage, self._axes, self._allowed = by_stage, axes, allowed

    def __getitem__(self, stage: str) -> str:
        if stage not in self._by_stage:
            raise GotdInputError(f"dirs[{stage}] names no earlier stage (earlier stages: "
                                 f"{', '.join(self._by_stage) or 'none'})")
        if stage not in self._allowed:
            raise GotdInputError(f"dirs[{stage}] is used but {stage!r} is not listed under after:, so this point "
                                 "would not wait for it; add it to after:")
        matches = [p for p in self._by_stage[stage] if _agrees(p.axes, self._axes)]
        if len(matches) != 1:
            missing = sorted({a for p in self._by_stage[stage] for a in p.axes} - set(self._axes))
            raise GotdInputError(f"dirs[{stage}] matches {len(matches)} points, not one: the stage also varies "
                                 f"over {', '.join(missing)}; vary this stage over them too, or build a mapping "
                                 f"with $each")
        return str(matches[0].run_dir)

    def __iter__(self):  # pragma: no cover - Mapping protocol only
        return iter(self._by_stage)

    def __len__(self) -> int:  # pragma: no cover - Mapping protocol only
        return len(self._by_stage)


class _Context(Mapping[str, Any]):
    """The fields a template may use; ``with_axis`` fixes one more axis (for ``$each``)."""

    def __init__(self, config: RunConfig, by_stage: dict[str, list[Point]], run_root: Path, point: Point,
                 extra: dict[str, Any] | None = None) -> None:
        self.config, self.by_stage, self.run_root, self.point = config, by_stage, run_root, point
        self.axes = {**point.axes, **(extra or {})}
        self.values: dict[str, Any] = {"run": str(run_root), "run_dir": str(point.run_dir),
                                       "grid": {k: list(v) for k, v in config.grid.items()},
                                       "dirs": _StageDirs(by_stage, self.axes, point.stage.after), **self.axes}

    def with_axis(self, axis: str, value: Any) -> _Context:
        return _Context(self.config, self.by_stage, self.run_root, self.point, {**self.axes, axis: value})

    def __getitem__(self, key: str) -> Any:
        if key in self.values:
            return self.values[key]
        if key in self.config.grid:
            raise GotdInputError(f"{{{key}}} is a grid axis this stage does not vary over; add {key} to the "
                                 f"stage's over:, or use {{grid[{key}]}} for all its values")
        raise GotdInputError(f"unknown template field {{{key}}}; fields: run, run_dir, grid[...], dirs[...], "
                             f"{', '.join(self.axes) or '(no axes)'}")

    def __iter__(self):  # pragma: no cover - Mapping protocol only
        return iter(self.values)

    def __len__(self) -> int:  # pragma: no cover - Mapping protocol only
        return len(self.values)


def _render(value: Any, context: _Context, key: str) -> Any:
    """Render templates inside ``value``; a string that is exactly one field keeps the field's type."""
    try:
        if isinstance(value, str):
            single = _SINGLE_FIELD.match(value)
            if single:
                obj, _ = string.Formatter().get_field(single.group(1), (), context)
                return _plain_copy(obj)
            return value.format_map(context) if "{" in value or "}" in value else value
        if isinstance(value, dict):
            if "$each" in value:
                return _render_each(value, context, key)
            return {k: _render(v, context, f"{key}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [_render(v, context, f"{key}[{i}]") for i, v in enumerate(value)]
        return value
    except GotdInputError as exc:
        if str(exc).startswith(key):
            raise
        raise GotdInputError(f"{key}: {exc}") from None
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise GotdInputError(f"{key}: template {value!r} cannot be filled ({type(exc).__name__}: {exc}); "
                             "write literal braces as {{ and }}") from None


def _render_each(value: dict[str, Any], context: _Context, key: str) -> dict[str, Any]:
    axis = value["$each"]
    if set(value) != {"$each", "$value"}:
        raise GotdInputError(f"{key}: a $each mapping has exactly the keys $each and $value")
    if axis not in context.config.grid:
        raise GotdInputError(f"{key}: $each: {axis!r} is not a grid axis ({', '.join(context.config.grid)})")
    return {str(v): _render(value["$value"], context.with_axis(axis, v), key) for v in context.config.grid[axis]}


def _plain_copy(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {k: _plain_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain_copy(v) for v in obj]
    return obj
