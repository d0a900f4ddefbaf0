"""Few-label fine-tuning: a classification head on the (pre-fine-tuned) LM, chosen on dev, tested once."""
from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gotd._params import ParameterObject
from gotd.errors import GotdInputError
from gotd.evaluate._common import _bos, _check_texts, _table
from gotd.evaluate._stats import classification_metrics
from gotd.evaluate._zero_shot import _label_indices, _label_setup
from gotd.tokenwindow import head_tokens

logger = logging.getLogger(__name__)


def _split(pair: Any, name: str) -> tuple[Sequence[str], Sequence[Any]]:
    """``pair`` as ``(texts, labels)``, or one line saying what a split must be."""
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise GotdInputError(f"{name} must be a (texts, labels) pair, got {type(pair).__name__}")
    return pair[0], pair[1]


@dataclass(frozen=True)
class FinetuneConfig(ParameterObject):
    """How :func:`few_label_finetune` trains, chooses on dev and summarises.

    Attributes
    ----------
    max_train_labels : int
        Cap on training examples per seed (a uniform draw with that seed; the paper capped at 5k).
    seeds : sequence of int
        One run per seed (head initialisation, data order, the training draw).
    learning_rates : sequence of float
        Grid searched on dev accuracy.
    epochs : int
        Passes over the training examples; the epoch with the best dev accuracy is kept.
    batch_size : int
        Examples per step (training and evaluation).
    max_length : int
        Token limit per text. A longer text raises GotdInputError unless ``truncate=True``, which cuts
        texts to ``max_length`` tokens and records how many were cut (``n_truncated``).
    truncate : bool
        Cut texts longer than ``max_length`` instead of failing.
    weight_decay : float
        AdamW's decoupled weight decay (per step, times the learning rate).
    warmup_ratio : float
        Share of the training steps over which the learning rate rises linearly from 0 (then linear decay).
    n_bootstrap : int
        Percentile-bootstrap resamples of the test examples for the intervals (0: none).
    confidence : float
        Coverage of the intervals (0.95: 95%).
    """

    max_train_labels: int = 5000
    seeds: Sequence[int] = (0, 1, 2)
    learning_rates: Sequence[float] = (2e-5,)
    epochs: int = 3
    batch_size: int = 16
    max_length: int = 128
    truncate: bool = False
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    n_bootstrap: int = 1000
    confidence: float = 0.95


Split = tuple[Sequence[str], Sequence[Any]]
"""One labelled split: ``(texts, labels)``."""


def few_label_finetune(
    model: str | os.PathLike[str],
    train: Split,
    dev: Split,
    test: Split,
    config: FinetuneConfig | None = None,
    *,
    label_names: Sequence[Any] | None = None,
    model_name: str | None = None,
    task: str = "task",
    device: str | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    **settings: Any,
) -> pd.DataFrame:
    """Fine-tune a classification head on a (pre-fine-tuned) causal LM with few labels; report test once.

    For every seed: draw at most ``max_train_labels`` training examples (uniformly, with that seed; the
    paper capped at 5k), put a fresh linear head on the LM (``AutoModelForSequenceClassification``: the
    last non-padding token's hidden state -> logits), fine-tune all weights with the Trainer for each
    learning rate in ``learning_rates``, evaluating dev accuracy after every epoch, and keep the epoch
    and learning rate with the best dev accuracy. Only that model is evaluated on the test split, once.

    Parameters
    ----------
    model : str or path
        A causal-LM folder (e.g. the output of :func:`gotd.train.train`), registry name or hub id.
    train, dev, test : (texts, labels)
        The three splits; labels must be in ``label_names``.
    config : FinetuneConfig, optional
        The recipe: label cap, seeds, learning rates, epochs, batch size, token limit, bootstrap
        (default: :class:`FinetuneConfig`'s).
    label_names : sequence, optional
        The label set (default: sorted distinct training labels; at least two).
    model_name, task : optional
        Written in the ``model`` and ``task`` columns.
    work_dir : path, optional
        Scratch folder for the per-epoch checkpoints (default: a temporary folder, deleted after).
    settings
        :class:`FinetuneConfig` fields by name (``seeds=(0, 1)``, ``epochs=2``); they override ``config``'s.

    Returns
    -------
    pandas.DataFrame
        Per seed: ``accuracy`` and ``macro_f1`` on ``split="test"`` (bootstrap interval over test
        examples) and the selected ``accuracy`` on ``split="dev"``; ``learning_rate`` and ``epoch`` say
        what dev selected. Then one row per test metric with ``seed`` <NA>: the mean over seeds, with
        ``std`` (sample standard deviation across seeds) and ``n_seeds``.
    """
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                              Trainer, TrainingArguments, set_seed)
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from gotd.devices import resolve_device
    from gotd.models import resolve_model_location

    cfg = FinetuneConfig.resolve(config, settings)
    splits = {"train": _split(train, "train"), "dev": _split(dev, "dev"), "test": _split(test, "test")}
    (train_texts, train_labels), (dev_texts, _), (test_texts, _) = splits.values()
    for split, (x, y) in splits.items():
        _check_texts(x, f"{split} texts")
        if len(x) != len(y):
            raise GotdInputError(f"{split}: {len(x)} texts but {len(y)} labels; give one label per text")
    label_names, _ = _label_setup(train_labels, label_names, None)
    y = {split: _label_indices(lab, label_names, f"{split} labels") for split, (_, lab) in splits.items()}
    if len(np.unique(y["train"])) < 2:
        raise GotdInputError("the training labels hold a single class; few-label fine-tuning needs examples of at "
                             "least two classes")
    if cfg.max_train_labels < 1 or not cfg.seeds or not cfg.learning_rates:
        raise GotdInputError("max_train_labels must be >= 1 and seeds and learning_rates non-empty")

    location = resolve_model_location(model)
    tokenizer = AutoTokenizer.from_pretrained(location)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    encoded: dict[str, list[list[int]]] = {}
    n_truncated: dict[str, int] = {}
    bos = _bos(tokenizer)
    for split, (x, _) in splits.items():
        # only a window of each text is tokenised: memory for the max_length tokens kept, not the whole text
        _, features, longer = head_tokens(tokenizer, x, cfg.max_length - len(bos), add_special_tokens=False)
        ids = [bos + list(f["input_ids"]) for f in features]
        long = [i for i, flag in enumerate(longer) if flag]
        if long and not cfg.truncate:
            raise GotdInputError(
                f"{len(long)} of {len(ids)} {split} texts are longer than max_length={cfg.max_length} tokens (e.g. "
                f"text {long[0]}: more than {cfg.max_length}); raise max_length or pass truncate=True (--truncate) to "
                "cut them (the number cut is recorded)")
        n_truncated[split] = len(long)
        encoded[split] = [t[:cfg.max_length] for t in ids]
        if long:
            logger.warning("%s: %d of %d texts cut to max_length=%d tokens", split, len(long), len(ids), cfg.max_length)

    def dataset(split: str, rows: np.ndarray) -> list[dict[str, Any]]:
        return [{"input_ids": encoded[split][i], "attention_mask": [1] * len(encoded[split][i]),
                 "labels": int(y[split][i])} for i in rows]

    def accuracy(pred: Any) -> dict[str, float]:
        return {"accuracy": float(np.mean(np.argmax(pred.predictions, axis=-1) == pred.label_ids))}

    name = model_name or os.fspath(model)
    use_cpu = resolve_device(device).type == "cpu"
    scratch = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="gotd-finetune-"))
    rows: list[dict[str, Any]] = []
    n_train_total = len(train_texts)
    try:
        for seed in cfg.seeds:
            rng = np.random.default_rng(seed)
            if n_train_total > cfg.max_train_labels:
                train_rows = np.sort(rng.choice(n_train_total, size=cfg.max_train_labels, replace=False))
                logger.warning("seed %d: training on %d of %d labelled examples (max_train_labels)", seed,
                               cfg.max_train_labels, n_train_total)
            else:
                train_rows = np.arange(n_train_total)
            best: dict[str, Any] | None = None
            for lr in cfg.learning_rates:
                set_seed(seed)
                clf = AutoModelForSequenceClassification.from_pretrained(
                    location, num_labels=len(label_names), id2label={i: str(x) for i, x in enumerate(label_names)},
                    label2id={str(x): i for i, x in enumerate(label_names)})
                clf.config.pad_token_id = tokenizer.pad_token_id
                run_dir = scratch / f"seed{seed}-lr{lr:g}"
                warmup_steps = math.ceil(cfg.warmup_ratio * cfg.epochs * math.ceil(len(train_rows) / cfg.batch_size))
                args = TrainingArguments(
                    output_dir=os.fspath(run_dir), num_train_epochs=cfg.epochs, learning_rate=lr,
                    per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
                    weight_decay=cfg.weight_decay, warmup_steps=warmup_steps, seed=seed, data_seed=seed,
                    eval_strategy="epoch", save_strategy="epoch", save_only_model=True, save_total_limit=1,
                    load_best_model_at_end=True, metric_for_best_model="accuracy", greater_is_better=True,
                    logging_strategy="epoch", report_to="none", use_cpu=use_cpu, disable_tqdm=not progress,
                    remove_unused_columns=False, optim="adamw_torch")
                trainer = Trainer(model=clf, args=args, train_dataset=dataset("train", train_rows),
                                  eval_dataset=dataset("dev", np.arange(len(dev_texts))),
                                  data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=accuracy)
                if not progress:
                    trainer.remove_callback(ProgressCallback)
                trainer.remove_callback(PrinterCallback)
                trainer.train()
                evals = [e for e in trainer.state.log_history if "eval_accuracy" in e]
                top = max(evals, key=lambda e: e["eval_accuracy"])  # first best epoch, as the Trainer keeps
                candidate = {"dev_accuracy": float(top["eval_accuracy"]), "epoch": float(top["epoch"]), "lr": lr,
                             "trainer": trainer}
                if best is None or candidate["dev_accuracy"] > best["dev_accuracy"]:
                    best = candidate
                else:
                    del trainer, clf
                shutil.rmtree(run_dir, ignore_errors=True)
            assert best is not None
            # The one look at the test split for this seed.
            prediction = best["trainer"].predict(dataset("test", np.arange(len(test_texts))))
            y_pred = np.argmax(prediction.predictions, axis=-1)
            common = {"model": name, "task": task, "learning_rate": best["lr"], "epoch": best["epoch"],
                      "n_train": len(train_rows), "n_classes": len(label_names), "n_truncated": sum(n_truncated.values())}
            for row in classification_metrics(y["test"], y_pred, len(label_names), n_bootstrap=cfg.n_bootstrap,
                                              confidence=cfg.confidence, seed=seed):
                rows.append({**row, **common, "split": "test"})
            rows.append({**common, "metric": "accuracy", "value": best["dev_accuracy"], "seed": seed,
                         "n": len(dev_texts), "split": "dev"})
            best = None
    finally:
        if work_dir is None:
            shutil.rmtree(scratch, ignore_errors=True)
    table = _table(rows)
    return pd.concat([table, _seed_summary(table[table["split"] == "test"])], ignore_index=True)


def _seed_summary(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample standard deviation across seeds of each (model, task, split, metric)."""
    rows = []
    for (model, task, split, metric), group in per_seed.groupby(["model", "task", "split", "metric"], sort=False):
        values = group["value"].to_numpy(dtype=np.float64)
        rows.append({"model": model, "task": task, "split": split, "metric": metric, "value": float(values.mean()),
                     "seed": pd.NA, "n": int(group["n"].iloc[0]),
                     "std": float(values.std(ddof=1)) if values.size > 1 else float("nan"),
                     "n_seeds": int(values.size), "n_train": int(group["n_train"].iloc[0]),
                     "n_classes": int(group["n_classes"].iloc[0])})
    return _table(rows)
