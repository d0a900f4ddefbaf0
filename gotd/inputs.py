"""Moved: the named inputs are the ``inputs`` stage, :mod:`gotd.stages.inputs`; re-exported here."""
from gotd.stages.inputs import (BUILTIN_POOL, SMOKE_POOL_DOCS, SMOKE_TASK, SMOKE_TASK_SAMPLES, is_builtin_task,
                                load_pool, load_target, load_task, looks_like_file, smoke_budget, task_name)

DEMO_POOL = BUILTIN_POOL  # its old name

__all__ = ["BUILTIN_POOL", "DEMO_POOL", "SMOKE_POOL_DOCS", "SMOKE_TASK", "SMOKE_TASK_SAMPLES", "is_builtin_task", "load_pool",
           "load_target", "load_task", "looks_like_file", "smoke_budget", "task_name"]
