"""Paired statistics for the real-LM run (``demo-smollm2``): the testbed's comparison on ``03_evaluate`` runs.

Each seed's ``03_evaluate`` run folder holds the per-text scores of the base model and of every warmed-up
model (:data:`gotd.evaluate.PER_TEXT_FILES`): per-text NLL sums and token counts of the perplexity texts and
0/1 zero-shot correctness. They are stacked over seeds and given to the testbed's statistics
(:func:`gotd.testbed._stats.paired_table`: the two-level bootstrap over seeds and texts), so the report's
first screen reads as the testbed's: per method, the paired difference to GOT-D and to the base model.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from gotd.errors import GotdInputError
from gotd.evaluate import BASE_METHOD, PER_TEXT_FILES
from gotd.testbed import _figures, _stats
from gotd.testbed._stages import INTERVAL_NOTE, write_comparison

METRICS = {"perplexity": ("perplexity", "nll_sum", "n_tokens"), "zero-shot": ("zero_shot_accuracy", "correct", None)}
"""Per evaluation: the metric name in ``paired.csv``, the per-text numerator and denominator columns."""


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


def compare_real(evaluate_dirs: Sequence[str | Path], out_dir: str | Path, *, n_boot: int = 2000,
                 seed: int = 0) -> dict[str, Any]:
    """Paired differences, levels, verdict sentences and the headline figure of ``03_evaluate`` runs.

    Writes into ``out_dir``: ``paired.csv`` (:func:`gotd.testbed.paired_table` rows with a ``metric``
    column: ``perplexity`` on the perplexity texts, ``zero_shot_accuracy``), ``levels.csv``,
    ``verdict.json`` (the keys :func:`gotd.runner.report.testbed_section` renders) and
    ``figures/headline.png``. The primary sentence is on perplexity (as the testbed's), the zero-shot
    accuracy sentence follows as a secondary one.
    """
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    paired, levels, sentences = [], [], {}
    seeds: set[int] = set()
    split = "test"
    for evaluation, (metric, num, den) in METRICS.items():
        table = read_per_text(evaluate_dirs, evaluation)
        seeds |= {int(s) for s in table["seed"]}
        split = str(table["split"].iloc[0]) if evaluation == "perplexity" else split
        kind = "perplexity" if evaluation == "perplexity" else "accuracy"
        scores = _stats.scores_of(table, metric=kind, num=num, den=den)
        pairs = _stats.paired_table(scores, baseline=BASE_METHOD, n_boot=n_boot, seed=seed).assign(metric=metric)
        paired.append(pairs)
        levels.append(_stats.summarise_levels(scores, n_boot=n_boot, seed=seed).assign(metric=metric))
        name = ("perplexity on the task's held-out texts" if evaluation == "perplexity"
                else "zero-shot accuracy")
        sentences[evaluation] = _stats.verdict_sentences(pairs, split=str(table["split"].iloc[0]),
                                                         metric_name=name, lower_is_better=kind == "perplexity")
    paired_all, levels_all = pd.concat(paired, ignore_index=True), pd.concat(levels, ignore_index=True)
    prim = paired_all[paired_all["metric"] == "perplexity"]
    fig = _figures.headline_figure(levels_all[levels_all["metric"] == "perplexity"], prim, split=split,
                                   metric_name="perplexity")
    record = {"sentences": sentences["perplexity"], "secondary_sentences": sentences["zero-shot"],
              "reading": "Numbers are GOT-D's advantage over the named method (for perplexity: the method's minus "
                         "GOT-D's, so positive = GOT-D lower; for accuracy: GOT-D's minus the method's), with the "
                         "95% interval in brackets.",
              "skipped_methods": {}, "pool_sizes": {}, "labels": {}, "seeds": sorted(seeds), "n_boot": n_boot,
              "interval": INTERVAL_NOTE, "timings": []}
    write_comparison(out, paired_all, levels_all, fig, record)
    return record
