"""The ``prefinetune`` stage: warm a causal LM up on a selection, with two engines and one reuse rule.

Real LMs (SmolLM2, Gemma...) train through the ``transformers`` Trainer (:func:`prefinetune_stage`, which
``gotd train`` and notebook ``02_prefinetune`` both call): an output of the same model, data and settings
is reused, anything else is refused unless ``overwrite``, and an unfinished run's checkpoints are resumed
(:func:`resume_policy`). Tiny LMs (the testbed's) train with the plain loop (:func:`warm_up_copy`: a copy
of the base model, :func:`gotd.train.train_loop`), since the Trainer's machinery buys nothing at that size.

Smoke mode (tests) swaps the causal LM for the tiny random model of :func:`gotd.models.build_tiny_causal_lm`
(:data:`SMOKE_MODEL`, :data:`SMOKE_TRAINING`); its numbers check the plumbing only.
"""
from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gotd.selection import sidecar_path

__all__ = ["SMOKE_MODEL", "SMOKE_TRAINING", "prefinetune_stage", "resume_policy", "selection_info", "training_config",
           "training_metrics", "warm_up_copy"]

SMOKE_MODEL = "tiny"
"""Registry name of the causal LM used in smoke mode (random weights, ~0.1M parameters)."""

SMOKE_TRAINING: dict[str, Any] = {"max_steps": 6, "batch_size": 4, "max_length": 32, "learning_rate": 1e-3,
                                  "warmup_ratio": 0.0, "save_steps": 3}
"""Overrides of the training preset in smoke mode: a few steps of short blocks on the tiny model."""


def training_config(preset: str, overrides: Mapping[str, Any] | None = None, *, seed: int = 0,
                    smoke: bool = False) -> Any:
    """The :class:`gotd.train.TrainConfig` of a run: ``preset`` with ``overrides`` and ``seed``.

    In smoke mode :data:`SMOKE_TRAINING` is applied first, so explicit ``overrides`` still win.
    """
    from gotd.train import preset as train_preset

    changes = {**(SMOKE_TRAINING if smoke else {}), **dict(overrides or {}), "seed": seed}
    return train_preset(preset, **changes)


def resume_policy(out_dir: str | os.PathLike[str], resume: bool | str | os.PathLike[str] | None = None) -> Any:
    """What to resume from: ``resume`` when given (True, or a checkpoint folder), else True exactly when
    ``<out_dir>.checkpoints`` holds a checkpoint of an unfinished run (None: start afresh)."""
    from transformers.trainer_utils import get_last_checkpoint

    if resume is not None and resume is not False:
        return resume
    checkpoints = Path(out_dir).with_name(Path(out_dir).name + ".checkpoints")
    return True if checkpoints.is_dir() and get_last_checkpoint(os.fspath(checkpoints)) is not None else None


def prefinetune_stage(model: Any, selection_path: Any, out_dir: str | os.PathLike[str], config: Any, *,
                overwrite: bool = False, device: str | None = None, progress: bool = True,
                resume: bool | str | os.PathLike[str] | None = None, **train_options: Any) -> Any:
    """Train ``model`` on the texts of ``selection_path`` into ``out_dir``; reuse or resume earlier work.

    The one rule of ``gotd train`` and notebook ``02_prefinetune`` (:func:`resume_policy`, then
    :func:`gotd.train.train`):

    - ``out_dir`` holds a finished run of the same model, data (sha256 of the texts) and config: it is
      returned as is (a notebook run again does not train again);
    - ``out_dir`` holds anything else: refused with an error naming ``overwrite`` (never replaced
      silently); ``overwrite=True`` trains again and replaces it;
    - ``<out_dir>.checkpoints`` holds checkpoints of an unfinished run: training resumes from the last
      one (:func:`gotd.train.train` checks they come from the same model, data and config); ``resume``
      names a checkpoint folder explicitly.

    ``train_options`` go to :func:`gotd.train.train` (``text_field``, ``keep_checkpoints``...).

    Returns
    -------
    gotd.train.TrainResult
    """
    from gotd.train import train

    out_dir = Path(out_dir)
    return train(model, selection_path, out_dir, config, resume_from_checkpoint=resume_policy(out_dir, resume),
                 overwrite=overwrite, device=device, progress=progress, **train_options)


def selection_info(selection_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Method, budget, seed and task of a selection file, read from its sidecar (empty values if none)."""
    sidecar = sidecar_path(selection_path)
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


def warm_up_copy(base: Any, tokenizer: Any, texts: Sequence[str], recipe: Any, seed: int, *,
                 block_size: int, blocks: Any = None, optimizer_state: Any = None) -> tuple[Any, dict[str, Any]]:
    """The plain engine: a deep copy of ``base`` trained on ``texts`` with :func:`gotd.train.train_loop`.

    Texts are bos-prefixed and packed into full blocks of ``block_size`` tokens
    (:func:`gotd.train.full_blocks`); or ``blocks`` (a ``(n, block_size)`` tensor, e.g. a token budget filled
    by :func:`gotd.train.fill_token_budget`) are trained on as given. ``optimizer_state`` continues an
    earlier AdamW state (the pre-training's: a light warm-up, :func:`gotd.train.light_recipe`); it is
    copied, never changed. ``base`` is left untouched. Returns the warmed-up model (eval mode) and the
    loop's record (steps, tokens, first and final loss in nats per token, the last learning rate).
    """
    from gotd.models import encode_after_bos
    from gotd.train import full_blocks, train_loop

    model = copy.deepcopy(base)
    if blocks is None:
        blocks = full_blocks(encode_after_bos(tokenizer, list(texts)), block_size)
    state = copy.deepcopy(optimizer_state) if optimizer_state is not None else None
    stats = train_loop(model, blocks, recipe, seed, progress=False, optimizer_state=state)
    return model, stats
