"""Sinkhorn by matrix-vector products on a stored, stabilised kernel (the fast path on a CPU).

This is not a second copy of the log-domain iteration but the scaling form of the same fixed point
(Schmitzer 2019): with the cost stored, an iteration is two mat-vecs instead of an exponential per
entry. It needs the stored cost, so the online and compiled paths never use it.
"""
from __future__ import annotations

import torch

from gotd.ot._geometry import _BlockDots


class _ScaledKernel:
    """Iterate the scalings ``alpha, beta`` of a kernel ``K_ij = exp((f_i + g_j - C_ij) / eps)``.

    The plan is ``a_i b_j K_ij alpha_i beta_j``. When a scaling leaves ``[e^-limit, e^limit]`` it is
    absorbed into the potentials and the kernel rebuilt, which keeps float32 from over- or underflowing.
    """

    def __init__(self, dots: _BlockDots, log_a: torch.Tensor, log_b: torch.Tensor, eps: float,
                 limit: float = 10.0) -> None:
        self.dots, self.eps, self.limit = dots, eps, limit
        self.a, self.b = log_a.exp(), log_b.exp()
        self.blocks: list[torch.Tensor] = []
        self.log_alpha = torch.zeros_like(log_a)
        self.log_beta = torch.zeros_like(log_b)

    def rebuild(self, f: torch.Tensor, g: torch.Tensor) -> None:
        """Set the kernel for potentials f, g (scalings back to 1)."""
        dots, eps = self.dots, self.eps
        column = (g - dots.q) / eps
        fresh = not self.blocks
        for k in range(len(dots.starts)):
            rows = dots.rows(k)
            row = (f[rows] - dots.p[rows]) / eps
            products = dots.stored[k]
            if fresh:
                self.blocks.append(torch.empty_like(products))
            torch.add(products, row[:, None], out=self.blocks[k]).add_(column[None, :]).exp_()
        self.log_alpha = torch.zeros_like(self.log_alpha)
        self.log_beta = torch.zeros_like(self.log_beta)

    def step(self, omega: float, pool_error: bool = False) -> tuple[float, float] | None:
        """One over-relaxed iteration; return (target error before the beta update, pool error before it).

        The pool error, ``sum_i a_i |alpha_i (K b beta)_i - 1|``, is that of the scalings the step
        started from (computed only when ``pool_error``; 0 otherwise). Returns None (and changes nothing) when a scaling would be non-finite: the caller
        falls back to a log-domain step.
        """
        dots = self.dots
        beta_b = self.b * self.log_beta.exp()
        log_alpha = torch.empty_like(self.log_alpha)
        want_pool_error, pool_error = pool_error, torch.zeros((), dtype=torch.float64, device=self.a.device)
        for k in range(len(dots.starts)):
            rows = dots.rows(k)
            log_row_sums = torch.log(self.blocks[k] @ beta_b)
            if want_pool_error:
                ratio = (self.log_alpha[rows] + log_row_sums).double().clamp(max=700.0)
                pool_error += (self.a[rows].double() * torch.expm1(ratio).abs()).sum()
            log_alpha[rows] = torch.lerp(self.log_alpha[rows], -log_row_sums, omega)
        weights = self.a * log_alpha.exp()
        column = sum(self.blocks[k].T @ weights[dots.rows(k)] for k in range(len(dots.starts)))
        log_beta = torch.lerp(self.log_beta, -torch.log(column), omega)
        if not (bool(torch.isfinite(log_alpha).all()) and bool(torch.isfinite(log_beta).all())):
            return None
        marginal = (self.b * self.log_beta.exp() * column).double()
        self.log_alpha, self.log_beta = log_alpha, log_beta
        return float((marginal - self.b.double()).abs().sum()), float(pool_error)

    def needs_absorbing(self) -> bool:
        return bool(self.log_alpha.abs().max() > self.limit or self.log_beta.abs().max() > self.limit)

    def scalings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The current (log alpha, log beta), to restore them with :meth:`restore`."""
        return self.log_alpha, self.log_beta

    def restore(self, scalings: tuple[torch.Tensor, torch.Tensor]) -> None:
        self.log_alpha, self.log_beta = scalings

    def potentials(self, f: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The full potentials ``f + eps log alpha``, ``g + eps log beta``."""
        return f + self.eps * self.log_alpha, g + self.eps * self.log_beta
