"""One log-domain Sinkhorn iteration over the cost blocks, written once for the eager and compiled paths.

The block step :func:`_block_step` is the whole iteration's maths for one row block. Eagerly it runs on
the shared block buffer with in-place updates (what keeps a CPU fast and its memory flat); compiled, the
same function is traced with ``inplace=False`` together with the block's GEMM, and inductor fuses the
scale, shift, max, exp and sums around the GEMM into a few kernels. :func:`_row_lse` is the row half
alone, the entropic c-transform that scoring uses.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import torch

from gotd.ot._geometry import _BlockDots, _products_fp32


def _relax(old: torch.Tensor, new: torch.Tensor, omega: float) -> torch.Tensor:
    """Over-relaxed step ``(1 - omega) old + omega new`` (plain Sinkhorn when omega is 1)."""
    return new if omega == 1.0 else torch.lerp(old, new, omega)


def _row_lse(z: torch.Tensor, p_rows: torch.Tensor, eps: Any, inplace: bool
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Candidate update of one block from ``Z_ij = 2 x_i^T y_j / eps + shift_j``.

    With ``shift_j = (g_j - q_j) / eps + log b_j`` the update
    ``f_i = -eps log sum_j b_j exp((g_j - C_ij) / eps)`` becomes
    ``f_i = p_i - eps * LSE_j(Z_ij)``.

    Returns
    -------
    f_hat : (rows,) the updated potentials, cost units.
    weights : (rows, m) ``exp(Z_ij - max_j Z_ij)`` (overwrites Z when ``inplace``).
    row_max : (rows,) ``max_j Z_ij``.
    """
    row_max = z.amax(dim=1)
    weights = z.sub_(row_max[:, None]).exp_() if inplace else torch.exp(z - row_max[:, None])
    f_hat = p_rows - eps * (row_max + weights.sum(dim=1).log())
    return f_hat, weights, row_max


def _block_step(z: torch.Tensor, p_rows: torch.Tensor, f_rows: torch.Tensor, log_a_rows: torch.Tensor,
                eps: Any, omega: float, inplace: bool, pool_error: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One block of an iteration: new f rows, the block's column LSE part, its underflow floor, row error.

    The column sums reuse the row step's weights ``W_ij = exp(Z_ij - max_j Z_ij)``:
    ``sum_i a_i exp((f_i - C_ij)/eps) = exp(-shift_j - q_j/eps) sum_i W_ij exp(v_i)`` with
    ``v_i = max_j Z_ij + (f_i - p_i)/eps + log a_i``, a matrix-vector product instead of a second
    exponential per entry.

    The row error is the block's share of the pool-marginal L1 error of the plan *before* this update,
    ``sum_i a_i |exp((f_i - f_hat_i) / eps) - 1|`` (the candidate marginal under the current g is
    ``a_i exp((f_i - f_hat_i) / eps)``); computed only when ``pool_error`` (the pool-side stopping
    rule), 0 otherwise.
    """
    f_hat, weights, row_max = _row_lse(z, p_rows, eps, inplace)
    if pool_error:
        ratio = ((f_rows - f_hat) / eps).double().clamp(max=700.0)
        row_error = (log_a_rows.double().exp() * torch.expm1(ratio).abs()).sum()
    else:
        row_error = torch.zeros((), dtype=torch.float64, device=z.device)
    f_new = _relax(f_rows, f_hat, omega)
    v = row_max + (f_new - p_rows) / eps + log_a_rows
    v_max = v.max()
    part = torch.log(weights.T @ torch.exp(v - v_max)) + v_max
    return f_new, part, v_max, row_error


def _online_block(rows: torch.Tensor, y_t: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
                  p_rows: torch.Tensor, f_rows: torch.Tensor, log_a_rows: torch.Tensor, eps: torch.Tensor,
                  omega: float, fp32_out: bool = False, pool_error: bool = False) -> tuple[torch.Tensor, ...]:
    """:func:`_block_step` with the block's GEMM inside the graph (the compiled online path)."""
    z = _products_fp32(rows, y_t, fp32_out) * scale + shift[None, :]
    return _block_step(z, p_rows, f_rows, log_a_rows, eps, omega, inplace=False, pool_error=pool_error)


def _stored_block(products: torch.Tensor, shift: torch.Tensor, p_rows: torch.Tensor, f_rows: torch.Tensor,
                  log_a_rows: torch.Tensor, eps: torch.Tensor, omega: float, pool_error: bool = False
                  ) -> tuple[torch.Tensor, ...]:
    """:func:`_block_step` on stored products (the compiled stored path's log-domain iterations)."""
    return _block_step(products + shift[None, :], p_rows, f_rows, log_a_rows, eps, omega, inplace=False,
                       pool_error=pool_error)


def _online_potential(rows: torch.Tensor, y_t: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
                      p_rows: torch.Tensor, eps: torch.Tensor, fp32_out: bool = False) -> torch.Tensor:
    """:func:`_row_lse` with the GEMM inside the graph (the compiled c-transform)."""
    z = _products_fp32(rows, y_t, fp32_out) * scale + shift[None, :]
    return _row_lse(z, p_rows, eps, inplace=False)[0]


_GRAPHS = {"online_sweep": _online_block, "stored_sweep": _stored_block, "online_potential": _online_potential}


@functools.lru_cache(maxsize=None)
def _compiled(name: str, backend: str | None) -> Any:
    """The graph ``name`` compiled with ``backend`` (the plain function when backend is None).

    Compiled once per process and backend; torch.compile itself recompiles when the block shape changes
    (the last, shorter block) and then treats the row count as dynamic.
    """
    fn = _GRAPHS[name]
    if backend is None:
        return fn
    return torch.compile(fn, backend=backend, fullgraph=True)


def _block(dots: _BlockDots, k: int, shift: torch.Tensor, f_rows: torch.Tensor, log_a_rows: torch.Tensor,
           eps: float, omega: float, pool_error: bool) -> tuple[torch.Tensor, ...]:
    """Block k of an iteration, compiled when a backend is set (falling back to eager if that fails)."""
    rows = dots.rows(k)
    p_rows = dots.p[rows]
    if dots.compile_backend is not None:
        try:
            if dots.stored is not None:
                return _compiled("stored_sweep", dots.compile_backend)(
                    dots.stored[k], shift, p_rows, f_rows, log_a_rows, dots.eps_t, omega, pool_error)
            return _compiled("online_sweep", dots.compile_backend)(
                dots.x[rows], dots.y_t, dots.scale_t, shift, p_rows, f_rows, log_a_rows, dots.eps_t, omega,
                dots.fp32_out, pool_error)
        except Exception as exc:  # noqa: BLE001 - a compiler failure must not lose the solve
            dots.disable_compile(exc)
    return _block_step(dots.block_plus(k, shift), p_rows, f_rows, log_a_rows, eps, omega, inplace=True,
                       pool_error=pool_error)


def row_potential(dots: _BlockDots, k: int, shift: torch.Tensor, eps: float) -> torch.Tensor:
    """Block k's c-transform ``p_i - eps LSE_j(2 x_i^T y_j / eps + shift_j)``, compiled when set."""
    rows = dots.rows(k)
    if dots.compile_backend is not None:
        try:
            return _compiled("online_potential", dots.compile_backend)(
                dots.x[rows], dots.y_t, dots.scale_t, shift, dots.p[rows], dots.eps_t, dots.fp32_out)
        except Exception as exc:  # noqa: BLE001 - a compiler failure must not lose the scores
            dots.disable_compile(exc)
    return _row_lse(dots.block_plus(k, shift), dots.p[rows], eps, inplace=True)[0]


def _exact_columns(dots: _BlockDots, f: torch.Tensor, log_a: torch.Tensor, eps: float,
                   cols: torch.Tensor) -> torch.Tensor:
    """``LSE_i(2 x_i^T y_j / eps + (f_i - p_i)/eps + log a_i)`` for the columns ``cols``, exactly."""
    parts = []
    for k in range(len(dots.starts)):
        rows = dots.rows(k)
        u = (f[rows] - dots.p[rows]) / eps + log_a[rows]
        parts.append(torch.logsumexp(dots.columns(k, cols) + u[:, None], dim=0))
    return torch.logsumexp(torch.stack(parts), dim=0)


def log_domain_step(dots: _BlockDots, f: torch.Tensor, g: torch.Tensor, log_a: torch.Tensor,
                    log_b: torch.Tensor, eps: float, omega: float, pool_error: bool = False
                    ) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    """One over-relaxed log-domain iteration over all blocks.

    Returns
    -------
    f, g : the new potentials (``f`` a new tensor; the inputs are left unchanged).
    target_error : L1 error of the target marginal after the f update and before the g update.
    pool_error : L1 error of the pool marginal of the *input* potentials (before the f update), when
        ``pool_error`` is set; 0 otherwise.
    """
    f = f.clone()
    shift = (g - dots.q) / eps + log_b
    parts, floors, row_errors = [], [], []
    for k in range(len(dots.starts)):
        rows = dots.rows(k)
        f_new, part, v_max, row_error = _block(dots, k, shift, f[rows], log_a[rows], eps, omega, pool_error)
        f[rows] = f_new
        parts.append(part)
        floors.append(v_max)
        row_errors.append(row_error)
    col = torch.logsumexp(torch.stack(parts), dim=0)
    # A block's terms below ~1e-38 relative to exp(v_max) are lost to float32 underflow; where the column
    # total is not far above that floor, recompute the column exactly.
    floor = torch.logsumexp(torch.stack(floors), dim=0) + math.log(dots.block_size) - 87.0
    suspect = ~(col - floor > 20.0)
    if bool(suspect.any()):
        col[suspect] = _exact_columns(dots, f, log_a, eps, suspect.nonzero().squeeze(1)) + shift[suspect]
    # lse_j = log sum_i a_i exp((f_i - C_ij) / eps): the target marginal under the current g is
    # b_j exp(g_j / eps + lse_j), and the Sinkhorn update is g_j = -eps lse_j. Float64 keeps the error
    # finite while the first iterations are still far off.
    lse = col - shift - dots.q / eps
    b_prob = log_b.exp().double()
    marginal = b_prob * torch.exp((g / eps + lse).double().clamp(max=700.0))
    error = float((marginal - b_prob).abs().sum())
    if not bool(torch.isfinite(f).all()):
        error = math.nan
    return f, _relax(g, -eps * lse, omega), error, float(torch.stack(row_errors).sum()) if pool_error else 0.0
