"""Run configurations for ``gotd run``: loading, overrides and validation.

A run configuration is a YAML mapping::

    name: demo                      # run name: the report goes to <reports_dir>/<name>/
    description: one line shown by `gotd run --list`
    notebook_dir: notebooks         # optional: folder of the notebooks, relative to this file
                                    # (default: the kit's own notebooks/ folder)
    jobs: 1                         # optional: points run at once (gotd.runner.schedule; --jobs overrides)
    grid:                           # the parameter grid: axis -> list of plain values
      task: [rotten-tomatoes]
      method: [gotd, random]
      budget: [200]
      seed: [0]
    params:                         # parameters every stage gets (a stage's own params win)
      smoke: false
    stages:                         # notebooks, run in this order
      - name: select
        notebook: 01_select.ipynb
        over: [task, budget, seed]  # one point per combination of these grid axes
        params:
          task: "{task}"
          budget: "{budget}"
          methods: "{grid[method]}"
      - name: prefinetune
        notebook: 02_prefinetune.ipynb
        over: [task, budget, seed, method]
        after: [select]             # each point waits for the select point with the same shared axes
        params:
          selection_path: "{dirs[select]}/selections/{method}.jsonl"

Parameter values may be templates (Python ``str.format`` fields): ``{run}`` (the run's report folder),
``{run_dir}`` (this point's own folder), ``{<axis>}`` (this point's value on a grid axis), ``{grid[<axis>]}``
(all values of an axis) and ``{dirs[<stage>]}`` (the folder of the matching point of an earlier stage).
A value that is exactly one field keeps the field's type (``"{budget}"`` stays an int). A mapping
``{"$each": axis, "$value": template}`` becomes ``{v: template rendered with axis=v}`` for every value of
the axis (e.g. checkpoint folders per method for an evaluation notebook). Every notebook also gets
``run_dir``.
"""
from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from gotd.errors import GotdInputError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
TOP_LEVEL_KEYS = ("name", "description", "notebook_dir", "jobs", "grid", "params", "stages")
STAGE_KEYS = ("name", "notebook", "label", "over", "after", "params", "timeout")
PLAIN_SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class Stage:
    """One notebook of a run, executed once per combination of the grid axes in ``over``."""

    name: str
    notebook: Path
    over: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    timeout: float | None = None

    @property
    def prefix(self) -> str:
        """File-name prefix of this stage's points: the ``label`` or the notebook's stem."""
        return self.label or self.notebook.stem


@dataclass(frozen=True)
class RunConfig:
    """A validated run configuration (see the module docstring for the schema)."""

    name: str
    grid: dict[str, list[Any]]
    stages: tuple[Stage, ...]
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    source: str = ""
    raw: dict[str, Any] = field(default_factory=dict)
    jobs: int = 1

    def stage(self, name: str) -> Stage:
        """Return the stage called ``name``."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)


def kit_notebook_dir() -> Path:
    """The kit's own ``notebooks/`` folder (next to the ``gotd`` package in a source checkout)."""
    return Path(__file__).resolve().parents[2] / "notebooks"


def builtin_config_names() -> list[str]:
    """Names of the configurations shipped in ``gotd/configs/`` (``demo``, ``smoke``, ...)."""
    folder = resources.files("gotd") / "configs"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def builtin_config_descriptions() -> dict[str, str]:
    """Map each built-in configuration name to its one-line description."""
    out = {}
    for name in builtin_config_names():
        raw = yaml.safe_load((resources.files("gotd") / "configs" / f"{name}.yaml").read_text(encoding="utf-8"))
        out[name] = str(raw.get("description", "")) if isinstance(raw, dict) else ""
    return out


def load_config(source: str | os.PathLike[str], overrides: list[str] | None = None) -> RunConfig:
    """Read a run configuration from a YAML file or a built-in name, apply overrides, validate it.

    Parameters
    ----------
    source : str or path
        A ``.yaml``/``.yml`` file, or the name of a built-in configuration (see
        :func:`builtin_config_names`).
    overrides : list of str, optional
        ``KEY=VALUE`` items with a dotted key into the mapping and a YAML value, e.g. ``params.smoke=true``,
        ``grid.seed=[0,1,2]`` or ``name=demo-3seeds``.

    Raises
    ------
    GotdInputError
        If the file does not exist, is not valid YAML, or breaks the schema; the message names the key.
    """
    text, where, base = _read_source(source)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GotdInputError(f"config {where} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise GotdInputError(f"config {where} must be a YAML mapping with keys {', '.join(TOP_LEVEL_KEYS)}")
    raw = apply_overrides(raw, overrides or [], where)
    return validate_config(raw, where=where, base_dir=base)


def _read_source(source: str | os.PathLike[str]) -> tuple[str, str, Path | None]:
    path = Path(source)
    if path.suffix in (".yaml", ".yml") or path.exists() or os.sep in str(source):
        if not path.is_file():
            raise GotdInputError(f"config file {path} does not exist; give a .yaml file or one of the built-in "
                                 f"configs: {', '.join(builtin_config_names())}")
        return path.read_text(encoding="utf-8"), str(path), path.resolve().parent
    name = str(source)
    if name not in builtin_config_names():
        raise GotdInputError(f"unknown config {name!r}: give a .yaml file or one of the built-in configs: "
                             f"{', '.join(builtin_config_names())} (gotd run --list)")
    text = (resources.files("gotd") / "configs" / f"{name}.yaml").read_text(encoding="utf-8")
    return text, f"{name} (built-in)", None


def apply_overrides(raw: dict[str, Any], overrides: list[str], where: str = "config") -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``dotted.key=YAML`` override set (creating mappings as needed)."""
    out = copy.deepcopy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise GotdInputError(f"--set {item!r} is not KEY=VALUE; write e.g. --set params.smoke=true "
                                 "or --set grid.seed=[0,1]")
        try:
            parsed = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError as exc:
            raise GotdInputError(f"--set {item!r}: the value is not valid YAML ({exc})") from None
        node = out
        parts = key.strip().split(".")
        _check_override_key(raw, parts, item, where)
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise GotdInputError(f"--set {item!r}: {part!r} in {where} is not a mapping; only keys under "
                                     "name, description, notebook_dir, grid and params can be set")
            node = child
        node[parts[-1]] = parsed
    return out


def _check_override_key(raw: dict[str, Any], parts: list[str], item: str, where: str) -> None:
    """An override must name what the config has: a top-level key, or an existing grid axis.

    A new grid axis would be varied by no stage (the stages' ``over:`` cannot be set from the command line),
    so ``--set grid.nokey=[1]`` would change nothing; it is refused, naming the axes. ``params.<name>`` is
    checked against the notebooks' parameters at plan time.
    """
    if parts[0] not in TOP_LEVEL_KEYS:
        raise GotdInputError(f"--set {item!r}: {parts[0]!r} is not a config key; the keys are "
                             f"{', '.join(TOP_LEVEL_KEYS)}")
    if parts[0] == "stages":
        raise GotdInputError(f"--set {item!r}: stages cannot be set from the command line; edit the config file")
    if parts[0] == "grid" and len(parts) > 1:
        axes = list((raw.get("grid") or {}) if isinstance(raw.get("grid"), dict) else {})
        if parts[1] not in axes:
            raise GotdInputError(f"--set {item!r}: {where} has no grid axis {parts[1]!r} (its axes: "
                                 f"{', '.join(axes) or 'none'}); a new axis would be varied by no stage")


def validate_config(raw: dict[str, Any], *, where: str = "config", base_dir: Path | None = None) -> RunConfig:
    """Check a parsed configuration mapping against the schema and return a :class:`RunConfig`.

    Relative notebook paths are resolved against ``notebook_dir`` (itself relative to ``base_dir``, the
    config file's folder), or against the kit's ``notebooks/`` folder when ``notebook_dir`` is not set.
    """
    def fail(key: str, problem: str, fix: str) -> GotdInputError:
        return GotdInputError(f"config {where}: {key}: {problem}; {fix}")

    unknown = sorted(set(raw) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise fail(unknown[0], "unknown key", f"the keys are {', '.join(TOP_LEVEL_KEYS)}")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise fail("name", f"{name!r} is not a run name",
                   "set name: to letters, digits, '.', '_' or '-' (it names the report folder)")

    grid = raw.get("grid") or {}
    if not isinstance(grid, dict):
        raise fail("grid", "must be a mapping of axis name to a list of values", "e.g. grid: {seed: [0, 1]}")
    clean_grid: dict[str, list[Any]] = {}
    for axis, values in grid.items():
        if not isinstance(axis, str) or not axis.isidentifier():
            raise fail(f"grid.{axis}", "axis names must be Python identifiers", "rename the axis (e.g. budget)")
        if not isinstance(values, list):
            values = [values]
        if not values:
            raise fail(f"grid.{axis}", "is empty", "give at least one value or remove the axis")
        for value in values:
            if not isinstance(value, PLAIN_SCALARS) or value is None:
                raise fail(f"grid.{axis}", f"value {value!r} is not a plain string, number or boolean",
                           "grid values name points and files: use scalars")
        if len(set(map(_slug, values))) != len(values):
            raise fail(f"grid.{axis}", f"values {values} are not distinct as file names",
                       "use distinct values (letters, digits, '.', '_', '-')")
        clean_grid[axis] = list(values)

    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise fail("params", "must be a mapping of notebook parameter to value", "e.g. params: {smoke: true}")
    _check_plain(params, "params", fail)

    notebook_dir = raw.get("notebook_dir")
    if notebook_dir is None:
        nb_base = kit_notebook_dir()
    elif isinstance(notebook_dir, str):
        nb_base = Path(notebook_dir).expanduser()
        if not nb_base.is_absolute():
            nb_base = (base_dir or Path.cwd()) / nb_base
    else:
        raise fail("notebook_dir", "must be a folder path", "e.g. notebook_dir: notebooks")

    stages_raw = raw.get("stages")
    if not isinstance(stages_raw, list) or not stages_raw:
        raise fail("stages", "must be a non-empty list", "list the notebooks to run, each with name: and notebook:")
    stages: list[Stage] = []
    for i, st in enumerate(stages_raw):
        key = f"stages[{i}]"
        if not isinstance(st, dict):
            raise fail(key, "must be a mapping", "give name:, notebook: and optionally over:, after:, params:")
        bad = sorted(set(st) - set(STAGE_KEYS))
        if bad:
            raise fail(f"{key}.{bad[0]}", "unknown key", f"a stage has {', '.join(STAGE_KEYS)}")
        sname = st.get("name")
        if not isinstance(sname, str) or not sname.isidentifier():
            raise fail(f"{key}.name", f"{sname!r} is not a stage name", "use a Python identifier such as select")
        if any(s.name == sname for s in stages):
            raise fail(f"{key}.name", f"stage {sname!r} is defined twice", "give every stage its own name")
        nb = st.get("notebook")
        if not isinstance(nb, str) or not nb.endswith(".ipynb"):
            raise fail(f"{key}.notebook", f"{nb!r} is not a .ipynb path", "e.g. notebook: 01_select.ipynb")
        nb_path = Path(nb).expanduser()
        nb_path = nb_path if nb_path.is_absolute() else nb_base / nb_path
        over = st.get("over") or []
        if not isinstance(over, list) or len(set(over)) != len(over):
            raise fail(f"{key}.over", "must be a list of distinct grid axes", "e.g. over: [task, seed]")
        for axis in over:
            if axis not in clean_grid:
                raise fail(f"{key}.over", f"{axis!r} is not a grid axis (axes: {', '.join(clean_grid) or 'none'})",
                           "fix the name or add the axis under grid:")
        after = st.get("after") or []
        if isinstance(after, str):
            after = [after]
        if not isinstance(after, list):
            raise fail(f"{key}.after", "must be a list of earlier stage names", "e.g. after: [select]")
        for dep in after:
            if not any(s.name == dep for s in stages):
                raise fail(f"{key}.after", f"{dep!r} is not an earlier stage",
                           "stages run in order: list only stages defined above this one")
        sparams = st.get("params") or {}
        if not isinstance(sparams, dict):
            raise fail(f"{key}.params", "must be a mapping", "e.g. params: {budget: '{budget}'}")
        _check_plain(sparams, f"{key}.params", fail)
        if "run_dir" in sparams or "run_dir" in params:
            raise fail(f"{key}.params.run_dir", "is set by the runner", "remove it (each point gets its own folder)")
        label = st.get("label") or ""
        if label and (not isinstance(label, str) or not NAME_PATTERN.match(label)):
            raise fail(f"{key}.label", f"{label!r} is not a file-name prefix", "use letters, digits, '.', '_', '-'")
        timeout = st.get("timeout")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or timeout <= 0):
            raise fail(f"{key}.timeout", f"{timeout!r} is not a positive number of seconds",
                       "set the per-cell time limit in seconds or remove it")
        stage = Stage(name=sname, notebook=nb_path, over=tuple(over), after=tuple(after), params=sparams,
                      label=label, timeout=None if timeout is None else float(timeout))
        if any(s.prefix == stage.prefix for s in stages):
            raise fail(f"{key}.label", f"two stages would write files named {stage.prefix}-*",
                       "give one of them a distinct label:")
        stages.append(stage)
    jobs = raw.get("jobs", 1)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise fail("jobs", f"{jobs!r} is not a number of points to run at once", "set jobs: to 1 or more")
    return RunConfig(name=name, grid=clean_grid, stages=tuple(stages), params=params,
                     description=str(raw.get("description") or ""), source=where, raw=raw, jobs=jobs)


def _check_plain(value: Any, key: str, fail: Any) -> None:
    """Parameters must be builtin types: papermill turns anything else into a string."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int, float, bool)):
                raise fail(f"{key}", f"mapping key {k!r} is not a plain scalar", "use string keys")
            _check_plain(v, f"{key}.{k}", fail)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_plain(v, f"{key}[{i}]", fail)
    elif not isinstance(value, PLAIN_SCALARS):
        raise fail(key, f"{type(value).__name__} is not a plain YAML value",
                   "use strings, numbers, booleans, null, lists and mappings")


def _slug(value: Any) -> str:
    """File-name form of a grid value: ``json``-like scalars, unsafe characters replaced by '_'."""
    text = json.dumps(value) if isinstance(value, bool) or value is None else str(value)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)
