"""The plain training loop, nanoGPT style: AdamW, linear warm-up then cosine decay, seeded batches, resume.

For models small enough that the ``transformers`` Trainer's machinery (mixed precision, accumulation,
distributed) buys nothing: a tiny Llama pre-trained from scratch or warmed up on a selection. Blocks are
full (:func:`gotd.train.pack_token_blocks` with ``tail="wrap"``); an epoch visits every block once in a
seeded order; the loss is the mean next-token cross-entropy in nats per token.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm


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


def lr_at(step: int, total: int, recipe: LoopRecipe) -> float:
    """Learning rate of ``step`` (0-based) of ``total``: linear warm-up, then cosine down to ``final_lr_ratio``."""
    warm = max(1, int(round(recipe.warmup_fraction * total)))
    if step < warm:
        return recipe.lr * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
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
               desc: str = "training") -> dict[str, Any]:
    """Train ``model`` in place on ``blocks`` (``(n_blocks, block_size)`` token ids) with ``recipe``.

    With ``checkpoint`` the model, optimizer and step are saved there every ``checkpoint_every`` steps and an
    existing checkpoint is resumed (the step order is a function of the seed, so a resumed run is the same).
    Returns ``steps``, ``resumed_at``, ``first_loss``/``final_loss`` (nats per token), ``tokens`` and the
    run's ``wall_s``/``cpu_s`` (a run record, not a benchmark).
    """
    steps = batch_order(len(blocks), recipe, seed)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay, betas=(0.9, 0.95))
    start_step, losses = 0, []
    if checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start_step, losses = state["step"], state["losses"]
    torch.manual_seed(seed + 1)
    model.train()
    t0, c0 = time.perf_counter(), time.process_time()
    bar = tqdm(total=len(steps), initial=start_step, desc=desc, disable=not progress, leave=False)
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
        if checkpoint is not None and (step + 1) % checkpoint_every == 0 and step + 1 < len(steps):
            tmp = checkpoint.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step + 1,
                        "losses": losses}, tmp)
            tmp.replace(checkpoint)
    bar.close()
    model.eval()
    return {"steps": len(steps), "resumed_at": start_step, "final_loss": losses[-1] if losses else float("nan"),
            "first_loss": losses[0] if losses else float("nan"), "wall_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0, "tokens": len(steps) * recipe.batch_size * blocks.shape[1]}


def full_blocks(token_ids: list[list[int]], block_size: int) -> torch.Tensor:
    """Pack bos-prefixed token lists into one ``(n_blocks, block_size)`` tensor, the tail wrapped (no text dropped)."""
    from gotd.train._packing import pack_token_blocks

    blocks, _ = pack_token_blocks(token_ids, block_size, separator_id=None, tail="wrap")
    return torch.tensor(blocks, dtype=torch.long)
