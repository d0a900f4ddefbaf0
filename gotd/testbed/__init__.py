"""A controlled testbed where GOT-D's premise holds by construction.

GOT-D assumes the candidate pool stands for the model's pre-training data. A real model's pre-training data
is unknown; here a tiny Llama is pre-trained from scratch on the pool, so the premise is true, and every
selection method is compared under one warm-up recipe, several budgets and seeds, with paired statistics.

Modules: :mod:`~gotd.testbed._lm` (tokenizer, tiny Llama, pre-training with a cache and manifest, per-text
NLL), :mod:`~gotd.testbed._scenarios` (task and partial-coverage scenarios), :mod:`~gotd.testbed._warmup`
(select, warm up, score at one seed), :mod:`~gotd.testbed._probe` (few-label head), :mod:`~gotd.testbed._stats`
(paired differences, intervals, the verdict sentence), :mod:`~gotd.testbed._figures`,
:mod:`~gotd.testbed._stages` (the three stages the notebooks run), :mod:`~gotd.testbed._real` (the same statistics
on the per-text scores of the real-LM run's ``03_evaluate`` folders).
"""
from __future__ import annotations

from gotd.testbed._figures import headline_figure, makeup_table
from gotd.testbed._lm import (LMSize, TrainRecipe, load_lm, mean_hidden_states, new_model, pack_blocks, pretrain,
                              text_nll, texts_sha256, train_steps, train_tokenizer)
from gotd.testbed._probe import few_label_sample, probe
from gotd.testbed._real import compare_real, read_per_text
from gotd.testbed._scenarios import (SCENARIOS, Scenario, build_scenario, draw_by_document, load_scenario,
                                     partial_scenario, save_scenario, task_scenario)
from gotd.testbed._stages import (StageClock, compare, flatten_dirs, prepare, smoke_settings,
                                  warm_up)
from gotd.testbed._stats import (Scores, level_interval, paired_difference, paired_table, scores_of,
                                 summarise_levels, verdict_sentences)
from gotd.testbed._warmup import SeedResult, run_seed

__all__ = [
    "LMSize", "TrainRecipe", "load_lm", "mean_hidden_states", "new_model", "pack_blocks", "pretrain", "text_nll",
    "texts_sha256", "train_steps", "train_tokenizer", "few_label_sample", "probe", "SCENARIOS", "Scenario",
    "build_scenario", "draw_by_document", "load_scenario", "partial_scenario", "save_scenario", "task_scenario",
    "StageClock", "compare", "flatten_dirs", "prepare", "smoke_settings", "warm_up", "Scores", "level_interval",
    "paired_difference", "paired_table",
    "scores_of", "summarise_levels", "verdict_sentences", "SeedResult", "run_seed",
    "headline_figure", "makeup_table", "compare_real", "read_per_text",
]
