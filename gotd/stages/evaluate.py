"""The ``evaluate`` stage: the one evaluation suite run on the base model and every warmed-up one.

Notebook ``03_evaluate`` loads a task's splits (:func:`evaluation_task`), finds the warmed-up checkpoints
(:func:`resolve_checkpoint`) and scores the base model and every warmed-up one the same way
(:func:`gotd.evaluate.evaluate_models`: zero-shot accuracy and macro-F1 with bootstrap intervals, perplexity
on a held-out split, optionally few-label fine-tuning and toxicity), then files the rows in its run folder
(:func:`add_evaluation_results`). The testbed scores its tiny models per text with :func:`score_per_text`.

Per-text scores have one schema wherever they are written (``03_evaluate``'s ``per_text_nll.parquet``,
the testbed's ``nll.parquet``): ``text_index``, ``nll_sum`` (the summed next-token NLL of the text, nats)
and ``n_tokens`` (its predicted tokens), from which the per-token mean ``nll_sum / n_tokens`` and the
token-weighted perplexity ``exp(sum nll_sum / sum n_tokens)`` follow; plus the keys of the model that
was scored (``method``, ``budget``, ``seed``, ``split``...).

Smoke mode (tests) swaps the task for the templated film-review task of :mod:`gotd.toy`; its numbers
check the plumbing only.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gotd.errors import GotdInputError
from gotd.evaluate import EVALUATIONS, EvalTask, evaluate_models, per_text_nll, seeded_subset
from gotd.paths import resolve_path
from gotd.results import MEASURE_COLUMNS, RESULT_COLUMNS


__all__ = [
    "EvalTask",
    "PER_TEXT_NLL_COLUMNS",
    "score_per_text",
    "resolve_checkpoint",
    "models_to_evaluate",
    "evaluation_task",
    "seeded_subset",
    "EVALUATIONS",
    "evaluate_models",
    "add_evaluation_results",
    "interval_figure",
    "toxicity_prompts",
    "results_table",
]

_SMOKE_TASK_INFO = {"labels": ("negative", "positive"), "verbalizers": {"negative": "negative", "positive": "positive"},
                    "prompt": "Review: {text}\nSentiment: {label}"}


PER_TEXT_NLL_COLUMNS = ("text_index", "nll_sum", "n_tokens")
"""The per-text NLL columns every per-text file has: the text's position, summed NLL (nats), tokens."""


def score_per_text(model: Any, tokenizer: Any, frames: Mapping[str, pd.DataFrame], *, block_size: int,
                   tag: Mapping[str, Any], batch_size: int = 32) -> pd.DataFrame:
    """Per-text NLL of ``model`` on every split of ``frames`` (``split -> frame with text, domain``).

    Each text is scored whole by :func:`gotd.evaluate.per_text_nll` in windows of ``block_size`` tokens;
    rows are ``tag`` (the model's keys), ``split``, :data:`PER_TEXT_NLL_COLUMNS` and ``domain``.
    """
    out = []
    for split, frame in frames.items():
        scores = per_text_nll(model, tokenizer, frame["text"].tolist(), max_length=block_size, batch_size=batch_size,
                              progress=False)
        out.append(pd.DataFrame({**tag, "split": split, "text_index": np.arange(len(frame)),
                                 "nll_sum": scores["nll_sum"].to_numpy(), "n_tokens": scores["n_tokens"].to_numpy(),
                                 "domain": frame["domain"].to_numpy()}))
    return pd.concat(out, ignore_index=True)



def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """A finished pre-fine-tuned folder: ``path`` itself, or its only subfolder with ``gotd_train.json``.

    ``02_prefinetune`` writes its checkpoint under ``<run_dir>/models/``, so the run folder's ``models``
    folder is accepted too.
    """
    from gotd.train import RECORD_NAME

    folder = resolve_path(path)
    if (folder / RECORD_NAME).is_file():
        return folder
    if not folder.is_dir():
        raise GotdInputError(f"model folder {folder} does not exist; pass the checkpoint written by 02_prefinetune "
                             "(its run folder's models/<name>)")
    found = sorted(p for p in folder.iterdir() if p.is_dir() and (p / RECORD_NAME).is_file())
    if len(found) != 1:
        raise GotdInputError(f"{folder} holds {len(found)} finished checkpoints ({[p.name for p in found]}); pass "
                             f"exactly one folder with a {RECORD_NAME}")
    return found[0]


def models_to_evaluate(base_model: str, model_dirs: Mapping[str, str | os.PathLike[str]]) -> dict[str, Any]:
    """``method -> model`` for :func:`evaluate_models`: ``base`` (unless ``base_model`` is empty) and each
    method's finished checkpoint (:func:`resolve_checkpoint`), in that order."""
    models: dict[str, Any] = {"base": base_model} if base_model else {}
    models.update({method: resolve_checkpoint(path) for method, path in model_dirs.items()})
    if not models:
        raise GotdInputError("nothing to evaluate: model_dirs is empty and base_model is ''")
    return models


def evaluation_task(target: str, *, smoke: bool = False, data_dir: str | os.PathLike[str] = "data",
                    seed: int = 0) -> EvalTask:
    """The built-in task ``target`` (fetched into ``data_dir`` if missing), or the toy task in smoke mode.

    Label set, verbalisers and prompt come from :func:`gotd.assets.task_info`; the toy task uses
    ``positive``/``negative`` in the same ``Review: ... Sentiment: ...`` prompt as Rotten Tomatoes.
    """
    from gotd.stages.inputs import load_task, looks_like_file, task_name

    if looks_like_file(target):
        raise GotdInputError(f"03_evaluate needs a built-in task with labels and splits, got the file {target!r}; "
                             "pass a built-in task name (e.g. 'rotten-tomatoes') or smoke=True")
    frame = load_task(target, split=None, data_dir=data_dir, smoke=smoke, seed=seed)
    name = task_name(target, smoke=smoke)
    if smoke:
        labels, verbalizers, prompt = (_SMOKE_TASK_INFO["labels"], dict(_SMOKE_TASK_INFO["verbalizers"]),
                                       _SMOKE_TASK_INFO["prompt"])
        label_field = "label"
    else:
        from gotd.assets import task_info

        info = task_info(target)
        labels, verbalizers, prompt, label_field = info.labels, dict(info.verbalizers), info.prompt, info.label_field
    return EvalTask.from_frame(name, frame, labels=labels, verbalizers=verbalizers, prompt=prompt,
                               label_field=label_field)


def add_evaluation_results(run: Any, table: pd.DataFrame, *, budget: int | None, model_label: str) -> int:
    """File an :func:`evaluate_models` table in a :class:`gotd.runner.rundir.RunDir`; return the rows added.

    ``model`` becomes ``model_label`` (the base model's name, so base and warmed-up rows line up in the
    run's comparison table) and the evaluated folder goes to the ``checkpoint`` column. Rows that
    aggregate over seeds (few-label fine-tuning's mean, seed ``<NA>``) keep an empty seed and
    ``seed_aggregate=True``. ``n`` and the interval bounds follow the schema columns (as in every
    evaluation table, :mod:`gotd.results`), then ``split``, ``evaluation`` and the rest.
    """
    fixed = set(RESULT_COLUMNS) | {"checkpoint"}
    order = [c for c in MEASURE_COLUMNS if c in table.columns] + [c for c in table.columns
                                                                   if c not in fixed and c not in MEASURE_COLUMNS]
    added = 0
    for record in table.to_dict(orient="records"):
        seed = record.get("seed")
        aggregate = seed is None or pd.isna(seed)
        measures = {k: (None if _missing(record[k]) else record[k]) for k in order if k in MEASURE_COLUMNS}
        extra = {k: (None if _missing(record[k]) else record[k]) for k in order if k not in MEASURE_COLUMNS}
        checkpoint = record.get("checkpoint")
        checkpoint = record["model"] if checkpoint is None or _missing(checkpoint) else checkpoint
        run.add_result(task=record["task"], method=record["method"], budget=budget,
                       seed=None if aggregate else int(seed), model=model_label, metric=record["metric"],
                       value=float(record["value"]), **measures, checkpoint=str(checkpoint),
                       seed_aggregate=aggregate, **extra)
        added += 1
    return added


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def toxicity_prompts(path: str, *, smoke: bool = False, task: EvalTask | None = None, max_prompts: int = 0,
                     seed: int = 0, smoke_chars: int = 40) -> list[str]:
    """Prompts whose continuations are scored for toxicity: the ``text`` column of ``path``.

    In smoke mode without a file: the first ``smoke_chars`` characters of the task's test texts (checks
    the plumbing; the toy reviews are not toxic). ``max_prompts`` keeps a seeded sample (0 = all).
    """
    from gotd.data import read_texts

    if path:
        frame = read_texts(resolve_path(path))
    elif smoke and task is not None:
        frame = pd.DataFrame({"text": [t[:smoke_chars] for t in task.split("test")["text"]]})
    else:
        raise GotdInputError("toxicity needs prompts: set toxicity_prompts to a file with a text column")
    return seeded_subset(frame[["text"]], max_prompts, seed)["text"].tolist()


def results_table(table: pd.DataFrame) -> pd.DataFrame:
    """Metrics x methods, each cell ``value [ci_low, ci_high]`` (one seed) or the seed mean for aggregates."""
    def cell(row: pd.Series) -> str:
        text = f"{row['value']:.4g}"
        if not (pd.isna(row["ci_low"]) or pd.isna(row["ci_high"])):
            text += f" [{row['ci_low']:.3g}, {row['ci_high']:.3g}]"
        return text

    frame = table.copy()
    frame["cell"] = frame.apply(cell, axis=1)
    frame["seed"] = frame["seed"].astype(object).where(frame["seed"].notna(), "mean")
    index = [c for c in ("evaluation", "metric", "seed", "n") if c in frame.columns]
    pivot = frame.pivot_table(index=index, columns="method", values="cell", aggfunc="first", sort=False)
    return pivot[list(dict.fromkeys(frame["method"]))]


def interval_figure(results: pd.DataFrame, metrics: Sequence[str], *, title: str = "") -> Any:
    """One panel per metric: each method's value with its bootstrap interval (``ci_low``..``ci_high``).

    ``results`` is an :func:`evaluate_models` table (single-seed rows); methods keep their order of first
    appearance, the base model first when it is there. The whiskers are intervals over examples for one
    model and seed, not a spread over training seeds.
    """
    from gotd.plots import PngFigure, colour

    rows = results[results["metric"].isin(metrics) & results["seed"].notna()]
    if rows.empty:
        raise GotdInputError(f"no rows with metric(s) {list(metrics)}; metrics present: "
                             f"{sorted(results['metric'].unique())}")
    present = [m for m in metrics if m in set(rows["metric"])]
    fig = PngFigure(figsize=(1.2 + 2.6 * len(present), 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(present)))
    methods = list(dict.fromkeys(rows["method"]))
    for ax, metric in zip(axes, present):
        sub = rows[rows["metric"] == metric].groupby("method", sort=False)[["value", "ci_low", "ci_high"]].mean()
        for i, method in enumerate(methods):
            if method not in sub.index:
                continue
            v, lo, hi = sub.loc[method]
            err = None if np.isnan(lo) else [[v - lo], [hi - v]]
            ax.errorbar(i, v, yerr=err, fmt="o", capsize=4, markersize=7, color=colour(str(method), i))
        ax.set_xticks(range(len(methods)), methods, rotation=30)
        ax.set_title(metric)
    if title:
        fig.suptitle(title)
    return fig
