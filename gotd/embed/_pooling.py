"""Pooling the encoder's last hidden states to one vector per text."""
from __future__ import annotations

import torch

from gotd.errors import GotdInputError

POOLINGS = ("mean", "mean_with_padding", "cls")


def pool_hidden_states(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool last hidden states ``(batch, length, d)`` to ``(batch, d)`` in float32.

    ``"mean"``: :math:`x = \\sum_l m_l H_l / \\sum_l m_l` over the real tokens (mask :math:`m_l = 1`);
    ``"mean_with_padding"``: the plain mean over all positions; ``"cls"``: the first real token's state.
    ``hidden`` is upcast before any sum, so bf16 states are averaged in float32.
    """
    hidden = hidden.float()
    mask = attention_mask.to(hidden.device, torch.float32)
    if pooling == "mean":
        return (hidden * mask.unsqueeze(-1)).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp_min(1.0)
    if pooling == "mean_with_padding":
        return hidden.mean(dim=1)
    if pooling == "cls":
        first_real = attention_mask.long().argmax(dim=1)  # 0 with right padding; handles left padding too
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), first_real.to(hidden.device)]
    raise GotdInputError(f"pooling={pooling!r} is not one of {POOLINGS}")
