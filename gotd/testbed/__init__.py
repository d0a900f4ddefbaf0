"""A controlled testbed that certifies itself before it ranks: controls, a light warm-up, downstream accuracy.

GOT-D assumes the candidate pool stands for the model's pre-training data. A real model's pre-training data
is unknown; here a tiny Llama is pre-trained from scratch on the pool (to a measured plateau of its held-out
pool NLL), so the pool is its pre-training distribution, and every selection method fills the same token
budget for a light warm-up that continues the pre-training's optimizer state. Whether the testbed is then in
the regime GOT-D's theory describes is not assumed: controls (no warm-up, random pool chunks as the null,
the target's own texts as the positive control, a randomly initialised model for the downstream score)
are gates, and a scenario whose gates fail ranks nothing (:mod:`~gotd.testbed._gates`).

The testbed keeps only what is its own: the scenarios (:mod:`~gotd.testbed._scenarios`: task and
partial-coverage), the selection make-up table (:mod:`~gotd.testbed._figures`), and a thin composition of the
kit's stages (:mod:`~gotd.testbed._warmup`: draw, select, fill the token budget, warm up, score, fine-tune at
one seed; :mod:`~gotd.testbed._stages`: the three steps notebooks ``05a``-``05c`` run), the gates
(:mod:`~gotd.testbed._gates`) and the figures (:mod:`~gotd.testbed._figures`). The tiny LM and its tokenizer are :mod:`gotd.models`', the
packing, the plain loop and the cached pre-training :mod:`gotd.train`'s, the probe and per-text NLL
:mod:`gotd.evaluate`'s, selection, warm-up, per-text scoring and the paired comparison :mod:`gotd.stages`'.
"""
from __future__ import annotations

from typing import Any

from gotd.testbed._figures import curve_figure, makeup_table
from gotd.testbed._gates import control_gates, plateau_gate, primary_table
from gotd.testbed._scenarios import SCENARIOS, Scenario, build_scenario, load_scenario, save_scenario
from gotd.testbed._stages import GEOMETRIES, TestbedLM, compare, flatten_dirs, prepare, smoke_settings, warm_up
from gotd.testbed._warmup import CONTROLS, DownstreamSpec, SeedResult, run_seed

__all__ = ["CONTROLS", "DownstreamSpec", "GEOMETRIES", "SCENARIOS", "Scenario", "SeedResult", "TestbedLM",
           "build_scenario", "compare",
           "control_gates", "curve_figure", "flatten_dirs", "load_scenario", "makeup_table", "plateau_gate", "prepare",
           "primary_table", "run_seed", "save_scenario", "smoke_settings", "warm_up"]

MOVED = {
    "LMSize": "gotd.models.TinyLlamaSize", "new_model": "gotd.models.new_tiny_llama",
    "train_tokenizer": "gotd.models.train_bpe_tokenizer", "TrainRecipe": "gotd.train.LoopRecipe",
    "train_steps": "gotd.train.train_loop", "pack_blocks": "gotd.train.full_blocks (gotd.train.pack_token_blocks)",
    "pretrain": "gotd.train.pretrain_from_scratch", "load_lm": "gotd.train.load_pretrained",
    "text_nll": "gotd.evaluate.per_text_nll", "texts_sha256": "gotd.data.texts_fingerprint",
    "mean_hidden_states": "gotd.evaluate.mean_hidden_states", "probe": "gotd.evaluate.probe",
    "few_label_sample": "gotd.evaluate.few_label_sample",
    "compare_real": "gotd.stages.compare_evaluations", "read_per_text": "gotd.stages.read_per_text",
    "Scores": "gotd.stages.compare.Scores", "level_interval": "gotd.stages.compare.level_interval",
    "paired_difference": "gotd.stages.compare.paired_difference", "paired_table": "gotd.stages.paired_table",
    "scores_of": "gotd.stages.compare.scores_of", "summarise_levels": "gotd.stages.summarise_levels",
    "verdict_sentences": "gotd.stages.verdict_sentences", "headline_figure": "gotd.stages.headline_figure",
    "StageClock": "gotd.testbed._stages.StageClock (a helper of the testbed's steps)",
    "draw_by_document": "gotd.testbed._scenarios.draw_by_document",
    "partial_scenario": "gotd.testbed._scenarios.partial_scenario",
    "task_scenario": "gotd.testbed._scenarios.task_scenario",
}
"""Names this package exported before its LM toolkit moved to the kit's own packages -> their new home."""


def __getattr__(name: str) -> Any:
    if name in MOVED:
        raise AttributeError(f"gotd.testbed.{name} has moved: use {MOVED[name]}")
    raise AttributeError(f"module 'gotd.testbed' has no attribute {name!r}")
