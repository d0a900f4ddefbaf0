"""Moved: the steps of notebooks 02 and 03 are the ``prefinetune`` and ``evaluate`` stages
(:mod:`gotd.stages.prefinetune`, :mod:`gotd.stages.evaluate`); this module re-exports them."""
from gotd.evaluate import EVALUATIONS, EvalTask, evaluate_models, seeded_subset
from gotd.stages.evaluate import (add_evaluation_results, evaluation_task, interval_figure, models_to_evaluate,
                                  resolve_checkpoint, results_table, toxicity_prompts)
from gotd.stages.prefinetune import SMOKE_MODEL, SMOKE_TRAINING, selection_info, training_config, training_metrics
from gotd.stages.prefinetune import prefinetune_stage as prefinetune

__all__ = ["EVALUATIONS", "EvalTask", "SMOKE_MODEL", "SMOKE_TRAINING", "add_evaluation_results", "evaluate_models",
           "evaluation_task", "interval_figure", "models_to_evaluate", "prefinetune", "resolve_checkpoint",
           "results_table", "seeded_subset", "selection_info", "toxicity_prompts", "training_config",
           "training_metrics"]
