"""Pre-fine-tuning: continued causal-LM training of a pre-trained model on selected text.

This is the step GOT-D selects data for: warm a model up on the selected candidates (unsupervised,
next-token prediction) before the task fine-tuning or the zero-shot evaluation. It wraps the
``transformers`` :class:`~transformers.Trainer` rather than a loop of its own: the Trainer already does
mixed precision, gradient accumulation, gradient checkpointing, schedulers, checkpoints and resuming.

Data. The texts (a selection file written by ``gotd select`` or a list of strings) are tokenised without
special tokens, each followed by a document separator (:func:`document_separator_id`), concatenated and cut into blocks
of ``max_length`` tokens (packing, as ``run_clm.py`` in ``transformers``' examples). A text longer than a
block is split across consecutive blocks; nothing is dropped: the last, shorter block is padded and its
padding is left out of the loss. With ``packing=False`` every text starts its own block (long texts
still split), which wastes compute on padding but keeps texts apart.

Output. ``train(...)`` writes a normal ``save_pretrained`` folder (model + tokenizer) plus
``gotd_train.json``: the data (selection file and its sha256, or a fingerprint of the texts), the
number of texts, tokens and blocks, every parameter, the seed, versions and device, the training curve
(step, loss, learning rate) and the wall time. The folder is assembled under a temporary name and
renamed into place only when complete. Checkpoints go to ``<out>.checkpoints/`` while training runs and
are deleted after success (``keep_checkpoints=True`` keeps them); an interrupted run resumes from the
last one with ``resume_from_checkpoint=True``.

The ``short`` preset stops after 20 steps of 8 x 128 tokens and logs which share of the data it saw.
What a step costs on a given machine is measured by ``benchmarks/bench_train.py``, not stated here.

An existing output folder is reused only when it is a complete output of the same model, data and
settings, and refused otherwise (:func:`reusable_output`; ``overwrite=True`` / ``--overwrite`` trains
again): the same rule for ``gotd train`` and the notebooks.

Two engines, one packing. Real LMs go through the Trainer (:func:`train`); tiny ones through the plain
one-screen loop (:func:`train_loop`, :class:`LoopRecipe`: AdamW, warm-up then cosine, seeded batches,
resume from a checkpoint), which :func:`pretrain_from_scratch` also uses to pre-train a tiny Llama on a pool
(cached under a key of its inputs). Both cut their blocks with :func:`pack_token_blocks`.

Layout: ``_config`` (:class:`TrainConfig`, presets, :class:`TrainResult`), ``_packing`` (texts, tokens,
blocks), ``_trainer`` (the Trainer run, checkpoints, resuming), ``_record`` (the output folder and its
record), ``_loop`` (the plain loop), ``_pretrain`` (a tiny Llama from scratch, cached).
Model loading and the document tokens live in :mod:`gotd.models`, devices in :mod:`gotd.devices`.
"""
from __future__ import annotations

from gotd.models import (
    DOCUMENT_BOUNDARY_TOKEN,
    document_prefix_ids,
    document_separator_id,
    load_causal_lm_and_tokenizer,
    resolve_model_location,
)
from gotd.train._config import PRECISIONS, PRESETS, RECORD_NAME, TrainConfig, TrainResult, preset
from gotd.train._loop import LoopRecipe, batch_order, full_blocks, light_recipe, lr_at, train_loop
from gotd.train._packing import fill_token_budget, load_training_texts, pack_token_blocks
from gotd.train._pretrain import load_optimizer_state, load_pretrained, ngram_reference_nll, pretrain_from_scratch
from gotd.train._record import read_train_record, reusable_output
from gotd.train._trainer import train

_resolve_model_location = resolve_model_location  # the old private name, kept for callers outside gotd

__all__ = [
    "TrainConfig",
    "TrainResult",
    "PRESETS",
    "PRECISIONS",
    "preset",
    "train",
    "load_training_texts",
    "pack_token_blocks",
    "LoopRecipe",
    "batch_order",
    "full_blocks",
    "fill_token_budget",
    "light_recipe",
    "ngram_reference_nll",
    "load_optimizer_state",
    "lr_at",
    "train_loop",
    "pretrain_from_scratch",
    "load_pretrained",
    "document_separator_id",
    "document_prefix_ids",
    "load_causal_lm_and_tokenizer",
    "read_train_record",
    "reusable_output",
    "RECORD_NAME",
    "DOCUMENT_BOUNDARY_TOKEN",
]
