"""The recipe of a pre-fine-tuning run: :class:`TrainConfig`, the named presets and the result."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from gotd._params import ParameterObject
from gotd.errors import GotdError, GotdInputError
from gotd.models import TRAIN_RECORD_NAME

RECORD_NAME = TRAIN_RECORD_NAME
"""File name of the training record inside the output folder."""

_RUN_FILE = "gotd_run.json"  # in the checkpoint folder: what the checkpoints were trained with
_FORMAT_VERSION = 1
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig(ParameterObject):
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
    # Sized for a CPU: 20 steps of 8 x 128 tokens (how long that takes: benchmarks/bench_train.py).
    # With so few steps the paper's 1e-5 barely moves the weights, so this uses 5e-5 with a short
    # warm-up; it is a short run of the pipeline, not the paper's recipe.
    "short": TrainConfig(epochs=1.0, max_steps=20, learning_rate=5e-5, warmup_ratio=0.1, batch_size=8,
                         max_length=128, save_steps=10),
}
"""Named recipes; :func:`preset` returns one with overrides."""


def preset(name: str, **overrides: Any) -> TrainConfig:
    """Return the named preset (``detox``, ``zero-shot``, ``short``) with some fields overridden."""
    if name == "demo":
        raise GotdInputError("the training preset 'demo' is now called 'short' (20 steps of 8 x 128 tokens); "
                             "pass preset='short' (--preset short)")
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
