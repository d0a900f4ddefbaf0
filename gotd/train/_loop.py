"""The plain training loop, nanoGPT style: AdamW, linear warm-up then cosine decay, seeded batches, resume.

For models small enough that the ``transformers`` Trainer's machinery (mixed precision, accumulation,
distributed) buys nothing: a tiny Llama pre-trained from scratch or warmed up on a selection. Blocks are
full (:func:`gotd.train.pack_token_blocks` with ``tail="wrap"``); an epoch visits every block once in a
seeded order; the loss is the mean next-token cross-entropy in nats per token.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from gotd.errors import GotdInputError


@dataclass(frozen=True)
class LoopRecipe:
    """One optimisation recipe of :func:`train_loop` (AdamW, linear warm-up then cosine decay to ``final_lr_ratio``)."""

    epochs: float = 2.0             # passes over the packed blocks (fractions allowed)
    batch_size: int = 16            # blocks per step
    lr: float = 3e-3                # peak learning rate
    warmup_fraction: float = 0.05   # of the steps
    final_lr_ratio: float = 0.1     # lr at the end / peak
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    schedule: str = "cosine"        # "cosine" (warm-up then decay) or "constant" (lr throughout: a light warm-up)
    hold_fraction: float = 0.0      # of the steps, at the end, held at the final lr after the decay (cosine only)

    def __post_init__(self) -> None:
        # One JSON spelling per recipe (24 and 24.0 are one recipe): the pre-training cache keys on asdict(self).
        for name in ("epochs", "lr", "warmup_fraction", "final_lr_ratio", "weight_decay", "grad_clip", "hold_fraction"):
            object.__setattr__(self, name, float(getattr(self, name)))
        if self.schedule not in ("cosine", "constant"):
            raise GotdInputError(f"LoopRecipe.schedule={self.schedule!r} must be 'cosine' or 'constant'")
        if not self.epochs > 0 or self.batch_size < 1 or not self.lr > 0:
            raise GotdInputError(f"LoopRecipe needs epochs > 0, batch_size >= 1 and lr > 0, got {self}")
        if not 0.0 <= self.hold_fraction < 1.0:
            raise GotdInputError(f"LoopRecipe.hold_fraction={self.hold_fraction} must be in [0, 1): the share of "
                                 "steps held at the final learning rate after the decay")

    @property
    def final_lr(self) -> float:
        """The learning rate of the last step (the peak for ``constant``)."""
        return self.lr * (1.0 if self.schedule == "constant" else self.final_lr_ratio)


def light_recipe(pretraining: LoopRecipe, *, epochs: float = 1.0, batch_size: int | None = None) -> LoopRecipe:
    """A light warm-up: the pre-training's final learning rate held constant, ``epochs`` passes, no decay.

    Meant to continue the pre-training's optimizer state (:func:`train_loop` with ``optimizer_state``), so
    that the first step is the next step of pre-training, not a fresh Adam step of size ~lr.
    """
    return LoopRecipe(epochs=epochs, batch_size=batch_size or pretraining.batch_size, lr=pretraining.final_lr,
                      warmup_fraction=0.0, final_lr_ratio=1.0, weight_decay=pretraining.weight_decay,
                      grad_clip=pretraining.grad_clip, schedule="constant")


def lr_at(step: int, total: int, recipe: LoopRecipe) -> float:
    """Learning rate of ``step`` (0-based) of ``total``: linear warm-up, then cosine down to ``final_lr_ratio``
    over the steps before the last ``hold_fraction`` of them, which stay at the final rate (``constant``:
    ``lr`` at every step).

    The hold phase makes the end of pre-training a run at the rate a light warm-up continues at
    (:func:`light_recipe`), so a held-out curve that is flat there shows that more pool data at that rate
    changes nothing: the premise of the null control.
    """
    if recipe.schedule == "constant":
        return recipe.lr
    warm = max(1, int(round(recipe.warmup_fraction * total)))
    if step < warm:
        return recipe.lr * (step + 1) / warm
    decay_end = total - int(round(recipe.hold_fraction * total))
    if step >= decay_end:
        return recipe.final_lr
    progress = (step - warm) / max(1, decay_end - warm)
    floor = recipe.final_lr_ratio
    return recipe.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def batch_order(n_blocks: int, recipe: LoopRecipe, seed: int) -> list[np.ndarray]:
    """The block indices of every step: seeded permutations per epoch, cut into batches."""
    rng = np.random.default_rng(seed)
    total = max(1, math.ceil(recipe.epochs * n_blocks / recipe.batch_size))
    order = np.concatenate([rng.permutation(n_blocks) for _ in range(math.ceil(recipe.epochs) + 1)])
    return [order[i * recipe.batch_size:(i + 1) * recipe.batch_size] for i in range(total)]


def train_loop(model: torch.nn.Module, blocks: torch.Tensor, recipe: LoopRecipe, seed: int, *,
               checkpoint: Path | None = None, checkpoint_every: int = 100, progress: bool = True,
               desc: str = "training", optimizer_state: dict[str, Any] | None = None,
               evaluate: Callable[[], float] | None = None, evaluate_every: int = 0,
               keep_optimizer: bool = False) -> dict[str, Any]:
    """Train ``model`` in place on ``blocks`` (``(n_blocks, block_size)`` token ids) with ``recipe``.

    With ``checkpoint`` the model, optimizer and step are saved there every ``checkpoint_every`` steps and an
    existing checkpoint is resumed (the step order is a function of the seed, so a resumed run is the same).
    Returns ``steps``, ``resumed_at``, ``first_loss``/``final_loss`` (nats per token), ``tokens`` and the
    run's ``wall_s``/``cpu_s`` (a run record, not a benchmark).

    ``optimizer_state`` continues an earlier run's AdamW moments (a light warm-up after pre-training);
    ``evaluate`` (a function returning a held-out NLL in nats/token) is called before the first step and
    every ``evaluate_every`` steps and at the end, giving ``curve`` = ``[{"step", "tokens", "heldout_nll"}]``;
    ``keep_optimizer`` adds the final ``optimizer_state`` to the record.
    """
    steps = batch_order(len(blocks), recipe, seed)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay, betas=(0.9, 0.95))
    if optimizer_state is not None:
        opt.load_state_dict(optimizer_state)
    start_step, losses = 0, []
    curve: list[dict[str, float]] = []
    tokens_per_step = recipe.batch_size * int(blocks.shape[1])

    def record_point(step: int) -> None:
        if evaluate is not None:
            curve.append({"step": step, "tokens": step * tokens_per_step, "heldout_nll": float(evaluate())})
            model.train()
    if checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start_step, losses, curve = state["step"], state["losses"], state.get("curve", [])
    torch.manual_seed(seed + 1)
    model.train()
    t0, c0 = time.perf_counter(), time.process_time()
    bar = tqdm(total=len(steps), initial=start_step, desc=desc, disable=not progress, leave=False)
    if start_step == 0:
        record_point(0)
    for step in range(start_step, len(steps)):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, len(steps), recipe)
        batch = blocks[torch.as_tensor(steps[step])]
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        opt.step()
        losses.append(float(loss.detach()))
        bar.update(1)
        if evaluate_every and (step + 1) % evaluate_every == 0 and step + 1 < len(steps):
            record_point(step + 1)
        if checkpoint is not None and (step + 1) % checkpoint_every == 0 and step + 1 < len(steps):
            tmp = checkpoint.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step + 1,
                        "losses": losses, "curve": curve}, tmp)
            tmp.replace(checkpoint)
    bar.close()
    record_point(len(steps))
    model.eval()
    out = {"steps": len(steps), "resumed_at": start_step, "final_loss": losses[-1] if losses else float("nan"),
           "first_loss": losses[0] if losses else float("nan"), "wall_s": time.perf_counter() - t0,
           "cpu_s": time.process_time() - c0, "tokens": len(steps) * tokens_per_step,
           "final_lr": lr_at(len(steps) - 1, len(steps), recipe), "curve": curve}
    if keep_optimizer:
        out["optimizer_state"] = opt.state_dict()
    return out


def full_blocks(token_ids: list[list[int]], block_size: int) -> torch.Tensor:
    """Pack bos-prefixed token lists into one ``(n_blocks, block_size)`` tensor, the tail wrapped (no text dropped)."""
    from gotd.train._packing import pack_token_blocks

    blocks, _ = pack_token_blocks(token_ids, block_size, separator_id=None, tail="wrap")
    return torch.tensor(blocks, dtype=torch.long)
