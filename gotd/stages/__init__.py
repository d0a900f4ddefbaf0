"""The workflow stages, each written once and walked by every front door (API, CLI, notebooks, ``gotd run``).

One module per stage, named as the run configs (``gotd/configs/*.yaml``) name them; data flows
texts -> chunks -> embeddings -> selection -> pre-fine-tuning -> evaluation -> comparison -> report:

:mod:`~gotd.stages.inputs`
    the built-in data by name or a file by path -> chunked pool and packed target frames -> embeddings;
:mod:`~gotd.stages.select`
    :func:`select_all` (pure, in memory: ``{(method, budget): Selection}``) under :func:`select_stage`
    (files with sidecars; ``gotd select``, ``gotd select-demo``, notebook ``01_select``);
:mod:`~gotd.stages.prefinetune`
    one reuse/resume rule (:func:`prefinetune_stage`; ``gotd train``, notebook ``02_prefinetune``) and two
    engines: the ``transformers`` Trainer for real LMs, the plain loop for tiny ones (:func:`warm_up_copy`);
:mod:`~gotd.stages.evaluate`
    the evaluation suite's stage wrapper (notebook ``03_evaluate``) and the one per-text schema
    (:func:`score_per_text`);
:mod:`~gotd.stages.compare`
    paired statistics, verdict sentences, the headline figure and the comparison's file format
    (notebooks ``05c_testbed_compare`` and ``06_compare_real``; the run report renders the files).

The report itself is :mod:`gotd.runner.report`. :data:`PARAMETER_CHECKS` maps a notebook to the stage's own
parameter checks, which ``gotd run`` applies to every point at plan time.
"""
from gotd.selectors import available_methods, methods_taking
from gotd.stages._registry import selector_specs
from gotd.stages.compare import (INTERVAL_NOTE, VERDICT_FILE, compare_evaluations, compare_scores, headline_figure,
                                 methods_in_order, paired_table, read_per_text, summarise_levels, verdict_sentences,
                                 write_comparison)
from gotd.stages.evaluate import PER_TEXT_NLL_COLUMNS, score_per_text
from gotd.stages.inputs import load_pool, load_target, load_task
from gotd.stages.prefinetune import prefinetune_stage, resume_policy, warm_up_copy
from gotd.stages.select import (SelectConfig, SelectResult, check_select_parameters, encoder_for, select_all,
                                select_stage, selection_outputs)

PARAMETER_CHECKS = {"01_select": check_select_parameters}
"""Notebook stem -> the stage's check of its parameters (raises :class:`gotd.errors.GotdInputError`)."""

__all__ = ["INTERVAL_NOTE", "PARAMETER_CHECKS", "PER_TEXT_NLL_COLUMNS", "SelectConfig", "SelectResult",
           "VERDICT_FILE", "available_methods", "check_select_parameters", "compare_evaluations", "compare_scores", "encoder_for",
           "headline_figure", "load_pool", "load_target", "load_task", "methods_in_order", "methods_taking",
           "paired_table", "prefinetune_stage", "read_per_text", "resume_policy", "score_per_text", "select_all",
           "select_stage", "selection_outputs", "selector_specs", "summarise_levels", "verdict_sentences",
           "warm_up_copy", "write_comparison"]
