"""The steps of notebooks 02 (pre-fine-tune) and 03 (evaluate), so the notebooks stay thin.

``02_prefinetune`` warms a causal LM up on one selection (:func:`prefinetune`) and files what the run
measured as tidy rows (:func:`training_metrics`). ``03_evaluate`` loads a task's splits
(:func:`evaluation_task`), finds the warmed-up checkpoints (:func:`resolve_checkpoint`) and scores the base
model and every warmed-up one the same way (:func:`evaluate_models`): zero-shot accuracy and macro-F1
with bootstrap intervals, perplexity on a held-out split, and optionally few-label fine-tuning and
toxicity.

Smoke mode (tests) swaps the causal LM for the tiny random model of :func:`gotd.models.build_tiny_causal_lm`
and the task for the templated film-review task of :mod:`gotd.toy`; its numbers check the plumbing only.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gotd.errors import GotdInputError
from gotd.evaluate import EVALUATIONS, EvalTask, evaluate_models, seeded_subset
from gotd.evaluate import metric_names as _metric_names  # noqa: F401  (its old name here)
from gotd.results import MEASURE_COLUMNS, RESULT_COLUMNS

logger = logging.getLogger(__name__)

__all__ = [
    "SMOKE_MODEL",
    "SMOKE_TRAINING",
    "EvalTask",
    "training_config",
    "prefinetune",
    "training_metrics",
    "selection_info",
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

SMOKE_MODEL = "tiny"
"""Registry name of the causal LM used in smoke mode (random weights, ~0.1M parameters)."""

SMOKE_TRAINING: dict[str, Any] = {"max_steps": 6, "batch_size": 4, "max_length": 32, "learning_rate": 1e-3,
                                  "warmup_ratio": 0.0, "save_steps": 3}
"""Overrides of the training preset in smoke mode: a few steps of short blocks on the tiny model."""

_SMOKE_TASK_INFO = {"labels": ("negative", "positive"), "verbalizers": {"negative": "negative", "positive": "positive"},
                    "prompt": "Review: {text}\nSentiment: {label}"}


# ----------------------------------------------------------------------------------------------
# 02: pre-fine-tuning


def training_config(preset: str, overrides: Mapping[str, Any] | None = None, *, seed: int = 0,
                    smoke: bool = False) -> Any:
    """The :class:`gotd.train.TrainConfig` of a run: ``preset`` with ``overrides`` and ``seed``.

    In smoke mode :data:`SMOKE_TRAINING` is applied first, so explicit ``overrides`` still win.
    """
    from gotd.train import preset as train_preset

    changes = {**(SMOKE_TRAINING if smoke else {}), **dict(overrides or {}), "seed": seed}
    return train_preset(preset, **changes)


def prefinetune(model: str, selection_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], config: Any, *,
                overwrite: bool = False, device: str | None = None, progress: bool = True) -> Any:
    """Train ``model`` on the texts of ``selection_path`` into ``out_dir``; reuse or resume earlier work.

    The rule of :func:`gotd.train.train` (the same as ``gotd train``):

    - ``out_dir`` holds a finished run of the same model, data (sha256 of the texts) and config: it is
      returned as is (a notebook run again does not train again);
    - ``out_dir`` holds anything else: refused with an error naming ``overwrite`` (never replaced
      silently); ``overwrite=True`` trains again and replaces it;
    - ``<out_dir>.checkpoints`` holds checkpoints of an unfinished run: training resumes from the last
      one (:func:`gotd.train.train` checks they come from the same model, data and config).

    Returns
    -------
    gotd.train.TrainResult
    """
    from transformers.trainer_utils import get_last_checkpoint

    from gotd.train import train

    out_dir = Path(out_dir)
    checkpoints = out_dir.with_name(out_dir.name + ".checkpoints")
    resume = checkpoints.is_dir() and get_last_checkpoint(os.fspath(checkpoints)) is not None
    return train(model, selection_path, out_dir, config, resume_from_checkpoint=True if resume else None,
                 overwrite=overwrite, device=device, progress=progress)


def selection_info(selection_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Method, budget, seed and task of a selection file, read from its sidecar (empty values if none)."""
    sidecar = Path(str(selection_path) + ".json")
    info: dict[str, Any] = {"method": None, "budget": None, "seed": None, "task": None}
    if sidecar.is_file():
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        params = meta.get("params", {})
        info.update(method=meta.get("method"), budget=params.get("budget", meta.get("budget")),
                    seed=meta.get("seed", params.get("seed")),
                    task=((meta.get("extra") or {}).get("inputs") or meta.get("inputs") or {}).get("task"))
    return info


def training_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    """What one pre-fine-tuning run measured, from its ``gotd_train.json``.

    Returns
    -------
    dict
        ``train_loss`` (mean training loss over the whole run, nats/token), ``first_loss`` and
        ``final_loss`` (first and last logged loss), ``steps`` (optimiser steps), ``tokens_seen``
        (block passes x block length: token positions trained on, padding of a last short block
        included), ``data_share_seen`` (block passes / blocks in the selection: below 1 when
        ``max_steps`` stopped the epoch early), ``n_tokens`` (tokens of the whole selection) and
        ``seconds`` (wall time of ``trainer.train``).
    """
    tokens = record["tokens"]
    curve = record.get("curve") or []
    out = {
        "train_loss": float(record["train_loss"]),
        "steps": float(record["steps"]),
        "tokens_seen": float(tokens["blocks_trained"] * tokens["block_size"]),
        "data_share_seen": float(tokens["blocks_trained"] / max(1, tokens["n_blocks"])),
        "n_tokens": float(tokens["n_tokens"]),
        "seconds": float(record["seconds"]),
    }
    if curve:
        out["first_loss"] = float(curve[0]["loss"])
        out["final_loss"] = float(curve[-1]["loss"])
    return out


# ----------------------------------------------------------------------------------------------
# 03: evaluation


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """A finished pre-fine-tuned folder: ``path`` itself, or its only subfolder with ``gotd_train.json``.

    ``02_prefinetune`` writes its checkpoint under ``<run_dir>/models/``, so the run folder's ``models``
    folder is accepted too.
    """
    from gotd.notebook_io import resolve_path
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
    from gotd import inputs

    if inputs.looks_like_file(target):
        raise GotdInputError(f"03_evaluate needs a built-in task with labels and splits, got the file {target!r}; "
                             "pass a built-in task name (e.g. 'rotten-tomatoes') or smoke=True")
    frame = inputs.load_task(target, split=None, data_dir=data_dir, smoke=smoke, seed=seed)
    name = inputs.task_name(target, smoke=smoke)
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
    """File an :func:`evaluate_models` table in a :class:`gotd.notebook_io.RunDir`; return the rows added.

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
    from gotd.notebook_io import resolve_path

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
