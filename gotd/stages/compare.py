"""The ``compare`` stage: paired statistics, the verdict sentences, the headline figure and their files.

Every comparison (the testbed's ``05c_testbed_compare``, the real-LM run's ``06_compare_real``) pairs the
per-text scores of every method with GOT-D's and with the un-warmed model's, over the same texts and seeds
(:func:`compare_scores`; the statistics are in :mod:`gotd.stages._paired`), writes one sentence per
scenario from the numbers (:func:`verdict_sentences`), draws the headline figure (:func:`headline_figure`)
and writes the files the run report renders (:func:`write_comparison`; the format below).

Files of a comparison folder (the format :func:`gotd.runner.report.comparison_section` reads)::

    paired.csv            scenario, split, budget, method, vs, diff, ci_low, ci_high, t_low, t_high,
                          n_seeds, n_texts, metric     (diff = value(method) - value(vs))
    levels.csv            scenario, split, method, budget, mean, std, ci_low, ci_high, n_seeds, metric
    figures/headline.png  the headline figure
    makeup.csv            optional: each domain's share of every selection (scenario, budget, method index)
    verdict.json          written last (the sign of a finished comparison): sentences,
                          secondary_sentences, reading, skipped_methods, pool_sizes, labels, seeds, n_boot,
                          interval, timings

A per-text table has ``scenario``, ``split``, ``method``, ``budget``, ``seed``, ``text_index`` and the
score columns (:mod:`gotd.stages.evaluate`'s schema: ``nll_sum`` and ``n_tokens``, or a 0/1 ``correct``).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from gotd._io import atomic_path, write_json_atomic
from gotd.errors import GotdInputError
from gotd.evaluate import BASE_METHOD, PER_TEXT_FILES
from gotd.stages._headline import headline_figure
from gotd.stages._paired import (Scores, holm, level_interval, methods_in_order, paired_difference, paired_table,
                                 scores_of, summarise_levels, verdict_sentences)

__all__ = ["INTERVAL_NOTE", "VERDICT_FILE", "Scores", "compare_evaluations", "compare_scores", "headline_figure",
           "holm", "level_interval", "methods_in_order", "paired_difference", "paired_table", "read_per_text",
           "scores_of", "summarise_levels", "verdict_sentences", "write_comparison"]

VERDICT_FILE = "verdict.json"
"""Written last into a comparison folder: the report's first screen."""

INTERVAL_NOTE = ("95% two-level bootstrap: seeds and test texts resampled with replacement, the same text draw for "
                 "every seed and both methods (t-interval over seeds in t_low/t_high)")
"""How the intervals of a comparison were made (``verdict.json``'s ``interval``)."""


def compare_scores(table: pd.DataFrame, *, metric: str, kind: str, num: str, den: str | None = None,
                   baseline: str = BASE_METHOD, n_boot: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Paired differences and levels of one per-text score, each row tagged with ``metric``.

    ``kind`` is ``"perplexity"`` (``exp(sum num / sum den)``) or ``"accuracy"`` (``sum num / n``).
    """
    scores = scores_of(table, metric=kind, num=num, den=den)
    paired = paired_table(scores, baseline=baseline, n_boot=n_boot, seed=seed).assign(metric=metric)
    levels = summarise_levels(scores, n_boot=n_boot, seed=seed).assign(metric=metric)
    return paired, levels


def write_comparison(out: Path, paired: pd.DataFrame, levels: pd.DataFrame, figure: Any,
                     record: dict[str, Any]) -> None:
    """Write a comparison's files atomically: ``paired.csv``, ``levels.csv``, ``figures/headline.png`` and,
    last (the report reads it as the sign of a finished comparison), ``verdict.json``."""
    (out / "figures").mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "figures" / "headline.png") as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    for stem, frame in (("paired", paired), ("levels", levels)):
        with atomic_path(out / f"{stem}.csv") as tmp:
            frame.to_csv(tmp, index=False)
    write_json_atomic(out / VERDICT_FILE, record)


EVALUATION_METRICS = {"perplexity": ("perplexity", "nll_sum", "n_tokens"),
                      "zero-shot": ("zero_shot_accuracy", "correct", None)}
"""Per evaluation of ``03_evaluate``: the metric name in ``paired.csv``, the per-text numerator and denominator."""


def read_per_text(evaluate_dirs: Sequence[str | Path], evaluation: str) -> pd.DataFrame:
    """One evaluation's per-text rows of every ``03_evaluate`` run, with ``scenario`` (the task) and ``budget``.

    Raises :class:`~gotd.errors.GotdInputError` when a folder lacks the file, or when two runs scored a
    different text at the same ``text_index`` (their samples differ: give them one ``sample_seed``).
    """
    frames = []
    for d in evaluate_dirs:
        folder = Path(d)
        path = folder / PER_TEXT_FILES[evaluation]
        if not path.is_file():
            raise GotdInputError(f"{folder} has no {path.name}: run 03_evaluate with {evaluation!r} in evaluations "
                                 "(a version that writes per-text scores)")
        params = json.loads((folder / "run.json").read_text(encoding="utf-8"))["parameters"]
        frames.append(pd.read_parquet(path).assign(scenario=str(params["target"]), budget=int(params["budget"])))
    table = pd.concat(frames, ignore_index=True)
    shas = table.groupby(["scenario", "split", "text_index"])["text_sha"].nunique()
    if (shas > 1).any():
        raise GotdInputError(f"the runs scored different texts at {int((shas > 1).sum())} text positions: pairing "
                             "needs the same sample in every run (set one sample_seed for every 03_evaluate run)")
    return table


def compare_evaluations(evaluate_dirs: Sequence[str | Path], out_dir: str | Path, *, n_boot: int = 2000,
                 seed: int = 0) -> dict[str, Any]:
    """Paired differences, levels, verdict sentences and the headline figure of ``03_evaluate`` runs.

    Writes the comparison's files (:func:`write_comparison`) into ``out_dir``, with ``metric``
    ``perplexity`` on the perplexity texts and ``zero_shot_accuracy``. The primary sentence is on perplexity
    (as the testbed's), the zero-shot accuracy sentence follows as a secondary one.
    """
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    paired, levels, sentences = [], [], {}
    seeds: set[int] = set()
    split = "test"
    for evaluation, (metric, num, den) in EVALUATION_METRICS.items():
        table = read_per_text(evaluate_dirs, evaluation)
        seeds |= {int(s) for s in table["seed"]}
        split = str(table["split"].iloc[0]) if evaluation == "perplexity" else split
        kind = "perplexity" if evaluation == "perplexity" else "accuracy"
        pairs, level = compare_scores(table, metric=metric, kind=kind, num=num, den=den, baseline=BASE_METHOD,
                                      n_boot=n_boot, seed=seed)
        paired.append(pairs)
        levels.append(level)
        name = ("perplexity on the task's held-out texts" if evaluation == "perplexity"
                else "zero-shot accuracy")
        sentences[evaluation] = verdict_sentences(pairs, split=str(table["split"].iloc[0]),
                                                         metric_name=name, lower_is_better=kind == "perplexity")
    paired_all, levels_all = pd.concat(paired, ignore_index=True), pd.concat(levels, ignore_index=True)
    prim = paired_all[paired_all["metric"] == "perplexity"]
    fig = headline_figure(levels_all[levels_all["metric"] == "perplexity"], prim, split=split,
                                   metric_name="perplexity")
    record = {"sentences": sentences["perplexity"], "secondary_sentences": sentences["zero-shot"],
              "reading": "Numbers are GOT-D's advantage over the named method (for perplexity: the method's minus "
                         "GOT-D's, so positive = GOT-D lower; for accuracy: GOT-D's minus the method's), with the "
                         "95% interval in brackets.",
              "skipped_methods": {}, "pool_sizes": {}, "labels": {}, "seeds": sorted(seeds), "n_boot": n_boot,
              "interval": INTERVAL_NOTE, "timings": []}
    write_comparison(out, paired_all, levels_all, fig, record)
    return record
