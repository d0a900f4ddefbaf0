"""Entropic optimal transport between a candidate pool and a target set, and GOT-D's gradients.

The problem solved is, for candidates :math:`x_1..x_n` (weights :math:`a`, uniform by default) and
targets :math:`y_1..y_m` (weights :math:`b`) with the squared Euclidean cost
:math:`C_{ij} = \\|x_i - y_j\\|^2`,

.. math::

    \\mathrm{OT}_\\varepsilon(a, b) = \\min_{P \\in \\Pi(a, b)} \\langle P, C \\rangle
        + \\varepsilon \\, \\mathrm{KL}(P \\,\\|\\, a \\otimes b),

whose dual potentials :math:`f \\in \\mathbb{R}^n, g \\in \\mathbb{R}^m` (in cost units) give the optimal plan
:math:`P_{ij} = a_i b_j \\exp((f_i + g_j - C_{ij}) / \\varepsilon)` and the gradient
:math:`\\partial \\mathrm{OT}_\\varepsilon / \\partial a_i = f_i` (Feydy et al. 2019; Just et al. 2023, LAVA).
``eps`` is the same quantity as POT's ``reg``: an absolute value in cost units. ``eps_rel`` states it
relative to the cost scale, ``eps = eps_rel * std(C)``, with ``std(C)`` computed exactly over all n x m
pairs from moments of the embeddings (no sampling).

The solver is log-domain Sinkhorn with over-relaxation (Thibault et al. 2017), run over row blocks of the
cost. Each iteration is one pass over the cost: a block's cost comes from one GEMM
(:math:`C = \\|x\\|^2 + \\|y\\|^2 - 2 x y^\\top`), updates the block's candidate potentials, and contributes its
column log-sum-exp to the target update and to the target-marginal error used to stop. Memory is
O((n + m) d) on the online path; when the n x m cost fits in ``kernel_budget_bytes`` it is kept between
iterations instead of recomputed (the "stored" path, faster on a CPU).

References
----------
Kang et al., "Get more for less: principled data selection for warming up fine-tuning in LLMs", ICLR 2024.
Just et al., "LAVA: data valuation without pre-specified learning algorithms", ICLR 2023.
Thibault, Chizat, Dossal, Papadakis, "Overrelaxed Sinkhorn-Knopp algorithm for regularized optimal
transport", 2017.
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from gotd.errors import GotdInputError

DEFAULT_EPS_REL = 0.05
"""Default entropic regularisation relative to the cost scale: eps = 0.05 * std(C)."""

DEFAULT_TOL = 1e-2
"""Default stop: L1 error of the target marginal; 1e-2 already reproduces the converged top 5% and 1%."""

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}


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
        eps, eps_rel (= eps / std(C)), cost_mean, cost_std, iterations, marginal_error (L1 error of the
        target marginal at the last iteration), converged, tol, seconds, path, device, gemm_dtype, omega,
        block_size, n, m, d and the per-iteration ``error_history``.
    """

    f: np.ndarray
    g: np.ndarray
    diagnostics: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------
# inputs and cost statistics
# ---------------------------------------------------------------------------------------------------


_ROW_CHUNK = 1 << 14
"""Rows converted or reduced at a time, so that no float64 copy of a large pool is ever made."""


def _as_matrix(x: Any, name: str) -> torch.Tensor:
    """Return ``x`` as a checked 2-D float32/float64 tensor (no copy when it already is one).

    A torch tensor stays on its device, so that a pool already on the GPU is never copied to the host;
    anything else becomes a CPU tensor.
    """
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            t = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError) as exc:
            raise GotdInputError(f"{name}: expected a numeric (n, d) array, got {type(x).__name__} ({exc})") from None
    if t.dtype not in (torch.float32, torch.float64):
        if t.dtype.is_complex or t.dtype == torch.bool or not (t.dtype.is_floating_point or t.dtype in
                                                              (torch.int8, torch.int16, torch.int32, torch.int64,
                                                               torch.uint8)):
            raise GotdInputError(f"{name}: expected real numbers, got dtype {t.dtype}")
        t = t.to(torch.float32)
    if t.ndim != 2:
        raise GotdInputError(f"{name}: expected a 2-D array (rows, features), got shape {tuple(t.shape)}; "
                             "reshape it or embed the texts first")
    if t.shape[0] == 0:
        raise GotdInputError(f"{name}: has no rows; pass at least one embedding")
    for start in range(0, t.shape[0], _ROW_CHUNK):
        finite = torch.isfinite(t[start:start + _ROW_CHUNK]).all(dim=1)
        if not bool(finite.all()):
            bad = start + int((~finite).nonzero()[0, 0])
            raise GotdInputError(f"{name}: row {bad} holds NaN or infinite values; drop or re-embed that row")
    return t


def _centred_moments(x: torch.Tensor, centre: torch.Tensor) -> dict[str, torch.Tensor]:
    """Float64 means over the rows of ``c = x - centre``: c, c c^T, p = |c|^2, p^2 and p c (chunked)."""
    d = x.shape[1]
    centre = centre.to(x.device)
    acc = {name: torch.zeros(shape, dtype=torch.float64, device=x.device)
           for name, shape in (("c", (d,)), ("cc", (d, d)), ("p", ()), ("pp", ()), ("pc", (d,)))}
    for start in range(0, x.shape[0], _ROW_CHUNK):
        c = x[start:start + _ROW_CHUNK].double() - centre
        p = (c * c).sum(1)
        acc["c"] += c.sum(0)
        # The d x d product is the only O(n d^2) step: for float32 embeddings a float32 GEMM per chunk
        # (summed in float64) keeps the input's precision at a fraction of the float64 cost.
        c_gemm = c.to(x.dtype)
        acc["cc"] += (c_gemm.T @ c_gemm).double()
        acc["p"] += p.sum()
        acc["pp"] += (p * p).sum()
        acc["pc"] += (p[:, None] * c).sum(0)
    return {k: (v / x.shape[0]).cpu() for k, v in acc.items()}


def _as_weights(w: Any, n: int, name: str) -> torch.Tensor:
    """Return probability weights of length n (uniform when ``w`` is None), normalised to sum 1."""
    if w is None:
        return torch.full((n,), 1.0 / n, dtype=torch.float64)
    t = torch.as_tensor(np.asarray(w, dtype=np.float64))
    if t.shape != (n,):
        raise GotdInputError(f"{name}: expected {n} weights, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all() or (t <= 0).any():
        raise GotdInputError(f"{name}: weights must be finite and > 0; drop zero-weight rows instead")
    return t / t.sum()


def cost_moments(pool: Any, target: Any) -> tuple[float, float]:
    """Exact mean and standard deviation of the squared Euclidean cost over all n x m pairs.

    With :math:`p_i = \\|x_i\\|^2`, :math:`q_j = \\|y_j\\|^2`, :math:`s_{ij} = x_i^\\top y_j` and
    :math:`C = p + q - 2s`, every moment is a mean over one side only, e.g.
    :math:`\\mathbb{E}[s^2] = \\mathrm{tr}(\\Sigma_x \\Sigma_y)` with second-moment matrices
    :math:`\\Sigma_x = X^\\top X / n`; the cost costs O((n + m) d^2), not O(n m d).

    Returns
    -------
    (mean, std) : tuple of float
        In cost units (squared embedding distance).
    """
    x = _as_matrix(pool, "pool")
    y = _as_matrix(target, "target")
    _check_dims(x, y)
    # Centre on the target mean: distances are unchanged and the moments lose less precision.
    centre = y.double().mean(dim=0)
    mx, my = _centred_moments(x, centre), _centred_moments(y, centre)
    mean = mx["p"] + my["p"] - 2 * mx["c"] @ my["c"]
    e_ss = (mx["cc"] * my["cc"]).sum()
    second = (mx["pp"] + my["pp"] + 4 * e_ss + 2 * mx["p"] * my["p"]
              - 4 * mx["pc"] @ my["c"] - 4 * mx["c"] @ my["pc"])
    var = max(float(second - mean * mean), 0.0)
    return float(mean), math.sqrt(var)


def _check_dims(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape[1] != y.shape[1]:
        raise GotdInputError(f"pool has {x.shape[1]} features but target has {y.shape[1]}; "
                             "embed both with the same encoder")


def resolve_eps(eps: float | None, eps_rel: float | None, cost_std: float) -> tuple[float, float]:
    """Return (eps, eps_rel) from an absolute ``eps`` or a relative ``eps_rel`` (at most one given).

    With neither, ``eps_rel = DEFAULT_EPS_REL``.
    """
    if eps is not None and eps_rel is not None:
        raise GotdInputError("give either eps (absolute, cost units) or eps_rel (relative to std of the cost), not both")
    if cost_std <= 0:
        if eps is None:
            raise GotdInputError("every pool-target distance is the same (std of the cost is 0); "
                                 "eps_rel is undefined: pass an absolute eps or check the embeddings")
        return float(eps), math.inf
    if eps is None:
        eps_rel = DEFAULT_EPS_REL if eps_rel is None else float(eps_rel)
        if not eps_rel > 0:
            raise GotdInputError(f"eps_rel must be > 0, got {eps_rel}")
        return eps_rel * cost_std, eps_rel
    if not float(eps) > 0:
        raise GotdInputError(f"eps must be > 0, got {eps}")
    return float(eps), float(eps) / cost_std


# ---------------------------------------------------------------------------------------------------
# the block solver
# ---------------------------------------------------------------------------------------------------


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@functools.lru_cache(maxsize=None)
def _fp32_output_gemm_available(device: torch.device) -> bool:
    """Whether ``torch.mm(a, b, out_dtype=torch.float32)`` runs for bf16 inputs on ``device``.

    CUDA builds of recent torch have it: the products are then rounded once, to float32, instead of to
    bf16 (8 significant bits) before being scaled by 2 / eps. CPU builds do not.
    """
    if device.type != "cuda":
        return False
    try:
        probe = torch.ones(2, 2, dtype=torch.bfloat16, device=device)
        return torch.mm(probe, probe, out_dtype=torch.float32).dtype == torch.float32
    except (TypeError, RuntimeError, NotImplementedError):
        return False


def _products_fp32(rows: torch.Tensor, y_t: torch.Tensor, fp32_out: bool) -> torch.Tensor:
    """``rows @ y_t`` as float32: accumulated and returned in float32 when ``fp32_out``, else cast after."""
    if fp32_out:
        return torch.mm(rows, y_t, out_dtype=torch.float32)
    return (rows @ y_t).float()


class _BlockDots:
    """Scaled inner products ``2 x_i^T y_j / eps`` by row blocks, recomputed from a GEMM or stored.

    The squared Euclidean cost splits as ``C_ij = p_i + q_j - 2 x_i^T y_j`` with ``p = ||x||^2``,
    ``q = ||y||^2``. In a row log-sum-exp the ``p_i`` term is a constant and in a column log-sum-exp the
    ``q_j`` term is, so the solver only ever needs the scaled products plus per-row and per-column vectors:
    one fused ``addmm`` a block on the online path.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, *, eps: float, device: torch.device,
                 gemm_dtype: torch.dtype, block_size: int, store: bool, compile_backend: str | None = None) -> None:
        # Centring on the target mean keeps the products small, which keeps a low-precision GEMM accurate.
        centre = y.double().mean(dim=0)
        self.x, self.p = self._centred(x, centre, device, gemm_dtype)
        y_c, self.q = self._centred(y, centre, device, gemm_dtype)
        self.y_t = y_c.T.contiguous()
        self.scale = 2.0 / eps
        self.n, self.m = x.shape[0], y.shape[0]
        self.block_size = block_size
        self.starts = list(range(0, self.n, block_size))
        # Low-precision products come out in float32 directly where the device can (see below).
        self.fp32_out = gemm_dtype != torch.float32 and _fp32_output_gemm_available(torch.device(device))
        self._buffer: torch.Tensor | None = None
        self._stored: list[torch.Tensor] | None = None
        if store:
            self._stored = [self._products(s) for s in self.starts]
        # The compiled block functions take eps and the scale as 0-d tensors, so that a new eps is new data
        # for the compiled graph rather than a reason to recompile it.
        self.compile_backend = compile_backend
        self.compile_error: str | None = None
        self._eps_t = torch.tensor(eps, dtype=torch.float32, device=device)
        self._scale_t = torch.tensor(self.scale, dtype=torch.float32, device=device)

    @staticmethod
    def _centred(x: torch.Tensor, centre: torch.Tensor, device: torch.device, dtype: torch.dtype
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x - centre`` in ``dtype`` on ``device`` and its float32 squared norms, built in row chunks."""
        out = torch.empty(x.shape, dtype=dtype, device=device)
        norms = torch.empty(x.shape[0], dtype=torch.float32, device=device)
        centre = centre.to(x.device)
        for start in range(0, x.shape[0], _ROW_CHUNK):
            c = x[start:start + _ROW_CHUNK].double() - centre
            norms[start:start + c.shape[0]] = (c * c).sum(1).to(device, torch.float32)
            out[start:start + c.shape[0]] = c.to(device, dtype)
        return out, norms

    def _products(self, start: int) -> torch.Tensor:
        rows = self.x[start:start + self.block_size]
        return _products_fp32(rows, self.y_t, self.fp32_out).mul_(self.scale)

    def _block_buffer(self, rows: int) -> torch.Tensor:
        """The one float32 (block_size, m) buffer every block is written into, cut to ``rows`` rows.

        A fresh block tensor per block (16 MB each on a CPU) made glibc's adaptive mmap threshold move
        them onto the heap, which then grew by ~2 GiB at N = 1e6, M = 1e3; one reused buffer does not.
        """
        if self._buffer is None:
            self._buffer = torch.empty((self.block_size, self.m), dtype=torch.float32, device=self.x.device)
        return self._buffer[:rows]

    def block_plus(self, k: int, column_shift: torch.Tensor) -> torch.Tensor:
        """``2 x_i^T y_j / eps + column_shift_j`` for the rows of block k, float32 (rows, m).

        The result lives in a buffer shared by all blocks: it is valid until the next call.
        """
        if self._stored is not None:
            stored = self._stored[k]
            return torch.add(stored, column_shift[None, :], out=self._block_buffer(stored.shape[0]))
        start = self.starts[k]
        rows = self.x[start:start + self.block_size]
        out = self._block_buffer(rows.shape[0])
        if rows.dtype == torch.float32:
            return torch.addmm(column_shift[None, :], rows, self.y_t, alpha=self.scale, out=out)
        return out.copy_(_products_fp32(rows, self.y_t, self.fp32_out)).mul_(self.scale).add_(column_shift[None, :])

    def compiled_sweep_block(self, k: int, shift: torch.Tensor, f_rows: torch.Tensor, log_a_rows: torch.Tensor,
                             omega: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Block k of :func:`_sweep` by the compiled functional step: (new f rows, column LSE part, floor)."""
        start = self.starts[k]
        p_rows = self.p[start:start + self.block_size]
        if self._stored is not None:
            step = _compiled("stored_sweep", self.compile_backend)
            return step(self._stored[k], shift, p_rows, f_rows, log_a_rows, self._eps_t, omega)
        step = _compiled("online_sweep", self.compile_backend)
        rows = self.x[start:start + self.block_size]
        return step(rows, self.y_t, self._scale_t, shift, p_rows, f_rows, log_a_rows, self._eps_t, omega,
                    self.fp32_out)

    def compiled_row_potential(self, k: int, shift: torch.Tensor) -> torch.Tensor:
        """Block k's c-transform ``p_i - eps LSE_j(2 x_i^T y_j / eps + shift_j)`` by the compiled step."""
        start = self.starts[k]
        rows = self.x[start:start + self.block_size]
        step = _compiled("online_potential", self.compile_backend)
        return step(rows, self.y_t, self._scale_t, shift, self.p[start:start + self.block_size], self._eps_t,
                    self.fp32_out)

    def disable_compile(self, error: Exception) -> None:
        """Fall back to the eager block step after the compiled one failed (with a warning naming why)."""
        import warnings

        warnings.warn(f"torch.compile of the Sinkhorn block step failed ({type(error).__name__}: "
                      f"{str(error).splitlines()[0] if str(error) else ''}); continuing with the eager step. "
                      "Pass compile=False to skip the attempt.", RuntimeWarning, stacklevel=4)
        self.compile_error = f"{type(error).__name__}: {error}"[:500]
        self.compile_backend = None

    def columns(self, k: int, cols: torch.Tensor) -> torch.Tensor:
        """``2 x_i^T y_j / eps`` for the rows of block k and the target columns ``cols`` only."""
        if self._stored is not None:
            return self._stored[k][:, cols]
        start = self.starts[k]
        rows = self.x[start:start + self.block_size]
        return _products_fp32(rows, self.y_t[:, cols], self.fp32_out).mul_(self.scale)


def _row_step(dots: _BlockDots, k: int, shift: torch.Tensor, eps: float
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sinkhorn update of block k's candidate potentials.

    With ``shift_j = (g_j - q_j) / eps + log b_j`` the update
    ``f_i = -eps log sum_j b_j exp((g_j - C_ij) / eps)`` becomes
    ``f_i = p_i - eps * LSE_j(2 x_i^T y_j / eps + shift_j)``.

    Returns
    -------
    f_hat : (rows,) the updated potentials, cost units.
    weights : (rows, m) ``exp(Z_ij - max_j Z_ij)``, reused by the column step (overwrites Z in place).
    row_max : (rows,) ``max_j Z_ij``.
    """
    z = dots.block_plus(k, shift)
    row_max = z.amax(dim=1)
    weights = z.sub_(row_max[:, None]).exp_()
    start = dots.starts[k]
    p = dots.p[start:start + z.shape[0]]
    f_hat = p - eps * (row_max + weights.sum(dim=1).log())
    return f_hat, weights, row_max


def _relax(old: torch.Tensor, new: torch.Tensor, omega: float) -> torch.Tensor:
    """Over-relaxed step ``(1 - omega) old + omega new`` (plain Sinkhorn when omega is 1)."""
    return new if omega == 1.0 else torch.lerp(old, new, omega)


# ---------------------------------------------------------------------------------------------------
# the block step in functional form, for torch.compile
# ---------------------------------------------------------------------------------------------------
# The eager functions above overwrite their temporaries in place, which is what keeps a CPU fast and its
# memory low. A compiled graph wants the same maths without in-place updates or host synchronisation:
# inductor then fuses the scale, shift, max, exp and sums of a block into a few kernels around the GEMM.


def _functional_block_tail(z: torch.Tensor, p_rows: torch.Tensor, f_rows: torch.Tensor, log_a_rows: torch.Tensor,
                           eps: torch.Tensor, omega: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """From ``Z = 2 x y^T / eps + shift``: the relaxed new f rows, the block's column LSE part and its floor.

    Same maths as one block of :func:`_sweep` (see there).
    """
    row_max = z.amax(dim=1)
    weights = torch.exp(z - row_max[:, None])
    f_hat = p_rows - eps * (row_max + weights.sum(dim=1).log())
    f_new = _relax(f_rows, f_hat, omega)
    v = row_max + (f_new - p_rows) / eps + log_a_rows
    v_max = v.max()
    part = torch.log(weights.T @ torch.exp(v - v_max)) + v_max
    return f_new, part, v_max


def _functional_online_sweep(rows: torch.Tensor, y_t: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
                             p_rows: torch.Tensor, f_rows: torch.Tensor, log_a_rows: torch.Tensor,
                             eps: torch.Tensor, omega: float, fp32_out: bool = False
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    z = _products_fp32(rows, y_t, fp32_out) * scale + shift[None, :]
    return _functional_block_tail(z, p_rows, f_rows, log_a_rows, eps, omega)


def _functional_stored_sweep(products: torch.Tensor, shift: torch.Tensor, p_rows: torch.Tensor,
                             f_rows: torch.Tensor, log_a_rows: torch.Tensor, eps: torch.Tensor,
                             omega: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _functional_block_tail(products + shift[None, :], p_rows, f_rows, log_a_rows, eps, omega)


def _functional_online_potential(rows: torch.Tensor, y_t: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
                                 p_rows: torch.Tensor, eps: torch.Tensor, fp32_out: bool = False) -> torch.Tensor:
    z = _products_fp32(rows, y_t, fp32_out) * scale + shift[None, :]
    row_max = z.amax(dim=1)
    return p_rows - eps * (row_max + torch.exp(z - row_max[:, None]).sum(dim=1).log())


_FUNCTIONAL_STEPS = {
    "online_sweep": _functional_online_sweep,
    "stored_sweep": _functional_stored_sweep,
    "online_potential": _functional_online_potential,
}


@functools.lru_cache(maxsize=None)
def _compiled(name: str, backend: str | None) -> Any:
    """The functional step ``name`` compiled with ``backend`` (the plain function when backend is None).

    Compiled once per process and backend; torch.compile itself recompiles when the block shape changes
    (the last, shorter block) and then treats the row count as dynamic.
    """
    fn = _FUNCTIONAL_STEPS[name]
    if backend is None:
        return fn
    return torch.compile(fn, backend=backend, fullgraph=True)


def resolve_compile(compile: bool | str | None, device: torch.device) -> str | None:
    """The torch.compile backend for the block step, or None for the eager step.

    None (auto) compiles on CUDA, where fusing the exponentials and reductions around the GEMM saves
    memory traffic, and not on a CPU, where the eager in-place step is already memory-lean and a first
    compilation costs seconds to minutes. True means the default backend ``"inductor"``; a string names a
    backend (e.g. ``"aot_eager"`` to check tracing without code generation).
    """
    if compile is None:
        compile = device.type == "cuda"
    if compile is False:
        return None
    backend = "inductor" if compile is True else compile
    if not isinstance(backend, str):
        raise GotdInputError(f"compile must be True, False, None (auto) or a torch.compile backend name, got {compile!r}")
    available = set(torch._dynamo.list_backends(exclude_tags=()))
    if backend not in available:
        raise GotdInputError(f"compile={backend!r} is not a torch.compile backend; use one of {sorted(available)}")
    return backend


KERNEL_BUDGET_CAP_BYTES = 4 << 30


def available_memory_bytes(device: torch.device) -> int | None:
    """Free memory on ``device`` in bytes: CUDA's free memory, or Linux's MemAvailable; None if unknown."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def default_kernel_budget(device: torch.device) -> int:
    """Largest stored cost the "auto" path keeps: half the free memory, at most 4 GiB (bytes).

    The stored path is the faster one on a CPU (two mat-vecs an iteration instead of a GEMM and an
    exponential per entry), and POT's dense solver needs ~48 bytes per entry against its 8, so this keeps
    it wherever POT would fit; the cap keeps N = 1e6, M = 1e3 (8 GB stored) on the online path.
    """
    free = available_memory_bytes(device)
    return KERNEL_BUDGET_CAP_BYTES if free is None else int(min(KERNEL_BUDGET_CAP_BYTES, free // 2))


def resolve_gemm_dtype(gemm_dtype: str | None, device: torch.device) -> str:
    """The precision of the cost products: bfloat16 on CUDA devices that support it, float32 elsewhere.

    Potentials, log-sum-exps and marginals stay float32 whatever this is; the products are taken after
    centring on the target mean, which keeps their bfloat16 rounding error small next to eps.
    """
    if gemm_dtype is None:
        if device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return "bfloat16"
        return "float32"
    if gemm_dtype not in ("float32", "bfloat16", "float16"):
        raise GotdInputError(f"gemm_dtype must be float32, bfloat16 or float16 (or None for auto), got {gemm_dtype!r}")
    return gemm_dtype


def _sweep(dots: _BlockDots, f: torch.Tensor, shift: torch.Tensor, log_a: torch.Tensor, eps: float,
           omega: float) -> torch.Tensor:
    """One pass over the cost: update ``f`` in place, return ``lse_j = log sum_i a_i exp((f_i - C_ij)/eps)``.

    The column sums reuse the row step's weights ``W_ij = exp(Z_ij - max_j Z_ij)``:
    ``sum_i a_i exp((f_i - C_ij)/eps) = exp(-shift_j - q_j/eps) sum_i W_ij exp(v_i)`` with
    ``v_i = max_j Z_ij + (f_i - p_i)/eps + log a_i``, a matrix-vector product instead of a second
    exponential per entry. Columns where that product may have underflowed are recomputed exactly.
    """
    parts, floors = [], []
    for k, start in enumerate(dots.starts):
        if dots.compile_backend is not None:
            rows = slice(start, start + dots.block_size)
            try:
                f_new, part, v_max = dots.compiled_sweep_block(k, shift, f[rows], log_a[rows], omega)
            except Exception as exc:  # noqa: BLE001 - a compiler failure must not lose the solve
                dots.disable_compile(exc)
            else:
                f[rows] = f_new
                parts.append(part)
                floors.append(v_max)
                continue
        f_hat, weights, row_max = _row_step(dots, k, shift, eps)
        rows = slice(start, start + weights.shape[0])
        f[rows] = _relax(f[rows], f_hat, omega)
        v = row_max + (f[rows] - dots.p[rows]) / eps + log_a[rows]
        v_max = v.max()
        parts.append(torch.log(weights.T @ torch.exp(v - v_max)) + v_max)
        floors.append(v_max)
    col = torch.logsumexp(torch.stack(parts), dim=0)
    # A block's terms below ~1e-38 relative to exp(v_max) are lost to float32 underflow; where the column
    # total is not far above that floor, recompute the column exactly.
    floor = torch.logsumexp(torch.stack(floors), dim=0) + math.log(dots.block_size) - 87.0
    suspect = ~(col - floor > 20.0)
    if bool(suspect.any()):
        col[suspect] = _exact_columns(dots, f, log_a, eps, suspect.nonzero().squeeze(1)) + shift[suspect]
    return col - shift - dots.q / eps


def _log_domain_step(dots: _BlockDots, f: torch.Tensor, g: torch.Tensor, log_a: torch.Tensor,
                     log_b: torch.Tensor, eps: float, omega: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """One over-relaxed log-domain iteration; return the new f, g and the target-marginal L1 error.

    The error is measured after the f update and before the g update, like the scaling path's.
    """
    f = f.clone()
    shift = (g - dots.q) / eps + log_b
    lse = _sweep(dots, f, shift, log_a, eps, omega)
    # lse_j = log sum_i a_i exp((f_i - C_ij) / eps): the target marginal under the current g is
    # b_j exp(g_j / eps + lse_j), and the Sinkhorn update is g_j = -eps lse_j. Float64 keeps the error
    # finite while the first iterations are still far off.
    b_prob = log_b.exp().double()
    marginal = b_prob * torch.exp((g / eps + lse).double().clamp(max=700.0))
    error = float((marginal - b_prob).abs().sum())
    if bool(torch.isnan(f).any()):
        error = math.nan
    return f, _relax(g, -eps * lse, omega), error


def _exact_columns(dots: _BlockDots, f: torch.Tensor, log_a: torch.Tensor, eps: float,
                   cols: torch.Tensor) -> torch.Tensor:
    """``LSE_i(2 x_i^T y_j / eps + (f_i - p_i)/eps + log a_i)`` for the columns ``cols``, exactly."""
    parts = []
    for k, start in enumerate(dots.starts):
        block = dots.columns(k, cols)
        rows = slice(start, start + block.shape[0])
        u = (f[rows] - dots.p[rows]) / eps + log_a[rows]
        parts.append(torch.logsumexp(block + u[:, None], dim=0))
    return torch.logsumexp(torch.stack(parts), dim=0)


class _ScaledKernel:
    """Sinkhorn by matrix-vector products on a stored, stabilised kernel (Schmitzer 2019).

    Holds ``K_ij = exp((f_i + g_j - C_ij) / eps)`` for fixed potentials f, g and iterates only the
    scalings ``alpha, beta``, so that the plan is ``a_i b_j K_ij alpha_i beta_j``: two mat-vecs an
    iteration instead of an exponential per entry. When a scaling leaves ``[e^-limit, e^limit]`` it is
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
        for k, start in enumerate(dots.starts):
            rows = slice(start, start + dots.block_size)
            row = (f[rows] - dots.p[rows]) / eps
            products = dots._stored[k]
            if fresh:
                self.blocks.append(torch.empty_like(products))
            torch.add(products, row[:, None], out=self.blocks[k]).add_(column[None, :]).exp_()
        self.log_alpha.zero_()
        self.log_beta.zero_()

    def step(self, omega: float) -> float | None:
        """One over-relaxed iteration; return the target-marginal L1 error before the beta update.

        Returns None (and changes nothing) when a scaling would be non-finite: the caller falls back to a
        log-domain step.
        """
        dots = self.dots
        beta_b = self.b * self.log_beta.exp()
        log_alpha = torch.empty_like(self.log_alpha)
        for k, start in enumerate(dots.starts):
            rows = slice(start, start + dots.block_size)
            log_alpha[rows] = torch.lerp(self.log_alpha[rows], -torch.log(self.blocks[k] @ beta_b), omega)
        weights = self.a * log_alpha.exp()
        column = sum(self.blocks[k].T @ weights[start:start + dots.block_size] for k, start in enumerate(dots.starts))
        log_beta = torch.lerp(self.log_beta, -torch.log(column), omega)
        if not (bool(torch.isfinite(log_alpha).all()) and bool(torch.isfinite(log_beta).all())):
            return None
        marginal = (self.b * self.log_beta.exp() * column).double()
        self.log_alpha, self.log_beta = log_alpha, log_beta
        return float((marginal - self.b.double()).abs().sum())

    def needs_absorbing(self) -> bool:
        return bool(self.log_alpha.abs().max() > self.limit or self.log_beta.abs().max() > self.limit)

    def potentials(self, f: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The full potentials ``f + eps log alpha``, ``g + eps log beta``."""
        return f + self.eps * self.log_alpha, g + self.eps * self.log_beta


def _pick_block_size(n: int, m: int, device: torch.device, block_size: int | None) -> int:
    if block_size is not None:
        if block_size < 1:
            raise GotdInputError(f"block_size must be >= 1, got {block_size}")
        return int(block_size)
    # ~4M cost entries a block keeps CPU temporaries in cache; GPUs want bigger GEMMs.
    entries = (1 << 26) if device.type == "cuda" else (1 << 22)
    return int(max(1, min(n, entries // max(m, 1))))


def sinkhorn(
    pool: Any,
    target: Any,
    *,
    eps: float | None = None,
    eps_rel: float | None = None,
    a: Any = None,
    b: Any = None,
    tol: float = DEFAULT_TOL,
    max_iter: int = 10_000,
    omega: float = 1.5,
    block_size: int | None = None,
    device: str | torch.device | None = None,
    gemm_dtype: str | None = None,
    path: str = "auto",
    kernel_budget_bytes: int | None = None,
    compile: bool | str | None = None,
    progress: bool = False,
) -> SinkhornResult:
    """Solve entropic OT between ``pool`` (n, d) and ``target`` (m, d) with squared Euclidean cost.

    Parameters
    ----------
    pool, target : array-like of float, shapes (n, d) and (m, d)
        Embeddings (numpy or torch). Rows are candidates and target samples.
    eps : float, optional
        Entropic regularisation in cost units (POT's ``reg``). Mutually exclusive with ``eps_rel``.
    eps_rel : float, optional
        Regularisation relative to the cost scale: ``eps = eps_rel * std(C)``. Default 0.05 when neither
        ``eps`` nor ``eps_rel`` is given.
    a, b : array-like, optional
        Positive weights of candidates and targets (normalised to sum 1); uniform by default.
    tol : float
        Stop when the L1 error of the target marginal, ``sum_j |(P^T 1)_j - b_j|``, is <= tol.
    max_iter : int
        Iteration cap; reaching it leaves ``diagnostics["converged"] = False`` and warns.
    omega : float
        Over-relaxation factor in [1, 2); 1 is plain Sinkhorn. 1.5 needs ~2.7x fewer iterations.
    block_size : int, optional
        Candidate rows per cost block; default keeps a block near 4M entries on CPU, 64M on GPU.
    device : str or torch.device, optional
        Default: CUDA when available, else CPU. A torch pool already on a device is not copied to the host.
    gemm_dtype : {"float32", "bfloat16", "float16"}, optional
        Precision of the x y^T products only; potentials and log-sum-exps stay float32. Default (None):
        bfloat16 on CUDA devices that support it, float32 elsewhere (see :func:`resolve_gemm_dtype`).
    path : {"auto", "stored", "online"}
        "stored" keeps the cost between iterations (8 n m bytes), "online" recomputes it from a GEMM
        each iteration (O((n + m) d) memory); "auto" stores it when it fits in ``kernel_budget_bytes``.
    kernel_budget_bytes : int, optional
        Largest stored cost (8 bytes per entry) the "auto" path keeps in memory. Default: half the free
        memory of the device, at most 4 GiB (see :func:`default_kernel_budget`).
    compile : bool or str, optional
        ``torch.compile`` the block step of the log-domain iterations (True, or a backend name). Default
        (None): on for CUDA, off on a CPU (see :func:`resolve_compile`). Same maths either way.
    progress : bool
        Show a progress bar over iterations with the current marginal error.

    Returns
    -------
    SinkhornResult
        Potentials ``f`` (n,), ``g`` (m,) in cost units, float64 numpy, and diagnostics.
    """
    x = _as_matrix(pool, "pool")
    y = _as_matrix(target, "target")
    _check_dims(x, y)
    n, m = x.shape[0], y.shape[0]
    if not 1.0 <= omega < 2.0:
        raise GotdInputError(f"omega must be in [1, 2) for over-relaxed Sinkhorn to converge, got {omega}")
    if not tol > 0:
        raise GotdInputError(f"tol must be > 0, got {tol}")
    if path not in ("auto", "stored", "online"):
        raise GotdInputError(f"path must be 'auto', 'stored' or 'online', got {path!r}")

    dev = torch.device(device) if device is not None else default_device()
    gemm_dtype = resolve_gemm_dtype(gemm_dtype, dev)
    backend = resolve_compile(compile, dev)
    cost_mean, cost_std = cost_moments(x, y)
    eps, eps_rel = resolve_eps(eps, eps_rel, cost_std)
    log_a = _as_weights(a, n, "a").log().to(dev, torch.float32)
    log_b = _as_weights(b, m, "b").log().to(dev, torch.float32)
    bsize = _pick_block_size(n, m, dev, block_size)
    # The stored path keeps the scaled products and the stabilised kernel: 8 bytes per entry.
    if kernel_budget_bytes is None:
        kernel_budget_bytes = default_kernel_budget(dev)
    store = path == "stored" or (path == "auto" and 8 * n * m <= kernel_budget_bytes)

    started = time.perf_counter()
    dots = _BlockDots(x, y, eps=eps, device=dev, gemm_dtype=_DTYPES[gemm_dtype], block_size=bsize, store=store,
                      compile_backend=backend)
    f = torch.zeros(n, dtype=torch.float32, device=dev)
    g = torch.zeros(m, dtype=torch.float32, device=dev)
    kernel = _ScaledKernel(dots, log_a, log_b, eps) if store else None
    scaling = False  # iterating on the stored kernel (after two log-domain warm-up iterations)
    history: list[float] = []
    error = math.inf
    iterations = 0
    bar = tqdm(total=max_iter, desc="sinkhorn", unit="it", disable=not progress, leave=False)
    try:
        for iterations in range(1, max_iter + 1):
            # Relaxing away from the arbitrary zero start only slows the first step down.
            step_omega = 1.0 if iterations == 1 else omega
            step_error = kernel.step(step_omega) if scaling else None
            if step_error is None:
                if scaling:  # a scaling went non-finite: take this iteration in the log domain
                    f, g = kernel.potentials(f, g)
                f, g, step_error = _log_domain_step(dots, f, g, log_a, log_b, eps, step_omega)
                scaling = False
                if kernel is not None and iterations >= 2:
                    kernel.rebuild(f, g)
                    scaling = True
            elif kernel.needs_absorbing():
                f, g = kernel.potentials(f, g)
                kernel.rebuild(f, g)
            error = step_error
            history.append(error)
            if math.isnan(error):
                raise FloatingPointError(
                    f"Sinkhorn diverged at iteration {iterations} (eps={eps:.3g}, eps_rel={eps_rel:.3g}); "
                    "raise eps or use omega=1.0")
            bar.update(1)
            bar.set_postfix(error=f"{error:.2e}")
            if error <= tol:
                break
    finally:
        bar.close()
    if scaling:
        f, g = kernel.potentials(f, g)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - started
    converged = error <= tol
    if not converged:
        import warnings

        warnings.warn(f"Sinkhorn stopped at max_iter={max_iter} with target-marginal error {error:.3g} > tol={tol}; "
                      "raise max_iter or eps", RuntimeWarning, stacklevel=2)
    diagnostics = {
        "eps": eps, "eps_rel": eps_rel, "cost_mean": cost_mean, "cost_std": cost_std,
        "iterations": iterations, "marginal_error": error, "converged": converged, "tol": tol,
        "seconds": seconds, "path": "stored" if store else "online", "device": str(dev),
        "gemm_dtype": gemm_dtype, "gemm_fp32_output": dots.fp32_out, "compile": dots.compile_backend,
        "compile_error": dots.compile_error, "omega": omega, "block_size": bsize, "n": n, "m": m,
        "d": x.shape[1], "error_history": history,
    }
    return SinkhornResult(f=f.double().cpu().numpy(), g=g.double().cpu().numpy(), diagnostics=diagnostics)


# ---------------------------------------------------------------------------------------------------
# gradients and scores
# ---------------------------------------------------------------------------------------------------


def calibrated_gradients(f: Any) -> np.ndarray:
    """LAVA's calibrated gradient of each candidate from the candidate potentials.

    .. math:: \\tilde g_j = f_j - \\frac{1}{n-1} \\sum_{i \\neq j} f_i
              = \\frac{n}{n-1} \\left(f_j - \\bar f\\right)

    This is the directional derivative of OT_eps along "add mass to candidate j, take it evenly from the
    others". It is an increasing affine map of ``f``: it ranks candidates exactly as ``f`` does and only
    matters when scores are compared across problems. Lower (more negative) means adding the candidate's
    mass brings the pool closer to the target.

    Parameters
    ----------
    f : array-like, shape (n,)
        Candidate potentials in cost units.

    Returns
    -------
    numpy.ndarray, shape (n,), float64
    """
    f = np.asarray(f, dtype=np.float64)
    if f.ndim != 1 or f.size < 2:
        raise GotdInputError(f"calibrated gradients need a 1-D potential over at least 2 candidates, got shape {f.shape}")
    n = f.size
    return (f - f.mean()) * (n / (n - 1))


def c_transform_scores(
    pool: Any,
    target: Any,
    target_potential: Any,
    *,
    eps: float,
    b: Any = None,
    block_size: int | None = None,
    device: str | torch.device | None = None,
    gemm_dtype: str | None = None,
    compile: bool | str | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Candidate potentials from a fixed target potential by the entropic c-transform.

    .. math:: f_i = -\\varepsilon \\log \\sum_j b_j \\exp\\big((g_j - C_{ij}) / \\varepsilon\\big)

    One streaming pass over the candidates (O(block m) memory). Used to score candidates that were not in
    the solve, e.g. after solving on a random subsample of a very large pool: the c-transform of the
    subsample's target potential is the candidate potential each new candidate would get.

    Parameters
    ----------
    pool, target : array-like, shapes (n, d) and (m, d)
    target_potential : array-like, shape (m,)
        ``SinkhornResult.g`` of a solve against the same ``target``, in cost units.
    eps : float
        The eps of that solve (absolute, cost units).
    b, block_size, device, gemm_dtype, compile, progress
        As in :func:`sinkhorn`.

    Returns
    -------
    numpy.ndarray, shape (n,), float64
    """
    x = _as_matrix(pool, "pool")
    y = _as_matrix(target, "target")
    _check_dims(x, y)
    g_np = np.asarray(target_potential, dtype=np.float64)
    if g_np.shape != (y.shape[0],):
        raise GotdInputError(f"target_potential has shape {g_np.shape}, expected ({y.shape[0]},) to match target")
    dev = torch.device(device) if device is not None else default_device()
    gemm_dtype = resolve_gemm_dtype(gemm_dtype, dev)
    backend = resolve_compile(compile, dev)
    bsize = _pick_block_size(x.shape[0], y.shape[0], dev, block_size)
    eps = float(eps)
    if not eps > 0:
        raise GotdInputError(f"eps must be > 0, got {eps}")
    dots = _BlockDots(x, y, eps=eps, device=dev, gemm_dtype=_DTYPES[gemm_dtype], block_size=bsize, store=False,
                      compile_backend=backend)
    g = torch.as_tensor(g_np, dtype=torch.float32, device=dev)
    log_b = _as_weights(b, y.shape[0], "b").log().to(dev, torch.float32)
    shift = (g - dots.q) / eps + log_b
    # Kept on the device and copied once at the end: no host synchronisation per block.
    out = torch.empty(x.shape[0], dtype=torch.float32, device=dev)
    for k, start in enumerate(tqdm(dots.starts, desc="c-transform", unit="block", disable=not progress, leave=False)):
        f_blk = None
        if dots.compile_backend is not None:
            try:
                f_blk = dots.compiled_row_potential(k, shift)
            except Exception as exc:  # noqa: BLE001 - a compiler failure must not lose the scores
                dots.disable_compile(exc)
        if f_blk is None:
            f_blk = _row_step(dots, k, shift, eps)[0]
        out[start:start + f_blk.shape[0]] = f_blk
    return out.double().cpu().numpy()


def ot_gradients(pool: Any, target: Any, *, eps: float | None = None, **options: Any) -> np.ndarray:
    """Calibrated gradient of OT_eps(pool, target) with respect to each pool row's mass.

    Parameters
    ----------
    pool : array-like, shape (n, d)
        Candidate embeddings (numpy or torch).
    target : array-like, shape (m, d)
        Target embeddings.
    eps : float, optional
        Entropic regularisation in cost units (POT's ``reg``); default ``eps_rel=0.05`` of std(C).
    **options
        ``eps_rel``, ``subsample`` (solve on this many random candidates, or this fraction, then score every
        candidate by :func:`c_transform_scores`), ``seed`` (for ``subsample``), and every keyword of
        :func:`sinkhorn`.

    Returns
    -------
    numpy.ndarray, shape (n,), float64
        Lower means adding the candidate moves the pool closer to the target: select the most negative.
    """
    gradients, _ = ot_gradients_with_diagnostics(pool, target, eps=eps, **options)
    return gradients


def ot_gradients_with_diagnostics(
    pool: Any, target: Any, *, eps: float | None = None, subsample: int | float | None = None, seed: int = 0,
    **options: Any,
) -> tuple[np.ndarray, dict[str, Any]]:
    """:func:`ot_gradients` plus the solve's diagnostics (and the subsample size when one was used)."""
    if subsample is None:
        result = sinkhorn(pool, target, eps=eps, **options)
        return calibrated_gradients(result.f), result.diagnostics
    x = _as_matrix(pool, "pool")
    n = x.shape[0]
    size = int(round(subsample * n)) if isinstance(subsample, float) and subsample <= 1.0 else int(subsample)
    if not 2 <= size <= n:
        raise GotdInputError(f"subsample must give between 2 and {n} candidates (a count, or a fraction <= 1), got {subsample}")
    rows = np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
    result = sinkhorn(x[torch.as_tensor(rows, device=x.device)], target, eps=eps, **options)
    scoring = {k: options[k] for k in ("b", "block_size", "device", "gemm_dtype", "compile", "progress") if k in options}
    started = time.perf_counter()
    f_all = c_transform_scores(x, target, result.g, eps=result.diagnostics["eps"], **scoring)
    diagnostics = {**result.diagnostics, "subsample": size, "subsample_seed": seed, "n": n,
                   "scoring_seconds": time.perf_counter() - started}
    return calibrated_gradients(f_all), diagnostics
