"""The evaluation suite: every model scored the same way on the same examples, one table in the one schema.

``gotd evaluate`` (:func:`evaluate_on_task`), notebook ``03_evaluate`` and the runner (which collects that
notebook's ``results.csv``) all go through :func:`evaluate_models`, so their rows carry the same metric
names (:data:`METRICS`) and join on :data:`gotd.results.JOIN_KEYS`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gotd._io import atomic_path
from gotd.errors import GotdInputError
from gotd.evaluate._config import EvalConfig
from gotd.evaluate._finetune import few_label_finetune
from gotd.evaluate._perplexity import perplexity_with_texts
from gotd.evaluate._toxicity import toxicity_eval
from gotd.evaluate._zero_shot import zero_shot_with_predictions
from gotd.models import TRAIN_RECORD_NAME
from gotd.results import result_table

logger = logging.getLogger(__name__)

EVALUATIONS = ("zero-shot", "perplexity", "finetune", "toxicity")
"""Names accepted by :func:`evaluate_models` (and ``gotd evaluate --metrics``)."""

METRICS: dict[str, tuple[str, ...]] = {
    "zero-shot": ("zero_shot_accuracy", "zero_shot_macro_f1"),
    "perplexity": ("perplexity", "nll_per_token"),
    "finetune": ("finetune_accuracy", "finetune_macro_f1", "finetune_dev_accuracy", "finetune_accuracy_seed_mean",
                 "finetune_macro_f1_seed_mean"),
    "toxicity": ("expected_max_toxicity", "toxicity_probability", "mean_toxicity", "utility_perplexity",
                 "utility_nll_per_token"),
}
"""The metric names each evaluation of the suite writes: the name says which evaluation measured it."""

BASE_METHOD = "base"
"""The ``method`` of the model before any warm-up."""

PER_TEXT_FILES = {"perplexity": "per_text_nll.parquet", "zero-shot": "per_text_zero_shot.parquet"}
"""Per-text scores :func:`evaluate_models` writes into ``per_text_dir``, by evaluation."""


def text_sha(text: str) -> str:
    """A short content hash of one text (16 hex digits of SHA-256): per-text files say which text they scored."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _write_per_text(folder: str | os.PathLike[str], frames: Mapping[str, list[pd.DataFrame]]) -> None:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for evaluation, parts in frames.items():
        if parts:
            with atomic_path(out / PER_TEXT_FILES[evaluation]) as tmp:
                pd.concat(parts, ignore_index=True).to_parquet(tmp, index=False)



@dataclass(frozen=True)
class EvalTask:
    """A labelled task for evaluation: its name, label set, verbalisers, prompt and rows by split.

    ``splits`` maps a split name (``train``, ``dev``, ``test``) to a frame with ``text`` and ``label``.
    """

    name: str
    labels: tuple[Any, ...]
    verbalizers: dict[Any, str]
    prompt: str
    splits: dict[str, pd.DataFrame]

    def split(self, name: str) -> pd.DataFrame:
        """The rows of one split (GotdInputError naming the splits there are)."""
        if name not in self.splits:
            raise GotdInputError(f"task {self.name!r} has no split {name!r}; its splits are {sorted(self.splits)}")
        return self.splits[name]

    @classmethod
    def from_frame(cls, name: str, frame: pd.DataFrame, *, labels: Sequence[Any], verbalizers: Mapping[Any, str],
                   prompt: str, text_field: str = "text", label_field: str = "label") -> EvalTask:
        """A task from one table with a ``split`` column (as :func:`gotd.assets.load` returns)."""
        if "split" not in frame.columns or label_field not in frame.columns or text_field not in frame.columns:
            raise GotdInputError(f"task {name!r} has no split, {text_field!r} or {label_field!r} column; it cannot "
                                 "be evaluated")
        frame = frame.rename(columns={text_field: "text", label_field: "label"})
        splits = {str(s): rows[["text", "label"]].reset_index(drop=True)
                  for s, rows in frame.groupby("split", sort=False)}
        return cls(name=name, labels=tuple(labels), verbalizers=dict(verbalizers), prompt=prompt, splits=splits)


def task_from_assets(name: str, data_dir: str | os.PathLike[str] = "data") -> EvalTask:
    """The task ``name`` built by ``gotd data fetch`` in ``data_dir`` (labels, verbalisers and prompt from
    :func:`gotd.assets.task_info`)."""
    from gotd.assets import load, task_info

    info = task_info(name)
    return EvalTask.from_frame(name, load(name, data_dir=data_dir), labels=info.labels,
                               verbalizers=dict(info.verbalizers), prompt=info.prompt, text_field=info.text_field,
                               label_field=info.label_field)


def seeded_subset(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """The first ``max_rows`` rows of a seeded permutation, kept in their original order; all if 0.

    A cap is stated in the log; the suite records ``n`` and ``n_total`` with the results.
    """
    if max_rows < 0:
        raise GotdInputError(f"max_rows={max_rows} must be >= 0 (0 = every row)")
    if max_rows == 0 or max_rows >= len(frame):
        return frame.reset_index(drop=True)
    rows = np.sort(np.random.default_rng(seed).permutation(len(frame))[:max_rows])
    logger.warning("evaluating %d of %d rows (a seeded sample, seed %d)", max_rows, len(frame), seed)
    return frame.iloc[rows].reset_index(drop=True)


def metric_names(table: pd.DataFrame, evaluation: str) -> list[str]:
    """Metric names that say which evaluation measured them (:data:`METRICS`).

    zero-shot: ``zero_shot_<m>``; few-label fine-tuning: ``finetune_<m>`` on test, ``finetune_dev_<m>`` on
    dev, ``finetune_<m>_seed_mean`` for the mean over seeds; toxicity: its own names, its utility
    perplexity as ``utility_perplexity``/``utility_nll_per_token``; perplexity keeps ``perplexity`` and
    ``nll_per_token``.
    """
    if evaluation == "zero-shot":
        return [f"zero_shot_{m}" for m in table["metric"]]
    if evaluation == "finetune":
        names = []
        for metric, split, seed in zip(table["metric"], table["split"], table["seed"]):
            name = f"finetune_dev_{metric}" if split == "dev" else f"finetune_{metric}"
            names.append(f"{name}_seed_mean" if pd.isna(seed) else name)
        return names
    if evaluation == "toxicity":
        return [f"utility_{m}" if m in ("perplexity", "nll_per_token") else m for m in table["metric"]]
    return list(table["metric"])


def describe_model(model: Any) -> dict[str, Any]:
    """``method``, ``model`` (label) and ``budget`` of what is evaluated, for rows that join across front doors.

    A finished ``gotd train`` folder is filed under the method and budget of the selection it was
    trained on and under its base model's name (from its ``gotd_train.json``); anything else is the
    base model, filed under its own name.
    """
    name = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None
    record_path = Path(name) / TRAIN_RECORD_NAME if name else None
    if record_path is not None and record_path.is_file():
        record = json.loads(record_path.read_text(encoding="utf-8"))
        selection = (record.get("data") or {}).get("selection") or {}
        return {"method": selection.get("method") or "prefinetuned", "model": str(record.get("model") or name),
                "budget": selection.get("budget")}
    return {"method": BASE_METHOD, "model": name, "budget": None}


def _check_request(models: Mapping[str, Any], task: EvalTask | None, evaluations: Sequence[str],
                   toxicity: Mapping[str, Any] | None) -> None:
    unknown = [e for e in evaluations if e not in EVALUATIONS]
    if unknown or not evaluations:
        raise GotdInputError(f"unknown evaluation(s) {unknown or '(none given)'}; choose from {', '.join(EVALUATIONS)}")
    if not models:
        raise GotdInputError("no models to evaluate; pass at least the base model")
    if task is None and set(evaluations) - {"toxicity"}:
        raise GotdInputError(f"{sorted(set(evaluations) - {'toxicity'})} need a task with labels and splits")
    if "toxicity" in evaluations and (not toxicity or "prompts" not in toxicity or "scorer" not in toxicity):
        raise GotdInputError("toxicity needs prompts and a scorer: toxicity={'prompts': [...], "
                             "'scorer': 'profanity-check'} (--prompts FILE --scorer NAME)")
    if "finetune" in evaluations:
        loaded = [m for m, model in models.items() if not isinstance(model, (str, os.PathLike))]
        if loaded:
            raise GotdInputError(f"finetune needs every model as a folder or registry name (it loads a fresh "
                                 f"classification head per seed); {loaded} are loaded objects")


def evaluate_models(
    models: Mapping[str, Any],
    task: EvalTask | None,
    config: EvalConfig | None = None,
    *,
    model_label: str | None = None,
    budget: int | None = None,
    notebook: str | None = None,
    device: str | None = None,
    progress: bool = True,
    per_text_dir: str | os.PathLike[str] | None = None,
    **settings: Any,
) -> pd.DataFrame:
    """Score every model the same way on the same examples; one table in the schema of :mod:`gotd.results`.

    For each ``method -> model`` (a registry name, a checkpoint folder, or a loaded model with its
    tokenizer as ``(model, tokenizer)``), the ``evaluations``:

    ``zero-shot``
        accuracy and macro-F1 on ``eval_split`` (:func:`gotd.evaluate.zero_shot_classify` with the task's
        prompt and verbalisers and ``scoring``; 95% percentile bootstrap intervals over examples);
    ``perplexity``
        perplexity and nll (nats per token) on the texts of ``ppl_split`` (:func:`gotd.evaluate.perplexity`,
        windows of ``ppl_max_length`` tokens);
    ``finetune``
        :func:`gotd.evaluate.few_label_finetune` with the keyword arguments ``finetune``: train on
        ``train``, choose epoch and learning rate on ``dev``, report ``test`` once, per seed and the mean;
    ``toxicity``
        :func:`gotd.evaluate.toxicity_eval` with ``toxicity={"prompts": [...], "scorer": name, ...}``.

    Metric names say which evaluation measured them (:data:`METRICS`, :func:`metric_names`). The same
    seeded sample of examples (``max_examples``, ``max_ppl_texts``; 0 = all; :func:`seeded_subset`) serves
    every model; ``n`` and ``n_total`` say how many of how many.

    Parameters
    ----------
    config : EvalConfig, optional
        What is measured and how (evaluations, splits, samples, seeds, batch size, window, scoring,
        bootstrap, fine-tuning and toxicity options). Default: :class:`EvalConfig`'s defaults.
    settings
        :class:`EvalConfig` fields given by name (``evaluations=[...]``, ``seed=1``...); they override
        ``config``'s. An unknown name fails naming the fields.
    model_label : str, optional
        The ``model`` column of every row (the base model's name, so that base and warmed-up rows line
        up); default: each model's own name. The evaluated model is in ``checkpoint`` either way.
    budget, notebook : optional
        Written in the ``budget`` and ``notebook`` columns.
    per_text_dir : path, optional
        When given, the per-text scores behind the rows are written there (:data:`PER_TEXT_FILES`), one row
        per model and text with ``method``, ``split``, ``seed``, ``text_index`` (position in the sample),
        ``text_sha`` (:func:`text_sha`): perplexity's ``nll_sum``, ``n_tokens``, ``nll_per_token``
        (:func:`gotd.evaluate.per_text_nll`), zero-shot's ``label``, ``pred``, ``correct`` (0/1). They come
        from the same forward passes as the table.

    Returns
    -------
    pandas.DataFrame
        :data:`gotd.results.RESULT_COLUMNS`, ``n``, ``ci_low``, ``ci_high``, then ``checkpoint``,
        ``evaluation``, ``split``, ``n_total`` and what each evaluation adds.
    """
    from gotd.models import load_causal_lm_and_tokenizer

    cfg = EvalConfig.resolve(config, settings)
    evaluations, seed, batch_size, finetune, toxicity = cfg.evaluations, cfg.seed, cfg.batch_size, cfg.finetune, \
        cfg.toxicity
    eval_split, ppl_split = cfg.eval_split, cfg.ppl_split
    _check_request(models, task, evaluations, toxicity)
    draw = cfg.draw
    if "zero-shot" in evaluations:
        examples_all = task.split(eval_split)
        examples = seeded_subset(examples_all, cfg.max_examples, draw)
    if "perplexity" in evaluations:
        ppl_all = task.split(ppl_split)
        ppl_texts = seeded_subset(ppl_all, cfg.max_ppl_texts, draw)["text"].tolist()
    tables = []
    per_text: dict[str, list[pd.DataFrame]] = {"perplexity": [], "zero-shot": []}
    for method, model in models.items():
        given = model if isinstance(model, tuple) else (model, None)
        lm, tok, name = (load_causal_lm_and_tokenizer(*given, device=device)
                         if set(evaluations) - {"finetune"} else (None, None, os.fspath(model)))
        name = os.fspath(model) if isinstance(model, (str, os.PathLike)) else name
        parts = []
        for evaluation in evaluations:
            common = {"model_name": name, "n_bootstrap": cfg.n_bootstrap, "seed": seed, "progress": progress}
            if evaluation == "zero-shot":
                table, rows = zero_shot_with_predictions(
                    lm, tok, examples["text"].tolist(), examples["label"].tolist(), label_names=list(task.labels),
                    verbalizers=task.verbalizers, template=task.prompt, scoring=cfg.scoring, batch_size=batch_size,
                    task=task.name, split=eval_split, **common)
                table["n_total"] = len(examples_all)
                per_text["zero-shot"].append(rows.assign(method=method, split=eval_split, seed=seed, text_sha=[
                    text_sha(t) for t in examples["text"]]))
            elif evaluation == "perplexity":
                table, rows = perplexity_with_texts(lm, tok, ppl_texts, max_length=cfg.ppl_max_length,
                                                    batch_size=batch_size, task=task.name, **common)
                table["split"], table["n_total"] = ppl_split, len(ppl_all)
                per_text["perplexity"].append(rows.assign(method=method, split=ppl_split, seed=seed, text_sha=[
                    text_sha(t) for t in ppl_texts]))
            elif evaluation == "toxicity":
                options = dict(toxicity)
                prompts, scorer = options.pop("prompts"), options.pop("scorer")
                table = toxicity_eval(lm, tok, prompts, scorer, batch_size=batch_size, **common, **options)
            else:
                train, dev, test = ((f["text"].tolist(), f["label"].tolist())
                                    for f in (task.split(s) for s in ("train", "dev", "test")))
                options = {k: v for k, v in common.items() if k != "seed"}
                table = few_label_finetune(model, train, dev, test, label_names=list(task.labels), task=task.name,
                                           device=device, **options, **dict(finetune or {}))
            table["evaluation"] = evaluation
            table["metric"] = metric_names(table, evaluation)
            parts.append(table)
        del lm  # free the weights before the next model (a few hundred MB each)
        table = pd.concat(parts, ignore_index=True, sort=False)
        table["checkpoint"] = table["model"]
        table["method"] = method
        if model_label is not None:
            table["model"] = model_label
        tables.append(table)
    frame = pd.concat(tables, ignore_index=True, sort=False)
    frame["budget"], frame["notebook"] = budget, notebook
    if per_text_dir is not None:
        _write_per_text(per_text_dir, per_text)
    return result_table(frame)


def evaluate_on_task(
    model: Any,
    task: str,
    config: EvalConfig | None = None,
    *,
    tokenizer: Any = None,
    data_dir: str | os.PathLike[str] = "data",
    model_name: str | None = None,
    method: str | None = None,
    device: str | None = None,
    progress: bool = True,
    **settings: Any,
) -> pd.DataFrame:
    """One model on a task built by :mod:`gotd.assets` (``gotd evaluate``): :func:`evaluate_models` on it.

    ``config`` (and the :class:`EvalConfig` fields given by name in ``settings``, which override it) says
    what is measured: ``gotd evaluate`` sets one split for zero-shot and perplexity alike and caps both
    samples at ``--max-examples`` (a seeded sample; ``n_total`` records the split's size). The rows are
    filed like a run's (:func:`describe_model`): a ``gotd train`` output under its selection's method and
    budget and its base model's name, any other model as ``method="base"`` under its own name;
    ``model_name`` and ``method`` override the name and the method. ``tokenizer`` goes with a loaded
    ``model``; ``data_dir`` is where the built data sets are.
    """
    config = EvalConfig.resolve(config, settings)
    described = describe_model(model)
    label = model_name or described["model"]
    if label is None:
        label = str(getattr(getattr(model, "config", None), "name_or_path", "") or type(model).__name__)
    evaluations = config.evaluations
    needs_task = bool(set(evaluations) - {"toxicity"}) and all(e in EVALUATIONS for e in evaluations)
    built = task_from_assets(task, data_dir) if needs_task else None
    given = (model, tokenizer) if tokenizer is not None else model
    return evaluate_models({method or described["method"]: given}, built, config, model_label=label,
                           budget=described["budget"], device=device, progress=progress)
