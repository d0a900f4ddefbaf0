"""The Sinkhorn solve: the iteration loop, its stopping rule, divergence recovery and diagnostics.

The problem and its geometry live in :mod:`gotd.ot._geometry`, one iteration in :mod:`gotd.ot._step`
(log domain) and :mod:`gotd.ot._kernel` (stored-kernel scalings); this module only drives them and
decides when a solve is done, diverged or failed. Its seams follow ott-jax's ``Sinkhorn``: a state
(:class:`SinkhornState`), one step (:meth:`SinkhornLoop.one_iteration`), the tests the driver reads
(:meth:`~SinkhornLoop.converged`, :meth:`~SinkhornLoop.diverged`, :meth:`~SinkhornLoop.exhausted`), the
driver (:func:`_run`), and apart from all of them the recovery policy (:func:`_run_with_restart`). The
settings of a solve travel as one frozen :class:`SolverSettings`.
"""
from __future__ import annotations

import inspect
import math
import time
import warnings
from dataclasses import dataclass, field, replace
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


@dataclass(frozen=True)
class SolverSettings:
    """Every setting of one solve: :func:`sinkhorn`'s keywords less the problem's data (``pool``,
    ``target``, ``a``, ``b``) and ``preset``, plus ``relax_first`` (set by presets only).

    ``eps``, ``eps_rel``, ``eps_scale`` fix the regularisation; ``tol``, ``max_iter``, ``omega``,
    ``stop_marginal``, ``relax_first`` and ``allow_unconverged`` the loop and its stopping rule;
    ``block_size``, ``device``, ``gemm_dtype``, ``path``, ``kernel_budget_bytes``, ``compile`` and
    ``progress`` where and how the cost is computed. Meanings and units as in :func:`sinkhorn`.
    """

    eps: float | None = None
    eps_rel: float | None = None
    eps_scale: str = DEFAULT_EPS_SCALE
    tol: float = DEFAULT_TOL
    max_iter: int = 10_000
    omega: float = 1.5
    stop_marginal: str = "target"
    relax_first: bool = False
    block_size: int | None = None
    device: str | torch.device | None = None
    gemm_dtype: str | None = None
    path: str = "auto"
    kernel_budget_bytes: int | None = None
    compile: bool | str | None = None
    progress: bool = False
    allow_unconverged: bool = False

    def checked(self) -> SolverSettings:
        """These settings with ``tol`` as a float, or a GotdInputError naming the first bad one."""
        if not (isinstance(self.omega, (int, float)) and 1.0 <= self.omega < 2.0):
            raise GotdInputError(f"omega must be in [1, 2) for over-relaxed Sinkhorn to converge, got {self.omega}")
        tol = _positive_finite(self.tol, "tol", "pass an L1 marginal error such as tol=1e-2")
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, (int, np.integer)) or self.max_iter < 1:
            raise GotdInputError(f"max_iter must be an integer >= 1, got {self.max_iter!r}")
        if self.path not in ("auto", "stored", "online"):
            raise GotdInputError(f"path must be 'auto', 'stored' or 'online', got {self.path!r}")
        if self.stop_marginal not in STOP_MARGINALS:
            raise GotdInputError(f"stop_marginal must be 'target' or 'pool', got {self.stop_marginal!r}")
        return replace(self, tol=tol)


@dataclass(frozen=True)
class SinkhornState:
    """The loop's state after ``iteration`` iterations (ott-jax's ``SinkhornState``).

    Attributes
    ----------
    f, g : torch.Tensor
        Potentials in cost units, float32; while ``scaling`` they lag behind the kernel's scalings
        (:meth:`SinkhornLoop.potentials` folds those in).
    iteration : int
        Iterations done (0 at the start, from zero potentials).
    scaling : bool
        Whether the next iteration runs on the stored kernel's scalings (after two log-domain warm-up
        iterations) rather than in the log domain.
    target_error : float
        L1 error of the target marginal measured after this iteration's f update.
    error : float
        The error the stopping rule reads: ``target_error``, or for ``stop_marginal="pool"`` the pool
        marginal's L1 error of the previous iteration's potentials (inf before one is measured).
    best : float
        The lowest ``target_error`` of the iterations before this one (divergence is relative to it).
    previous : tuple or None
        ``(f, g, scalings or None)`` as they were before this iteration: what the pool rule returns, since
        its error measures those potentials.
    """

    f: torch.Tensor
    g: torch.Tensor
    iteration: int = 0
    scaling: bool = False
    target_error: float = math.inf
    error: float = math.inf
    best: float = math.inf
    previous: tuple[torch.Tensor, torch.Tensor, Any] | None = None


@dataclass(frozen=True)
class LoopOutcome:
    """How one run of the loop ended: ``status`` is "converged", "max_iter" or "diverged"."""

    status: str
    iterations: int
    error: float
    f: torch.Tensor
    g: torch.Tensor


class SinkhornLoop:
    """One run of over-relaxed Sinkhorn from zero potentials, split as ott-jax splits it: the step
    (:meth:`one_iteration`) apart from the tests the driver reads (:meth:`converged`, :meth:`diverged`,
    :meth:`exhausted`) and from the output (:meth:`outcome`).

    ``stop_marginal="target"`` stops on the target-marginal error measured after the f update (gotd's
    rule). ``"pool"`` stops on the pool-marginal error of the potentials after a full iteration (ott-jax's
    rule): that error is computed in the next iteration's f update, so the loop runs one measuring pass
    past ``max_iter`` and the outcome is the potentials from before the last update.
    """

    def __init__(self, dots: _BlockDots, kernel: _ScaledKernel | None, log_a: torch.Tensor, log_b: torch.Tensor,
                 eps: float, settings: SolverSettings, *, omega: float, relax_first: bool) -> None:
        self.dots, self.kernel, self.log_a, self.log_b, self.eps = dots, kernel, log_a, log_b, eps
        self.tol, self.max_iter, self.omega, self.relax_first = settings.tol, settings.max_iter, omega, relax_first
        self.pool_rule = settings.stop_marginal == "pool"

    def init_state(self) -> SinkhornState:
        """Zero potentials on the weights' device."""
        n, m = self.log_a.shape[0], self.log_b.shape[0]
        return SinkhornState(f=torch.zeros(n, dtype=torch.float32, device=self.log_a.device),
                             g=torch.zeros(m, dtype=torch.float32, device=self.log_a.device))

    def one_iteration(self, state: SinkhornState) -> SinkhornState:
        """One over-relaxed iteration: on the stored kernel's scalings when they are live, else (and when a
        scaling went non-finite) in the log domain. Updates the stored kernel as a side effect."""
        iteration = state.iteration + 1
        # Relaxing away from the arbitrary zero start only slows the first step down.
        omega = self.omega if (self.relax_first or iteration > 1) else 1.0
        f, g, scaling, kernel = state.f, state.g, state.scaling, self.kernel
        previous = (f, g, kernel.scalings() if scaling else None)
        out = kernel.step(omega, pool_error=self.pool_rule) if scaling else None
        if out is None:
            if scaling:  # a scaling went non-finite: take this iteration in the log domain
                f, g = kernel.potentials(f, g)
            f, g, target_error, pool_error = log_domain_step(self.dots, f, g, self.log_a, self.log_b, self.eps, omega,
                                                             self.pool_rule)
            scaling = False
            if kernel is not None and iteration >= 2:
                kernel.rebuild(f, g)
                scaling = True
        else:
            target_error, pool_error = out
            if kernel.needs_absorbing():
                f, g = kernel.potentials(f, g)
                kernel.rebuild(f, g)
        if self.pool_rule:
            error = pool_error if iteration > 1 else math.inf  # the first pass measures nothing yet
        else:
            error = target_error
        return SinkhornState(f=f, g=g, iteration=iteration, scaling=scaling, target_error=target_error, error=error,
                             best=min(state.best, state.target_error), previous=previous)

    def measured(self, state: SinkhornState) -> bool:
        """Whether ``state.error`` is a measurement (the pool rule's first pass has none)."""
        return not self.pool_rule or state.iteration > 1

    def converged(self, state: SinkhornState) -> bool:
        return state.error <= self.tol

    def diverged(self, state: SinkhornState) -> bool:
        """A non-finite target error, or one ``DIVERGENCE_FACTOR`` times above the best before it."""
        return not math.isfinite(state.target_error) or state.target_error > DIVERGENCE_FACTOR * state.best

    def exhausted(self, state: SinkhornState) -> bool:
        """``max_iter`` iterations done (for the pool rule, and the pass that measured the last one)."""
        return state.iteration > self.max_iter if self.pool_rule else state.iteration >= self.max_iter

    def potentials(self, state: SinkhornState) -> tuple[torch.Tensor, torch.Tensor]:
        """The potentials the stopping rule measured, with the kernel's scalings folded in."""
        if self.pool_rule:
            f, g, scalings = state.previous
            if scalings is not None:
                f, g = f + self.eps * scalings[0], g + self.eps * scalings[1]
            return f, g
        return self.kernel.potentials(state.f, state.g) if state.scaling else (state.f, state.g)

    def outcome(self, state: SinkhornState) -> LoopOutcome:
        """The result of a run that converged or ran out of iterations at ``state``."""
        f, g = self.potentials(state)
        status = "converged" if self.converged(state) else "max_iter"
        iterations = state.iteration - 1 if self.pool_rule else state.iteration
        return LoopOutcome(status, iterations, state.error, f, g)


def _run(loop: SinkhornLoop, bar: Any, history: list[float]) -> LoopOutcome:
    """Iterate ``loop`` until it converges, diverges or runs out of iterations; append each measured
    error to ``history``."""
    state = loop.init_state()
    while True:
        state = loop.one_iteration(state)
        if loop.diverged(state):
            return LoopOutcome("diverged", state.iteration, state.target_error, state.f, state.g)
        if loop.measured(state):
            history.append(state.error)
        if loop.converged(state) or loop.exhausted(state):
            return loop.outcome(state)
        bar.update(1)
        bar.set_postfix(error=f"{state.error:.2e}")


def _run_with_restart(new_loop: Any, settings: SolverSettings, eps: float, eps_rel: float, bar: Any,
                      history: list[float]) -> tuple[LoopOutcome, int | None]:
    """The recovery policy: a run that diverges is restarted once from zero potentials at omega = 1.

    Over-relaxation can overshoot into a blow-up; plain Sinkhorn (omega = 1) cannot. ``new_loop(omega,
    relax_first)`` builds a fresh loop (and stored kernel). Returns the final run and the iteration the
    first run diverged at (None without a restart); a second divergence raises GotdConvergenceError.
    """
    run = _run(new_loop(settings.omega, settings.relax_first), bar, history)
    if run.status != "diverged":
        return run, None
    restart_iteration = run.iterations
    warnings.warn(f"Sinkhorn diverged at iteration {restart_iteration} (marginal error {run.error:.3g}, "
                  f"eps={eps:.3g}, omega={settings.omega}); restarting with omega=1.0", RuntimeWarning, stacklevel=4)
    run = _run(new_loop(1.0, False), bar, history)
    if run.status == "diverged":
        raise GotdConvergenceError(
            f"Sinkhorn diverged (marginal error {run.error:.3g}) at eps={eps:.3g} (eps_rel={eps_rel:.3g}) "
            f"with omega={settings.omega} and again after a restart at omega=1.0; raise eps (e.g. eps_rel=0.1) "
            "or check the embeddings for rows with extreme values")
    return run, restart_iteration


def _solve(x: torch.Tensor, y: torch.Tensor, settings: SolverSettings, *, a: Any = None, b: Any = None,
           preset: str | None = None, scale: dict[str, float] | None = None,
           calibration: str | None = None) -> SinkhornResult:
    """:func:`sinkhorn` on checked matrices with the preset already resolved into ``settings``.

    ``scale`` is a precomputed :func:`cost_scale` result (the full pool's, when solving on a subsample);
    ``calibration`` is the preset's, recorded only (the caller applies it).
    """
    _check_dims(x, y)
    n, m = x.shape[0], y.shape[0]
    settings = settings.checked()
    eps_scale, omega = settings.eps_scale, settings.omega

    dev = resolve_device(settings.device)
    gemm_dtype = resolve_gemm_dtype(settings.gemm_dtype, dev)
    backend = resolve_compile(settings.compile, dev)
    if scale is None:
        scale = cost_scale(x, y, eps_scale)
    relative = settings.eps is None
    eps, eps_rel = resolve_eps(settings.eps, settings.eps_rel, scale["scale"])
    if relative and eps_scale == "std" and \
            max(scale["max_row_share_pool"], scale["max_row_share_target"]) > ROW_SHARE_WARNING:
        side = "pool" if scale["max_row_share_pool"] >= scale["max_row_share_target"] else "target"
        share = max(scale["max_row_share_pool"], scale["max_row_share_target"])
        warnings.warn(f"one {side} row accounts for {share:.0%} of the variance of the cost, so eps = eps_rel x std(C) "
                      f"is set by that outlier (eps={eps:.3g}); check that row, or pass eps_scale='median' or an "
                      "absolute eps", RuntimeWarning, stacklevel=3)
    log_a = check_weights(a, n, "a").log().to(dev, torch.float32)
    log_b = check_weights(b, m, "b").log().to(dev, torch.float32)
    bsize = _pick_block_size(n, m, dev, settings.block_size)
    # The stored path keeps the scaled products and the stabilised kernel: 8 bytes per entry.
    kernel_budget_bytes = settings.kernel_budget_bytes
    if kernel_budget_bytes is None:
        kernel_budget_bytes = default_kernel_budget(dev)
    store = settings.path == "stored" or (settings.path == "auto" and 8 * n * m <= kernel_budget_bytes)

    started = time.perf_counter()
    dots = _BlockDots(x, y, eps=eps, device=dev, gemm_dtype=_DTYPES[gemm_dtype], block_size=bsize, store=store,
                      compile_backend=backend)

    def new_loop(run_omega: float, relax_first: bool) -> SinkhornLoop:
        kernel = _ScaledKernel(dots, log_a, log_b, eps) if store else None
        return SinkhornLoop(dots, kernel, log_a, log_b, eps, settings, omega=run_omega, relax_first=relax_first)

    history: list[float] = []
    with tqdm(total=settings.max_iter, desc="sinkhorn", unit="it", disable=not settings.progress, leave=False) as bar:
        run, restart_iteration = _run_with_restart(new_loop, settings, eps, eps_rel, bar, history)
    run_omega = omega if restart_iteration is None else 1.0
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - started
    converged = run.status == "converged"
    error, f, g = run.error, run.f, run.g
    tol, max_iter, stop_marginal = settings.tol, settings.max_iter, settings.stop_marginal
    if not converged:
        message = (f"Sinkhorn stopped at max_iter={max_iter} with {stop_marginal}-marginal error {error:.3g} > "
                   f"tol={tol} (eps={eps:.3g}, eps_rel={eps_rel:.3g}, omega={run_omega})")
        if not settings.allow_unconverged:
            raise GotdConvergenceError(message + "; raise max_iter, raise eps or eps_rel, or loosen tol; pass "
                                       "allow_unconverged=True to use the unconverged potentials anyway")
        warnings.warn(message + "; raise max_iter or eps", RuntimeWarning, stacklevel=3)
    diagnostics = {
        "eps": eps, "eps_rel": eps_rel, "eps_scale": eps_scale, "scale": scale["scale"],
        "cost_mean": scale["cost_mean"], "cost_std": scale["cost_std"],
        "max_row_share_pool": scale["max_row_share_pool"], "max_row_share_target": scale["max_row_share_target"],
        "iterations": run.iterations + (restart_iteration or 0), "marginal_error": error, "converged": converged,
        "diverged": restart_iteration is not None, "restarted": restart_iteration is not None,
        "restart_iteration": restart_iteration, "tol": tol, "stop_marginal": stop_marginal, "preset": preset,
        "allow_unconverged": settings.allow_unconverged, "seconds": seconds, "path": "stored" if store else "online",
        "device": str(dev), "gemm_dtype": gemm_dtype, "gemm_fp32_output": dots.fp32_out,
        "compile": dots.compile_backend, "compile_error": dots.compile_error, "omega": run_omega,
        "omega_requested": omega, "block_size": bsize, "n": n, "m": m, "d": x.shape[1], "error_history": history,
    }
    if calibration is not None:
        diagnostics["calibration"] = calibration
    return SinkhornResult(f=f.double().cpu().numpy(), g=g.double().cpu().numpy(), diagnostics=diagnostics)


def solve_options(options: dict[str, Any]) -> tuple[SolverSettings, Any, Any]:
    """Split flat keyword options (as :func:`sinkhorn` takes them, presets resolved) into the settings and
    the weights ``a``, ``b``."""
    settings = {k: v for k, v in options.items() if k not in ("a", "b")}
    return SolverSettings(**settings), options.get("a"), options.get("b")


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
    calibration = given.pop("calibration", None)  # the preset's, recorded in the diagnostics
    settings, a, b = solve_options(given)
    return _solve(_as_matrix(pool, "pool"), _as_matrix(target, "target"), settings, a=a, b=b, preset=preset,
                  calibration=calibration)
