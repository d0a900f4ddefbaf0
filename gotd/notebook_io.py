"""Moved: run folders are :mod:`gotd.runner.rundir` (:class:`RunDir`), path resolution is :mod:`gotd.paths`.

This module re-exports them under their old names.
"""
from gotd.paths import repo_root, resolve_path
from gotd.results import MEASURE_COLUMNS, RESULT_COLUMNS
from gotd.runner.rundir import RunDir

__all__ = ["MEASURE_COLUMNS", "RESULT_COLUMNS", "RunDir", "repo_root", "resolve_path"]
