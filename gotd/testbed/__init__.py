"""A controlled testbed where GOT-D's premise holds by construction.

GOT-D assumes the candidate pool stands for the model's pre-training data. A real model's pre-training data
is unknown; here a tiny Llama is pre-trained from scratch on the pool, so the premise is true, and every
selection method is compared under one warm-up recipe, several budgets and seeds, with paired statistics.

Modules: :mod:`~gotd.testbed._scenarios` (task and partial-coverage scenarios), :mod:`~gotd.testbed._warmup`
(select, warm up, score at one seed), :mod:`~gotd.testbed._stats` (paired differences, intervals, the
verdict sentence), :mod:`~gotd.testbed._figures`, :mod:`~gotd.testbed._stages` (the three stages the
notebooks run), :mod:`~gotd.testbed._real` (the same statistics on the per-text scores of the real-LM
run's ``03_evaluate`` folders). The tiny LM, its tokenizer, the packing and the training loop are the kit's
own (:mod:`gotd.models`, :mod:`gotd.train`), the probe is :mod:`gotd.evaluate`'s.
"""
from __future__ import annotations

from typing import Any

from gotd.testbed._figures import headline_figure, makeup_table
from gotd.testbed._real import compare_real, read_per_text
from gotd.testbed._scenarios import (SCENARIOS, Scenario, build_scenario, draw_by_document, load_scenario,
                                     partial_scenario, save_scenario, task_scenario)
from gotd.testbed._stages import (StageClock, compare, flatten_dirs, prepare, smoke_settings,
                                  warm_up)
from gotd.testbed._stats import (Scores, level_interval, paired_difference, paired_table, scores_of,
                                 summarise_levels, verdict_sentences)
from gotd.testbed._warmup import SeedResult, run_seed

__all__ = [
    "SCENARIOS", "Scenario",
    "build_scenario", "draw_by_document", "load_scenario", "partial_scenario", "save_scenario", "task_scenario",
    "StageClock", "compare", "flatten_dirs", "prepare", "smoke_settings", "warm_up", "Scores", "level_interval",
    "paired_difference", "paired_table",
    "scores_of", "summarise_levels", "verdict_sentences", "SeedResult", "run_seed",
    "headline_figure", "makeup_table", "compare_real", "read_per_text",
]

MOVED = {
    "LMSize": "gotd.models.TinyLlamaSize", "new_model": "gotd.models.new_tiny_llama",
    "train_tokenizer": "gotd.models.train_bpe_tokenizer", "TrainRecipe": "gotd.train.LoopRecipe",
    "train_steps": "gotd.train.train_loop", "pack_blocks": "gotd.train.full_blocks (gotd.train.pack_token_blocks)",
    "pretrain": "gotd.train.pretrain_from_scratch", "load_lm": "gotd.train.load_pretrained",
    "text_nll": "gotd.evaluate.per_text_nll", "texts_sha256": "gotd.data.texts_fingerprint",
    "mean_hidden_states": "gotd.evaluate.mean_hidden_states", "probe": "gotd.evaluate.probe",
    "few_label_sample": "gotd.evaluate.few_label_sample",
}
"""Names this package exported before its LM toolkit moved to the kit's own packages -> their new home."""


def __getattr__(name: str) -> Any:
    if name in MOVED:
        raise AttributeError(f"gotd.testbed.{name} has moved: use {MOVED[name]}")
    raise AttributeError(f"module 'gotd.testbed' has no attribute {name!r}")
