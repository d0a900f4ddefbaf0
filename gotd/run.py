"""Moved: ``gotd run`` is :mod:`gotd.runner.run`; this module re-exports its public names."""
from gotd.runner.run import (RunSummary, builtin_config_descriptions, builtin_config_names, execute_point,
                             load_config, plan_run, run_config)

__all__ = ["RunSummary", "builtin_config_descriptions", "builtin_config_names", "execute_point", "load_config",
           "plan_run", "run_config"]
