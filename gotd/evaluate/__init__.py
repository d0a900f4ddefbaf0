"""Evaluation of (pre-fine-tuned) causal LMs: perplexity, zero-shot and few-label classification, toxicity.

Every evaluation returns a tidy :class:`pandas.DataFrame` in the one results schema of
:mod:`gotd.results`: one row per model x task x metric x seed, the columns
:data:`RESULT_COLUMNS` (``notebook``, ``task``, ``method``, ``budget``, ``seed``, ``model``, ``metric``,
``value``) first, then ``n`` (the number of evaluated items: texts, examples, prompts) and ``ci_low``,
``ci_high`` (a percentile bootstrap interval, default 95%, 1000 resamples of the items, where there is
one, NaN otherwise). ``seed`` is the seed of the random part (bootstrap resampling, sampling,
fine-tuning), ``<NA>`` on rows that aggregate over seeds (then ``std`` is the sample standard deviation
across seeds).

The suite (:func:`evaluate_models`; :func:`evaluate_on_task` for one model on a built task, which is
``gotd evaluate``) runs several evaluations over several models and names each metric after the
evaluation that measured it (:data:`METRICS`: ``zero_shot_accuracy``, ``perplexity``,
``finetune_accuracy_seed_mean``...); notebook ``03_evaluate`` and ``gotd evaluate`` both call it, so their
files join on :data:`gotd.results.JOIN_KEYS`. The single evaluations (:func:`perplexity`,
:func:`zero_shot_classify`...) take plain lists of texts and labels and keep plain metric names
(``accuracy``, ``macro_f1``). :func:`per_text_nll` gives the per-text loss sums behind the perplexity,
for paired comparisons of two models on the same texts. :func:`write_results` writes a table to parquet
or CSV atomically and :func:`read_results` reads it back.

All losses are natural-log cross-entropies (nats per token); perplexity is ``exp`` of the token-weighted
mean loss. Inputs longer than the model's window are split into windows (perplexity) or rejected with an
error (classification prompts), never cut silently. Models load through :mod:`gotd.models`; nothing
here imports the training stage.

Layout: ``_config`` (:class:`EvalConfig`), ``_common`` (checks, tokenising, rows), ``_stats`` (bootstrap,
accuracy, macro-F1), ``_perplexity``, ``_zero_shot`` (with :class:`ZeroShotConfig`), ``_finetune`` (with
:class:`FinetuneConfig`), ``_probe`` (a linear head on a model's mean hidden state), ``_toxicity`` (with
:class:`ToxicityConfig`), ``_suite`` (the suite and the tasks).
"""
from __future__ import annotations

from gotd.evaluate._classifier import ClassifierRecipe, finetune_classifier
from gotd.evaluate._config import EvalConfig
from gotd.evaluate._finetune import FinetuneConfig, few_label_finetune
from gotd.evaluate._probe import few_label_sample, mean_hidden_states, probe
from gotd.evaluate._perplexity import per_text_nll, perplexity, token_nll
from gotd.evaluate._stats import bootstrap_ci, classification_metrics
from gotd.evaluate._suite import (
    BASE_METHOD,
    EVALUATIONS,
    METRICS,
    PER_TEXT_FILES,
    EvalTask,
    describe_model,
    evaluate_models,
    evaluate_on_task,
    metric_names,
    seeded_subset,
    task_from_assets,
    text_sha,
)
from gotd.evaluate._toxicity import ToxicityConfig, generate_continuations, toxicity_eval
from gotd.evaluate._zero_shot import (DEFAULT_TEMPLATE, SCORINGS, ZeroShotConfig, zero_shot_classify,
                                     zero_shot_scores)
from gotd.results import JOIN_KEYS, MEASURE_COLUMNS, RESULT_COLUMNS, read_results, result_table, write_results

__all__ = [
    "ClassifierRecipe",
    "finetune_classifier",
    "RESULT_COLUMNS",
    "MEASURE_COLUMNS",
    "JOIN_KEYS",
    "perplexity",
    "per_text_nll",
    "token_nll",
    "zero_shot_scores",
    "zero_shot_classify",
    "ZeroShotConfig",
    "few_label_finetune",
    "FinetuneConfig",
    "few_label_sample",
    "mean_hidden_states",
    "probe",
    "generate_continuations",
    "toxicity_eval",
    "ToxicityConfig",
    "evaluate_models",
    "EvalConfig",
    "evaluate_on_task",
    "EvalTask",
    "task_from_assets",
    "seeded_subset",
    "describe_model",
    "metric_names",
    "BASE_METHOD",
    "PER_TEXT_FILES",
    "text_sha",
    "EVALUATIONS",
    "METRICS",
    "DEFAULT_TEMPLATE",
    "SCORINGS",
    "classification_metrics",
    "bootstrap_ci",
    "result_table",
    "write_results",
    "read_results",
]
