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

Cost on a 2-core CPU: one optimiser step of SmolLM2-135M at batch 8 x 128 tokens in fp32 takes about
9-11 s on an idle machine (the asset survey; ``benchmarks/bench_train.py`` saw 6 s at best and medians
of 20-55 s per step while other jobs shared the two cores), so 100 steps (~100k tokens) is a quarter of
an hour. The ``demo`` preset stops after 20 such steps (about 3 minutes idle) and logs which share of
the data it saw.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from gotd._io import file_sha256, provenance, replace_dir, write_json_atomic
from gotd.errors import GotdError, GotdInputError

logger = logging.getLogger(__name__)

__all__ = [
    "TrainConfig",
    "TrainResult",
    "PRESETS",
    "preset",
    "train",
    "load_training_texts",
    "pack_token_blocks",
    "document_separator_id",
    "document_prefix_ids",
    "load_causal_lm_and_tokenizer",
    "read_train_record",
    "RECORD_NAME",
]

RECORD_NAME = "gotd_train.json"
"""File name of the training record inside the output folder."""

_RUN_FILE = "gotd_run.json"  # in the checkpoint folder: what the checkpoints were trained with
_FORMAT_VERSION = 1
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one pre-fine-tuning run (plain values, nanoGPT style).

    Attributes
    ----------
    epochs : float
        Passes over the packed blocks (fractions allowed).
    max_steps : int, optional
        Stop after this many optimiser steps even if the epochs are not done (a compute budget); the
        record states which share of the blocks was seen. None: run all epochs.
    learning_rate : float
        Peak learning rate of AdamW.
    lr_scheduler : str
        A ``transformers`` scheduler name: ``linear`` (decay to 0), ``cosine``, ``constant``...
    warmup_ratio : float
        Share of the optimiser steps spent warming the learning rate up linearly from 0.
    batch_size : int
        Blocks per forward pass (per device).
    grad_accum : int
        Forward passes per optimiser step; the effective batch is ``batch_size * grad_accum`` blocks.
    max_length : int
        Block length in tokens.
    packing : bool
        Concatenate texts into full blocks (True) or start every text in a new block (False).
    weight_decay : float
        Decoupled weight decay of AdamW (not applied to biases and norms, as the Trainer does).
    adam_beta1, adam_beta2, adam_epsilon : float
        AdamW moment decay rates and epsilon.
    max_grad_norm : float
        Gradient clipping by global norm (0 disables).
    seed : int
        Seed of the data order, dropout and any new weights (LoRA).
    precision : {"auto", "fp32", "bf16", "fp16"}
        ``auto``: bf16 mixed precision on a GPU that has it, fp16 on an older GPU, fp32 on CPU (bf16
        autocast on CPU is allowed when asked for explicitly; measure it first).
    gradient_checkpointing : bool
        Recompute activations in the backward pass: less memory, about a third more time.
    lora : bool
        Train low-rank adapters (``peft``) instead of all weights.
    lora_r, lora_alpha, lora_dropout : int, int, float
        Adapter rank, scaling numerator (the update is scaled by ``alpha / r``) and dropout.
    lora_target_modules : tuple of str, optional
        Module names to adapt; None lets ``peft`` pick its default for the architecture (query and value
        projections for Llama).
    merge_lora : bool
        Merge the adapters into the weights before saving, so the output is a plain checkpoint.
    save_steps : int
        Write a resumable checkpoint every this many optimiser steps (and at the end).
    save_total_limit : int
        Checkpoints kept at once (older ones are deleted).
    logging_steps : int
        Record the loss every this many optimiser steps (the training curve's resolution).
    """

    epochs: float = 1.0
    max_steps: int | None = None
    learning_rate: float = 1e-5
    lr_scheduler: str = "linear"
    warmup_ratio: float = 0.0
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 128
    packing: bool = True
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    seed: int = 0
    precision: str = "auto"
    gradient_checkpointing: bool = False
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] | None = None
    merge_lora: bool = True
    save_steps: int = 50
    save_total_limit: int = 2
    logging_steps: int = 1

    def __post_init__(self) -> None:
        def positive(name: str, value: float, allow_zero: bool = False) -> None:
            ok = value >= 0 if allow_zero else value > 0
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok or not math.isfinite(value):
                raise GotdInputError(f"TrainConfig: {name}={value!r} must be a {'non-negative' if allow_zero else 'positive'} "
                                     "finite number")

        for name in ("epochs", "learning_rate", "adam_epsilon"):
            positive(name, getattr(self, name))
        for name in ("batch_size", "grad_accum", "max_length", "lora_r", "lora_alpha", "save_steps",
                     "save_total_limit", "logging_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GotdInputError(f"TrainConfig: {name}={value!r} must be a positive integer")
        if self.max_length < 2:
            raise GotdInputError("TrainConfig: max_length must be >= 2 tokens (a block needs an input and a target)")
        if self.max_steps is not None and (isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int)
                                           or self.max_steps < 1):
            raise GotdInputError(f"TrainConfig: max_steps={self.max_steps!r} must be a positive integer or None")
        for name in ("weight_decay", "max_grad_norm"):
            positive(name, getattr(self, name), allow_zero=True)
        if not 0 <= self.warmup_ratio < 1:
            raise GotdInputError(f"TrainConfig: warmup_ratio={self.warmup_ratio!r} must be in [0, 1)")
        for name in ("adam_beta1", "adam_beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise GotdInputError(f"TrainConfig: {name}={getattr(self, name)!r} must be in [0, 1)")
        if not 0 <= self.lora_dropout < 1:
            raise GotdInputError(f"TrainConfig: lora_dropout={self.lora_dropout!r} must be in [0, 1)")
        if self.precision not in PRECISIONS:
            raise GotdInputError(f"TrainConfig: precision={self.precision!r} is not one of {PRECISIONS}")
        if self.lora_target_modules is not None:
            object.__setattr__(self, "lora_target_modules", tuple(self.lora_target_modules))

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again); unknown names raise GotdInputError."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise GotdInputError(f"TrainConfig has no field(s) {unknown}; fields: "
                                 f"{', '.join(f.name for f in dataclasses.fields(self))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON-native values."""
        out = dataclasses.asdict(self)
        if out["lora_target_modules"] is not None:
            out["lora_target_modules"] = list(out["lora_target_modules"])
        return out


PRESETS: dict[str, TrainConfig] = {
    # The paper's detoxification recipe (Kang et al. 2024, section 4.1): 3 epochs, lr 2e-5, AdamW with
    # betas (0.9, 0.95) and weight decay 0.1.
    "detox": TrainConfig(epochs=3.0, learning_rate=2e-5, adam_beta1=0.9, adam_beta2=0.95, weight_decay=0.1),
    # The paper's warm-up before zero-shot evaluation: 1 epoch at lr 1e-5.
    "zero-shot": TrainConfig(epochs=1.0, learning_rate=1e-5),
    # Sized for a 2-core CPU: 20 steps of 8 x 128 tokens of SmolLM2-135M (~9 s each in fp32, about
    # 3 minutes). With so few steps the paper's 1e-5 barely moves the weights, so the demo uses 5e-5
    # with a short warm-up; it is a smoke run of the pipeline, not the paper's recipe.
    "demo": TrainConfig(epochs=1.0, max_steps=20, learning_rate=5e-5, warmup_ratio=0.1, batch_size=8,
                        max_length=128, save_steps=10),
}
"""Named recipes; :func:`preset` returns one with overrides."""


def preset(name: str, **overrides: Any) -> TrainConfig:
    """Return the named preset (``detox``, ``zero-shot``, ``demo``) with some fields overridden."""
    if name not in PRESETS:
        raise GotdInputError(f"unknown training preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name].replace(**overrides)


@dataclass
class TrainResult:
    """What :func:`train` produced.

    Attributes
    ----------
    output_dir : Path
        The finished ``save_pretrained`` folder (model, tokenizer, ``gotd_train.json``).
    record : dict
        The contents of ``gotd_train.json``.
    """

    output_dir: Path
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def curve(self) -> pd.DataFrame:
        """The training curve: one row per logged step with ``step``, ``epoch``, ``loss``, ``learning_rate``."""
        return pd.DataFrame(self.record.get("curve", []))

    @property
    def final_loss(self) -> float:
        """Mean training loss over the last logged interval."""
        curve = self.record.get("curve", [])
        if not curve:
            raise GotdError(f"{self.output_dir}: the training record has no loss curve")
        return float(curve[-1]["loss"])


# ----------------------------------------------------------------------------------------------
# Data


def load_training_texts(source: Any, *, text_field: str = "text") -> tuple[list[str], dict[str, Any]]:
    """Read the texts to pre-fine-tune on and describe where they came from.

    Parameters
    ----------
    source : path or sequence of str
        A selection file written by ``gotd select`` (its sidecar ``<file>.json`` is read too), any file
        :func:`gotd.data.read_texts` reads, or the texts themselves.
    text_field : str
        Text column of a file.

    Returns
    -------
    texts : list of str
    data : dict
        ``source`` (path or ``"texts"``), ``sha256`` of the file's bytes (None for in-memory texts),
        ``texts_sha256`` (fingerprint of the texts in order), ``n_texts`` and, for selection files, the
        selection ``method``, ``budget`` and ``seed``.

    Raises
    ------
    GotdInputError
        No texts, an empty or non-string text.
    """
    from gotd.data import read_texts, texts_fingerprint

    data: dict[str, Any] = {"source": "texts", "sha256": None}
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise GotdInputError(f"training data {path} does not exist; pass a selection file written by "
                                 "`gotd select` (or any .jsonl/.parquet/.csv/.txt file of texts)")
        sidecar = Path(str(path) + ".json")
        if path.is_file() and sidecar.is_file():
            from gotd.selection import load_selection

            frame, meta = load_selection(path)
            if text_field not in frame.columns:
                raise GotdInputError(f"selection {path} has no '{text_field}' column; it was saved without the "
                                     "pool records; write it with gotd.pipeline.write_selection or `gotd select`")
            frame = read_texts(frame[[text_field]].rename(columns={text_field: "text"}))
            data["selection"] = {k: meta.get(k) for k in ("method", "seed", "budget")}
        else:
            frame = read_texts(path, text_field=text_field)
        data["source"] = os.fspath(path)
        data["sha256"] = file_sha256(path) if path.is_file() else None
    else:
        if isinstance(source, str) or not isinstance(source, Sequence):
            raise GotdInputError("training texts must be a file path or a list of strings")
        if len(source) == 0:
            raise GotdInputError("no training texts: the selection is empty; select at least one text")
        frame = read_texts(list(source))
    texts = frame["text"].tolist()
    data["texts_sha256"] = texts_fingerprint(texts)
    data["n_texts"] = len(texts)
    return texts, data


def pack_token_blocks(token_ids: Sequence[Sequence[int]], block_size: int, *, separator_id: int | None,
                      packing: bool = True) -> tuple[list[list[int]], dict[str, int]]:
    """Cut tokenised texts into training blocks of at most ``block_size`` tokens, dropping nothing.

    Parameters
    ----------
    token_ids : sequence of sequence of int
        One token list per text (no special tokens).
    block_size : int
        Tokens per block.
    separator_id : int, optional
        Appended after every text (:func:`document_separator_id`) so the model sees where texts end.
    packing : bool
        True: concatenate all texts and cut the stream every ``block_size`` tokens; only the final
        block may be shorter. False: every text starts a new block; a text longer than a block
        continues in the next one.

    Returns
    -------
    blocks : list of list of int
    stats : dict
        ``n_tokens`` (separators included), ``n_blocks``, ``n_texts_split`` (texts longer than one block,
        which are split across blocks) and ``last_block_tokens``.
    """
    if block_size < 2:
        raise GotdInputError(f"block_size={block_size} must be >= 2 tokens")
    sep = [] if separator_id is None else [int(separator_id)]
    pieces = [list(map(int, ids)) + sep for ids in token_ids]
    n_split = sum(len(p) > block_size for p in pieces)
    if packing:
        stream = [t for p in pieces for t in p]
        blocks = [stream[i:i + block_size] for i in range(0, len(stream), block_size)]
    else:
        blocks = [p[i:i + block_size] for p in pieces for i in range(0, len(p), block_size)]
    blocks = [b for b in blocks if b]
    stats = {"n_tokens": sum(len(p) for p in pieces), "n_blocks": len(blocks), "n_texts_split": n_split,
             "last_block_tokens": len(blocks[-1]) if blocks else 0}
    return blocks, stats


DOCUMENT_BOUNDARY_TOKEN = "<|endoftext|>"
"""The document separator of GPT-2-style vocabularies (GPT-2, SmolLM, Qwen...)."""


def document_separator_id(tokenizer: Any) -> int | None:
    """The token that ends a text when texts are packed: ``<|endoftext|>`` when the vocabulary has it, else eos.

    Chat-tuned checkpoints often redefine eos as an end-of-turn token (SmolLM2-Instruct: ``<|im_end|>``),
    while their pre-training separated documents with ``<|endoftext|>``; packing with the latter keeps the
    warm-up text looking like pre-training text.
    """
    token_id = tokenizer.convert_tokens_to_ids(DOCUMENT_BOUNDARY_TOKEN) if DOCUMENT_BOUNDARY_TOKEN in tokenizer.get_vocab() else None
    if token_id is not None:
        return int(token_id)
    return None if tokenizer.eos_token_id is None else int(tokenizer.eos_token_id)


def document_prefix_ids(tokenizer: Any) -> list[int]:
    """The token put before a text that is scored from its first token (evaluation).

    ``<|endoftext|>`` when the vocabulary has it (the previous document ended), else bos, else eos (as
    lm-evaluation-harness's prefix token), else nothing. Measured on SmolLM2-135M-Instruct: plain English
    sentences score perplexity 13.6 after ``<|endoftext|>`` and 70.3 after its bos ``<|im_start|>``.
    """
    if DOCUMENT_BOUNDARY_TOKEN in tokenizer.get_vocab():
        return [int(tokenizer.convert_tokens_to_ids(DOCUMENT_BOUNDARY_TOKEN))]
    for candidate in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return [int(candidate)]
    return []


class _BlockDataset:
    """Map-style dataset of token blocks (what the Trainer's dataloader indexes)."""

    def __init__(self, blocks: list[list[int]]) -> None:
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return {"input_ids": self.blocks[i]}


class _PadCollator:
    """Right-pad a batch of blocks; padding gets attention 0 and label -100 (out of the loss).

    Written out rather than ``DataCollatorForLanguageModeling`` because that collator masks every
    token equal to the pad id, which drops the end-of-text separators when pad == eos.
    """

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for row, f in enumerate(features):
            n = len(f["input_ids"])
            ids[row, :n] = torch.tensor(f["input_ids"], dtype=torch.long)
            mask[row, :n] = 1
        labels = ids.masked_fill(mask == 0, -100)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


# ----------------------------------------------------------------------------------------------
# Models


def load_causal_lm_and_tokenizer(model: Any, tokenizer: Any = None, *, device: str | None = None,
                                 dtype: Any = None) -> tuple[Any, Any, str]:
    """Return ``(model, tokenizer, name)`` for a registry name, a folder, a hub id or loaded objects.

    Names and folders are loaded by :func:`gotd.models.load_causal_lm` (registry models are fetched and
    converted on first use; ``device``/``dtype`` default to the GPU with bf16 when there is one, else the
    CPU in fp32). A loaded model is returned as it is and needs its tokenizer passed as well.
    """
    if not isinstance(model, (str, os.PathLike)):
        if tokenizer is None:
            raise GotdInputError("pass the tokenizer together with a loaded model (tokenizer=...)")
        name = getattr(getattr(model, "config", None), "name_or_path", None) or type(model).__name__
        return model, tokenizer, str(name)
    from gotd.models import load_causal_lm

    name = os.fspath(model)
    loaded, tok = load_causal_lm(name, device=device, dtype=dtype)
    return loaded, (tokenizer if tokenizer is not None else tok), name


def _resolve_model_location(name: str) -> str:
    """A folder or hub id for ``name`` (registry names are fetched or built by :mod:`gotd.models`)."""
    from gotd.models import resolve_causal_lm

    return os.fspath(resolve_causal_lm(name))


def _device_kind(device: str | None) -> str:
    import torch

    if device is not None:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def _mixed_precision(precision: str, device: str) -> str:
    """The precision the Trainer will use: ``fp32``, ``bf16`` or ``fp16``."""
    import torch

    if precision != "auto":
        if precision == "fp16" and not device.startswith("cuda"):
            raise GotdInputError("precision='fp16' needs a CUDA GPU; use 'bf16' or 'fp32' on CPU")
        return precision
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


# ----------------------------------------------------------------------------------------------
# Training


def _loss_progress_callback() -> Any:
    """A progress bar that shows the latest loss and learning rate instead of printing log lines."""
    from transformers.trainer_callback import ProgressCallback

    class LossProgressCallback(ProgressCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            super().on_train_begin(args, state, control, **kwargs)
            if self.training_bar is not None:
                self.training_bar.set_description("pre-fine-tuning")

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
            if self.training_bar is not None and logs and "loss" in logs:
                self.training_bar.set_postfix(loss=f"{logs['loss']:.4f}",
                                              lr=f"{logs.get('learning_rate', float('nan')):.2e}")

    return LossProgressCallback()


def _curve(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"step": int(e["step"]), "epoch": float(e.get("epoch", float("nan"))), "loss": float(e["loss"]),
             "learning_rate": float(e.get("learning_rate", float("nan"))),
             **({"grad_norm": float(e["grad_norm"])} if "grad_norm" in e else {})}
            for e in log_history if "loss" in e and "step" in e]


def _run_signature(config: TrainConfig, data: dict[str, Any], model_name: str) -> dict[str, Any]:
    """What a checkpoint folder must match to be resumed: the model, the data and the recipe."""
    return {"model": model_name, "texts_sha256": data["texts_sha256"], "config": config.to_dict()}


def _check_resumable(checkpoint_dir: Path, signature: dict[str, Any], resume: Any) -> str | None:
    """Return the checkpoint to resume from (or None), after checking it belongs to this run."""
    from transformers.trainer_utils import get_last_checkpoint

    if resume is None or resume is False:
        if checkpoint_dir.is_dir() and get_last_checkpoint(checkpoint_dir) is not None:
            raise GotdInputError(f"{checkpoint_dir} holds checkpoints of an earlier, unfinished run; continue it with "
                                 "resume_from_checkpoint=True (--resume) or delete that folder to start afresh")
        return None
    if resume is True:
        last = get_last_checkpoint(checkpoint_dir) if checkpoint_dir.is_dir() else None
        if last is None:
            raise GotdInputError(f"resume_from_checkpoint=True but {checkpoint_dir} holds no checkpoint-<step> folder; "
                                 "start without resuming, or pass the checkpoint folder")
        resume = last
    resume_path = Path(resume)
    if not resume_path.is_dir():
        raise GotdInputError(f"checkpoint {resume_path} does not exist; pass a checkpoint-<step> folder")
    run_file = resume_path.parent / _RUN_FILE
    if run_file.is_file():
        saved = json.loads(run_file.read_text(encoding="utf-8"))
        for key in ("model", "texts_sha256", "config"):
            if saved.get(key) != signature[key]:
                raise GotdInputError(
                    f"checkpoint {resume_path} was trained with a different {key} "
                    f"({saved.get(key)!r} != {signature[key]!r}); resume with the same model, data and settings, "
                    "or start a fresh run in another output folder")
    return os.fspath(resume_path)


def train(
    model: Any,
    data: Any,
    out_dir: str | os.PathLike[str],
    config: TrainConfig | str | None = None,
    *,
    tokenizer: Any = None,
    text_field: str = "text",
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume_from_checkpoint: bool | str | os.PathLike[str] | None = None,
    keep_checkpoints: bool = False,
    overwrite: bool = False,
    device: str | None = None,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
) -> TrainResult:
    """Pre-fine-tune a causal LM on texts with next-token prediction and save it.

    The loss is the mean cross-entropy (nats per token) of each block's tokens given the tokens before
    them in the block, averaged over the non-padding tokens of a batch.

    Parameters
    ----------
    model : str, path or transformers model
        A registry name (``smollm2-135m``, ``tiny``; see :mod:`gotd.models`), a ``save_pretrained``
        folder, a hub id, or a loaded ``PreTrainedModel`` (then pass ``tokenizer``).
    data : path or sequence of str
        A selection file from ``gotd select`` / :func:`gotd.pipeline.write_selection`, any text file
        :func:`gotd.data.read_texts` reads, or the texts.
    out_dir : path
        Where the finished checkpoint goes. Must not exist unless ``overwrite``.
    config : TrainConfig or preset name, optional
        Default: the ``zero-shot`` preset.
    tokenizer : transformers tokenizer, optional
        Default: the model folder's tokenizer.
    text_field : str
        Text column of ``data`` when it is a file.
    checkpoint_dir : path, optional
        Where resumable checkpoints go during training. Default ``<out_dir>.checkpoints``.
    resume_from_checkpoint : bool or path, optional
        True: continue from the last checkpoint in ``checkpoint_dir``; a path: from that checkpoint.
        The checkpoint must come from the same model, data and config (checked).
    keep_checkpoints : bool
        Keep ``checkpoint_dir`` after success (default: delete it; the output folder is the result).
    overwrite : bool
        Replace an existing ``out_dir``.
    device : str, optional
        ``"cpu"`` forces the CPU; default: the GPU when there is one.
    progress : bool
        Show a progress bar with the latest loss.
    callbacks : sequence of transformers.TrainerCallback
        Extra Trainer callbacks.

    Returns
    -------
    TrainResult
        The output folder and its record (``result.curve`` is the loss curve).

    Raises
    ------
    GotdInputError
        Empty data, an existing output folder, a checkpoint from another run, bad settings.
    """
    if isinstance(config, str):
        config = preset(config)
    config = config or PRESETS["zero-shot"]
    out_dir = Path(out_dir).expanduser()
    if out_dir.exists() and not overwrite:
        raise GotdInputError(f"output folder {out_dir} already exists; pass overwrite=True (--overwrite) or "
                             "choose another folder")
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else out_dir.with_name(out_dir.name + ".checkpoints")
    texts, data_info = load_training_texts(data, text_field=text_field)

    from transformers import Trainer, TrainingArguments, set_seed
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    device = _device_kind(device)
    precision = _mixed_precision(config.precision, device)
    # fp32 master weights whatever the device: mixed precision is the Trainer's autocast, not bf16 weights
    model_obj, tok, model_name = load_causal_lm_and_tokenizer(model, tokenizer, device="cpu", dtype="float32")

    # Tokenise without special tokens and pack; the tokenizer's length warning does not apply, since
    # long texts are split into blocks below.
    ids = _tokenize(tok, texts)
    separator = document_separator_id(tok)
    blocks, pack_stats = pack_token_blocks(ids, config.max_length, separator_id=separator, packing=config.packing)
    if pack_stats["n_texts_split"]:
        logger.warning("%d of %d texts are longer than max_length=%d tokens; they are split across consecutive "
                       "blocks (nothing is dropped)", pack_stats["n_texts_split"], len(texts), config.max_length)
    steps_per_epoch = math.ceil(len(blocks) / (config.batch_size * config.grad_accum))
    total_steps = math.ceil(steps_per_epoch * config.epochs)
    if config.max_steps is not None and config.max_steps < total_steps:
        seen = _blocks_trained(config.max_steps, steps_per_epoch, len(blocks), config)
        logger.warning("max_steps=%d stops before the %g epoch(s) end: %d block passes of the %d planned "
                       "(%d blocks x %g epochs) will be trained on", config.max_steps, config.epochs, seen,
                       math.ceil(len(blocks) * config.epochs), len(blocks), config.epochs)
        total_steps = config.max_steps
    warmup_steps = math.ceil(config.warmup_ratio * total_steps)

    set_seed(config.seed)
    if config.lora:
        model_obj = _wrap_lora(model_obj, config)
    if config.gradient_checkpointing:
        model_obj.config.use_cache = False
        if config.lora:
            model_obj.enable_input_require_grads()

    signature = _run_signature(config, data_info, model_name)
    resume = _check_resumable(checkpoint_dir, signature, resume_from_checkpoint)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(checkpoint_dir / _RUN_FILE, signature)

    args = TrainingArguments(
        output_dir=os.fspath(checkpoint_dir),
        num_train_epochs=config.epochs,
        # max_steps is a cap: the Trainer would otherwise run past the epochs to reach it
        max_steps=total_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=warmup_steps,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        weight_decay=config.weight_decay,
        adam_beta1=config.adam_beta1,
        adam_beta2=config.adam_beta2,
        adam_epsilon=config.adam_epsilon,
        max_grad_norm=config.max_grad_norm,
        optim="adamw_torch",
        seed=config.seed,
        data_seed=config.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=device == "cpu",
        **_checkpointing_argument(config.gradient_checkpointing),
        logging_strategy="steps",
        logging_steps=config.logging_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        report_to="none",
        disable_tqdm=not progress,
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else (separator if separator is not None else 0)
    trainer = Trainer(model=model_obj, args=args, train_dataset=_BlockDataset(blocks),
                      data_collator=_PadCollator(pad_id), callbacks=list(callbacks))
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    if progress:
        trainer.add_callback(_loss_progress_callback())

    start = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - start

    final_model = trainer.model
    if config.lora and config.merge_lora:
        final_model = final_model.merge_and_unload()
    curve = _curve(trainer.state.log_history)
    state = trainer.state
    record = {
        "format_version": _FORMAT_VERSION,
        "model": model_name,
        "base_model": _base_model_info(model),
        "data": {**data_info, "text_field": text_field},
        "tokens": {**pack_stats, "block_size": config.max_length, "packing": config.packing,
                   "separator": None if separator is None else tok.convert_ids_to_tokens(separator),
                   "blocks_trained": _blocks_trained(state.global_step, steps_per_epoch, len(blocks), config)},
        "config": config.to_dict(),
        "seed": config.seed,
        "precision": precision,
        "steps": int(state.global_step),
        "steps_per_epoch": steps_per_epoch,
        "warmup_steps": warmup_steps,
        "epochs_done": float(state.epoch or 0.0),
        "train_loss": float(output.training_loss),
        "resumed_from": os.fspath(resume) if resume else None,
        "curve": curve,
        "seconds": round(seconds, 3),
        "seconds_per_step": round(seconds / max(1, state.global_step - _step_of(resume)), 4),
        "lora": ({"merged": config.merge_lora, "r": config.lora_r, "alpha": config.lora_alpha}
                 if config.lora else None),
        "checkpoint_dir": os.fspath(checkpoint_dir) if keep_checkpoints else None,
        **provenance(device=str(trainer.args.device)),
    }
    _save_output(final_model, tok, record, out_dir, overwrite=overwrite)
    if not keep_checkpoints:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    logger.info("pre-fine-tuned %s for %d steps in %.1f s -> %s", model_name, state.global_step, seconds, out_dir)
    return TrainResult(output_dir=out_dir, record=record)


def _base_model_info(model: Any) -> dict[str, Any] | None:
    """Where the starting weights came from: the resolved folder and, for registry models, their source."""
    if not isinstance(model, (str, os.PathLike)):
        return None
    from gotd.models import read_manifest

    location = _resolve_model_location(os.fspath(model))
    info: dict[str, Any] = {"location": location}
    if Path(location).is_dir():
        manifest = read_manifest(location) or {}
        info.update({k: manifest[k] for k in ("name", "kind", "source_model", "gguf_sha256", "note") if k in manifest})
        previous = Path(location) / RECORD_NAME
        if previous.is_file():  # warming up an already pre-fine-tuned model: say what it was trained on
            earlier = json.loads(previous.read_text(encoding="utf-8"))
            info["pre_fine_tuned"] = {"model": earlier.get("model"),
                                      "data_sha256": (earlier.get("data") or {}).get("sha256"),
                                      "texts_sha256": (earlier.get("data") or {}).get("texts_sha256")}
    return info


def _blocks_trained(steps: int, steps_per_epoch: int, n_blocks: int, config: TrainConfig) -> int:
    """Block passes in ``steps`` optimiser steps (the last batch of an epoch may be short)."""
    full, rest = divmod(steps, steps_per_epoch)
    return full * n_blocks + min(n_blocks, rest * config.batch_size * config.grad_accum)


def _checkpointing_argument(enabled: bool) -> dict[str, bool]:
    """The TrainingArguments keyword for activation checkpointing (renamed in transformers 5)."""
    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    if not enabled:
        return {}
    return {"activation_checkpointing": True} if "activation_checkpointing" in names else {"gradient_checkpointing": True}


def _step_of(checkpoint: str | None) -> int:
    if not checkpoint:
        return 0
    try:
        return int(Path(checkpoint).name.rsplit("-", 1)[-1])
    except ValueError:
        return 0


def _tokenize(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, no special tokens, no truncation."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # silence "sequence length is longer than the maximum": we split
    try:
        return [list(x) for x in tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]]
    finally:
        hf_logging.set_verbosity(verbosity)


def _wrap_lora(model: Any, config: TrainConfig) -> Any:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:  # pragma: no cover - peft is in the lm extra
        raise GotdError("LoRA needs the peft package: pip install 'gotd[lm]'") from exc
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.lora_target_modules) if config.lora_target_modules else None,
                      task_type="CAUSAL_LM")
    wrapped = get_peft_model(model, lora)
    trainable = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    total = sum(p.numel() for p in wrapped.parameters())
    logger.info("LoRA: training %d of %d parameters (%.2f%%)", trainable, total, 100 * trainable / total)
    return wrapped


def _save_output(model: Any, tokenizer: Any, record: dict[str, Any], out_dir: Path, *, overwrite: bool) -> None:
    """Write model, tokenizer and record into a temporary folder, then rename it onto ``out_dir``."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / RECORD_NAME, record)  # last: its presence marks a complete folder
        if out_dir.exists() and not overwrite:
            raise GotdInputError(f"output folder {out_dir} appeared while training; not replacing it")
        replace_dir(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_train_record(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Return the ``gotd_train.json`` of a pre-fine-tuned folder (GotdInputError if it has none)."""
    path = Path(folder) / RECORD_NAME
    if not path.is_file():
        raise GotdInputError(f"{folder} has no {RECORD_NAME}: it is not a finished `gotd train` output")
    return json.loads(path.read_text(encoding="utf-8"))

