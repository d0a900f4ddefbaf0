"""The Sinkhorn solve: the iteration loop, its stopping rule, divergence recovery and diagnostics.

The problem and its geometry live in :mod:`gotd.ot._geometry`, one iteration in :mod:`gotd.ot._step`
(log domain) and :mod:`gotd.ot._kernel` (stored-kernel scalings); this module only drives them and
decides when a solve is done, diverged or failed.
"""
from __future__ import annotations

import inspect
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from gotd.errors import GotdConvergenceError, GotdInputError
from gotd.ot._backend import (
    _DTYPES,
    _pick_block_size,
    default_kernel_budget,
    resolve_compile,
    resolve_device,
    resolve_gemm_dtype,
)
from gotd.ot._geometry import _BlockDots
from gotd.ot._inputs import _as_matrix, _check_dims, _positive_finite, check_weights
from gotd.ot._kernel import _ScaledKernel
from gotd.ot._presets import resolve_preset
from gotd.ot._scale import DEFAULT_EPS_SCALE, ROW_SHARE_WARNING, cost_scale, resolve_eps
from gotd.ot._step import log_domain_step

DEFAULT_TOL = 1e-2
"""Default stop: L1 error of the target marginal (see the README's "Choices worth knowing" for when
1e-2 reproduces the converged top 5% and 1%)."""

DIVERGENCE_FACTOR = 1e4
"""A marginal error this many times above the best one seen so far is taken as divergence."""

STOP_MARGINALS = ("target", "pool")


@dataclass
class SinkhornResult:
    """Dual potentials of an entropic OT solve and how the solve went.

    Attributes
    ----------
    f : numpy.ndarray, shape (n,)
        Candidate-side potential in cost units; ``f_i`` is the derivative of OT_eps w.r.t. the mass
        ``a_i`` of candidate i.
    g : numpy.ndarray, shape (m,)
        Target-side potential in cost units.
    diagnostics : dict
        eps, eps_rel, eps_scale (the statistic eps_rel is relative to) and scale, cost_mean, cost_std,
        max_row_share_pool / max_row_share_target (largest share of var(C) from one row), iterations,
        marginal_error (L1 error of the marginal named by stop_marginal at the last iteration),
        converged, diverged, restarted, restart_iteration, tol, stop_marginal, preset, seconds, path,
        device, gemm_dtype, omega, block_size, n, m, d and the per-iteration ``error_history``.
    """

    f: np.ndarray
    g: np.ndarray
    diagnostics: dict[str, Any] = field(default_factory=dict)


def _iterate(dots: _BlockDots, kernel: _ScaledKernel | None, log_a: torch.Tensor, log_b: torch.Tensor, eps: float,
             *, omega: float, relax_first: bool, tol: float, max_iter: int, stop_marginal: str,
             bar: Any, history: list[float]) -> dict[str, Any]:
    """Iterate from zero potentials until the stopping rule holds, max_iter, or divergence.

    ``stop_marginal="target"`` stops on the target-marginal error measured after the f update (gotd's
    rule). ``"pool"`` stops on the pool-marginal error of the potentials after a full iteration (ott-jax's
    rule: that error is computed in the next iteration's f update, so the solve returns the potentials
    from before that update).
    """
    n, m = log_a.shape[0], log_b.shape[0]
    f = torch.zeros(n, dtype=torch.float32, device=log_a.device)
    g = torch.zeros(m, dtype=torch.float32, device=log_a.device)
    scaling = False  # iterating on the stored kernel (after two log-domain warm-up iterations)
    best, error, status, iterations = math.inf, math.inf, "max_iter", 0
    for iterations in range(1, max_iter + 2 if stop_marginal == "pool" else max_iter + 1):
        # Relaxing away from the arbitrary zero start only slows the first step down.
        step_omega = omega if (relax_first or iterations > 1) else 1.0
        previous = (f, g, kernel.scalings() if scaling else None)
        out = kernel.step(step_omega, pool_error=stop_marginal == "pool") if scaling else None
        if out is None:
            if scaling:  # a scaling went non-finite: take this iteration in the log domain
                f, g = kernel.potentials(f, g)
            f, g, target_error, pool_error = log_domain_step(dots, f, g, log_a, log_b, eps, step_omega,
                                                             stop_marginal == "pool")
            scaling = False
            if kernel is not None and iterations >= 2:
                kernel.rebuild(f, g)
                scaling = True
        else:
            target_error, pool_error = out
            if kernel.needs_absorbing():
                f, g = kernel.potentials(f, g)
                kernel.rebuild(f, g)
        if not math.isfinite(target_error) or target_error > DIVERGENCE_FACTOR * best:
            return {"status": "diverged", "iterations": iterations, "error": target_error, "f": f, "g": g}
        best = min(best, target_error)
        if stop_marginal == "pool":
            if iterations > 1:
                error = pool_error  # the error of the previous iteration's potentials
                history.append(error)
            if iterations > 1 and error <= tol or iterations > max_iter:
                # return the potentials this pass measured (the last pass only measured, at max_iter)
                f, g, scalings = previous
                if scalings is not None:
                    f, g = f + eps * scalings[0], g + eps * scalings[1]
                status = "converged" if error <= tol else "max_iter"
                return {"status": status, "iterations": iterations - 1, "error": error, "f": f, "g": g}
        else:
            error = target_error
            history.append(error)
            if error <= tol:
                status = "converged"
                break
        bar.update(1)
        bar.set_postfix(error=f"{error:.2e}")
    if scaling:
        f, g = kernel.potentials(f, g)
    return {"status": status, "iterations": min(iterations, max_iter), "error": error, "f": f, "g": g}


def _solve(x: torch.Tensor, y: torch.Tensor, *, eps: float | None = None, eps_rel: float | None = None,
           eps_scale: str = DEFAULT_EPS_SCALE, a: Any = None, b: Any = None, tol: float = DEFAULT_TOL,
           max_iter: int = 10_000, omega: float = 1.5, stop_marginal: str = "target", relax_first: bool = False,
           block_size: int | None = None, device: str | torch.device | None = None, gemm_dtype: str | None = None,
           path: str = "auto", kernel_budget_bytes: int | None = None, compile: bool | str | None = None,
           progress: bool = False, allow_unconverged: bool = False, preset: str | None = None,
           scale: dict[str, float] | None = None, calibration: str | None = None) -> SinkhornResult:
    """:func:`sinkhorn` on checked matrices with the preset already resolved.

    ``scale`` is a precomputed :func:`cost_scale` result (the full pool's, when solving on a subsample);
    ``calibration`` is the preset's, recorded only (the caller applies it).
    """
    _check_dims(x, y)
    n, m = x.shape[0], y.shape[0]
    if not (isinstance(omega, (int, float)) and 1.0 <= omega < 2.0):
        raise GotdInputError(f"omega must be in [1, 2) for over-relaxed Sinkhorn to converge, got {omega}")
    tol = _positive_finite(tol, "tol", "pass an L1 marginal error such as tol=1e-2")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise GotdInputError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    if path not in ("auto", "stored", "online"):
        raise GotdInputError(f"path must be 'auto', 'stored' or 'online', got {path!r}")
    if stop_marginal not in STOP_MARGINALS:
        raise GotdInputError(f"stop_marginal must be 'target' or 'pool', got {stop_marginal!r}")

    dev = resolve_device(device)
    gemm_dtype = resolve_gemm_dtype(gemm_dtype, dev)
    backend = resolve_compile(compile, dev)
    if scale is None:
        scale = cost_scale(x, y, eps_scale)
    relative = eps is None
    eps, eps_rel = resolve_eps(eps, eps_rel, scale["scale"])
    if relative and eps_scale == "std" and \
            max(scale["max_row_share_pool"], scale["max_row_share_target"]) > ROW_SHARE_WARNING:
        side = "pool" if scale["max_row_share_pool"] >= scale["max_row_share_target"] else "target"
        share = max(scale["max_row_share_pool"], scale["max_row_share_target"])
        warnings.warn(f"one {side} row accounts for {share:.0%} of the variance of the cost, so eps = eps_rel x std(C) "
                      f"is set by that outlier (eps={eps:.3g}); check that row, or pass eps_scale='median' or an "
                      "absolute eps", RuntimeWarning, stacklevel=3)
    log_a = check_weights(a, n, "a").log().to(dev, torch.float32)
    log_b = check_weights(b, m, "b").log().to(dev, torch.float32)
    bsize = _pick_block_size(n, m, dev, block_size)
    # The stored path keeps the scaled products and the stabilised kernel: 8 bytes per entry.
    if kernel_budget_bytes is None:
        kernel_budget_bytes = default_kernel_budget(dev)
    store = path == "stored" or (path == "auto" and 8 * n * m <= kernel_budget_bytes)

    started = time.perf_counter()
    dots = _BlockDots(x, y, eps=eps, device=dev, gemm_dtype=_DTYPES[gemm_dtype], block_size=bsize, store=store,
                      compile_backend=backend)
    history: list[float] = []
    run_omega, restart_iteration = omega, None
    with tqdm(total=max_iter, desc="sinkhorn", unit="it", disable=not progress, leave=False) as bar:
        kernel = _ScaledKernel(dots, log_a, log_b, eps) if store else None
        run = _iterate(dots, kernel, log_a, log_b, eps, omega=omega, relax_first=relax_first, tol=tol,
                       max_iter=max_iter, stop_marginal=stop_marginal, bar=bar, history=history)
        if run["status"] == "diverged":
            # Over-relaxation can overshoot into a blow-up; plain Sinkhorn (omega = 1) cannot, so restart
            # from zero potentials with it.
            restart_iteration, run_omega = run["iterations"], 1.0
            warnings.warn(f"Sinkhorn diverged at iteration {restart_iteration} (marginal error {run['error']:.3g}, "
                          f"eps={eps:.3g}, omega={omega}); restarting with omega=1.0", RuntimeWarning, stacklevel=3)
            kernel = _ScaledKernel(dots, log_a, log_b, eps) if store else None
            run = _iterate(dots, kernel, log_a, log_b, eps, omega=1.0, relax_first=False, tol=tol, max_iter=max_iter,
                           stop_marginal=stop_marginal, bar=bar, history=history)
            if run["status"] == "diverged":
                raise GotdConvergenceError(
                    f"Sinkhorn diverged (marginal error {run['error']:.3g}) at eps={eps:.3g} (eps_rel={eps_rel:.3g}) "
                    f"with omega={omega} and again after a restart at omega=1.0; raise eps (e.g. eps_rel=0.1) "
                    "or check the embeddings for rows with extreme values")
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - started
    converged = run["status"] == "converged"
    error, f, g = run["error"], run["f"], run["g"]
    if not converged:
        message = (f"Sinkhorn stopped at max_iter={max_iter} with {stop_marginal}-marginal error {error:.3g} > "
                   f"tol={tol} (eps={eps:.3g}, eps_rel={eps_rel:.3g}, omega={run_omega})")
        if not allow_unconverged:
            raise GotdConvergenceError(message + "; raise max_iter, raise eps or eps_rel, or loosen tol; pass "
                                       "allow_unconverged=True to use the unconverged potentials anyway")
        warnings.warn(message + "; raise max_iter or eps", RuntimeWarning, stacklevel=3)
    diagnostics = {
        "eps": eps, "eps_rel": eps_rel, "eps_scale": eps_scale, "scale": scale["scale"],
        "cost_mean": scale["cost_mean"], "cost_std": scale["cost_std"],
        "max_row_share_pool": scale["max_row_share_pool"], "max_row_share_target": scale["max_row_share_target"],
        "iterations": run["iterations"] + (restart_iteration or 0), "marginal_error": error, "converged": converged,
        "diverged": restart_iteration is not None, "restarted": restart_iteration is not None,
        "restart_iteration": restart_iteration, "tol": tol, "stop_marginal": stop_marginal, "preset": preset,
        "allow_unconverged": allow_unconverged, "seconds": seconds, "path": "stored" if store else "online",
        "device": str(dev), "gemm_dtype": gemm_dtype, "gemm_fp32_output": dots.fp32_out,
        "compile": dots.compile_backend, "compile_error": dots.compile_error, "omega": run_omega,
        "omega_requested": omega, "block_size": bsize, "n": n, "m": m, "d": x.shape[1], "error_history": history,
    }
    if calibration is not None:
        diagnostics["calibration"] = calibration
    return SinkhornResult(f=f.double().cpu().numpy(), g=g.double().cpu().numpy(), diagnostics=diagnostics)


def _is_default(value: Any, default: Any) -> bool:
    """Whether a keyword still holds its default (scalars by value, anything else by identity)."""
    scalar = (int, float, str, bool, type(None))
    return value is default or (isinstance(value, scalar) and isinstance(default, scalar) and value == default)


def sinkhorn(
    pool: Any,
    target: Any,
    *,
    eps: float | None = None,
    eps_rel: float | None = None,
    eps_scale: str = DEFAULT_EPS_SCALE,
    a: Any = None,
    b: Any = None,
    tol: float = DEFAULT_TOL,
    max_iter: int = 10_000,
    omega: float = 1.5,
    stop_marginal: str = "target",
    block_size: int | None = None,
    device: str | torch.device | None = None,
    gemm_dtype: str | None = None,
    path: str = "auto",
    kernel_budget_bytes: int | None = None,
    compile: bool | str | None = None,
    progress: bool = False,
    allow_unconverged: bool = False,
    preset: str | None = None,
) -> SinkhornResult:
    """Solve entropic OT between ``pool`` (n, d) and ``target`` (m, d) with squared Euclidean cost.

    Parameters
    ----------
    pool, target : array-like of float, shapes (n, d) and (m, d)
        Embeddings (numpy arrays of any strides, or torch tensors). Rows are candidates and targets.
    eps : float, optional
        Entropic regularisation in cost units (POT's ``reg``), finite and > 0. Exclusive with ``eps_rel``.
    eps_rel : float, optional
        Regularisation relative to the cost scale: ``eps = eps_rel * scale(C)``. Default 0.05 when neither
        ``eps`` nor ``eps_rel`` is given.
    eps_scale : {"std", "mean", "median"}
        The scale statistic ``eps_rel`` multiplies (see :func:`gotd.ot.cost_scale`). Default ``"std"``,
        the exact std of C; a warning names an outlier row that dominates it ("median" resists one).
    a, b : array-like, optional
        Positive weights of candidates and targets (normalised to sum 1); uniform by default.
    tol : float
        Stop when the L1 error of the marginal named by ``stop_marginal`` is <= tol.
    max_iter : int
        Iteration cap (>= 1). Reaching it raises :class:`gotd.errors.GotdConvergenceError` unless
        ``allow_unconverged=True`` (then ``diagnostics["converged"] = False`` and a warning).
    omega : float
        Over-relaxation factor in [1, 2); 1 is plain Sinkhorn. 1.5 needs ~2.7x fewer iterations. A solve
        whose error grows by ``DIVERGENCE_FACTOR`` over its best is restarted once at omega = 1
        (``diagnostics["restarted"]``); a second divergence raises GotdConvergenceError.
    stop_marginal : {"target", "pool"}
        Which marginal's error ``tol`` bounds: the target's after the candidate update (default), or the
        candidates' after a full iteration (ott-jax's ``threshold``; the ``paper`` preset's rule).
    block_size : int, optional
        Candidate rows per cost block; default keeps a block near 4M entries on CPU, 64M on GPU.
    device : str or torch.device, optional
        As :func:`gotd.devices.resolve_device`. A torch pool already on a device is not copied to the host.
    gemm_dtype : {"float32", "bfloat16", "float16"}, optional
        Precision of the x y^T products only; potentials and log-sum-exps stay float32. Default (None):
        bfloat16 on CUDA devices that support it, float32 elsewhere (see :func:`resolve_gemm_dtype`).
    path : {"auto", "stored", "online"}
        "stored" keeps the cost between iterations (8 n m bytes), "online" recomputes it from a GEMM
        each iteration (O((n + m) d) memory); "auto" stores it when it fits in ``kernel_budget_bytes``.
    kernel_budget_bytes : int, optional
        Largest stored cost the "auto" path keeps in memory (default :func:`default_kernel_budget`).
    compile : bool or str, optional
        ``torch.compile`` the block step (True, or a backend name). Default (None): on for CUDA, off on a
        CPU (see :func:`resolve_compile`). Same maths either way.
    progress : bool
        Show a progress bar over iterations with the current marginal error.
    allow_unconverged : bool
        Return (with a warning) instead of raising when max_iter is reached.
    preset : {"paper"}, optional
        Solver settings of a published procedure (see :mod:`gotd.ot._presets`); here a keyword left at its
        default takes the preset's value, any other value wins. Recorded as ``diagnostics["preset"]``.

    Returns
    -------
    SinkhornResult
        Potentials ``f`` (n,), ``g`` (m,) in cost units, float64 numpy, and diagnostics.
    """
    given = {k: v for k, v in locals().items() if k not in ("pool", "target", "preset")}
    if preset is not None:
        defaults = {k: p.default for k, p in inspect.signature(sinkhorn).parameters.items()}
        explicit = {k: v for k, v in given.items() if not _is_default(v, defaults[k])}
        given = {**given, **resolve_preset(preset, explicit)}
        if "eps_rel" in explicit:
            given["eps"] = None
    return _solve(_as_matrix(pool, "pool"), _as_matrix(target, "target"), preset=preset, **given)
