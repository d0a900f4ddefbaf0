"""The cost in row blocks: scaled inner products ``2 x_i^T y_j / eps``, recomputed by a GEMM or stored.

The squared Euclidean cost splits as ``C_ij = p_i + q_j - 2 x_i^T y_j`` with ``p = ||x||^2``,
``q = ||y||^2``. In a row log-sum-exp the ``p_i`` term is a constant and in a column log-sum-exp the
``q_j`` term is, so the solver only ever needs the scaled products plus per-row and per-column vectors:
one fused ``addmm`` a block on the online path (the role of ott-jax's ``PointCloud(batch_size=...)``).
"""
from __future__ import annotations

import warnings

import torch

from gotd.ot._backend import _fp32_output_gemm_available
from gotd.ot._inputs import _ROW_CHUNK


def _products_fp32(rows: torch.Tensor, y_t: torch.Tensor, fp32_out: bool) -> torch.Tensor:
    """``rows @ y_t`` as float32: accumulated and returned in float32 when ``fp32_out``, else cast after."""
    if fp32_out:
        return torch.mm(rows, y_t, out_dtype=torch.float32)
    return (rows @ y_t).float()


class _BlockDots:
    """Scaled inner products ``2 x_i^T y_j / eps`` by row blocks, and the norms ``p``, ``q``.

    Both sides are centred on the target mean first (distances are unchanged), which keeps the products
    small and so a low-precision GEMM accurate. ``store=True`` keeps every block's products (4 bytes per
    entry) instead of recomputing them each iteration.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, *, eps: float, device: torch.device,
                 gemm_dtype: torch.dtype, block_size: int, store: bool, compile_backend: str | None = None) -> None:
        centre = y.double().mean(dim=0)
        self.x, self.p = self._centred(x, centre, device, gemm_dtype)
        y_c, self.q = self._centred(y, centre, device, gemm_dtype)
        self.y_t = y_c.T.contiguous()
        self.scale = 2.0 / eps
        self.n, self.m = x.shape[0], y.shape[0]
        self.block_size = block_size
        self.starts = list(range(0, self.n, block_size))
        # Low-precision products come out in float32 directly where the device can.
        self.fp32_out = gemm_dtype != torch.float32 and _fp32_output_gemm_available(torch.device(device))
        self._buffer: torch.Tensor | None = None
        self._stored: list[torch.Tensor] | None = None
        if store:
            self._stored = [self._products(s) for s in self.starts]
        # The compiled block functions take eps and the scale as 0-d tensors, so that a new eps is new data
        # for the compiled graph rather than a reason to recompile it.
        self.compile_backend = compile_backend
        self.compile_error: str | None = None
        self.eps_t = torch.tensor(eps, dtype=torch.float32, device=device)
        self.scale_t = torch.tensor(self.scale, dtype=torch.float32, device=device)

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

    @property
    def stored(self) -> list[torch.Tensor] | None:
        """Every block's scaled products when the cost is kept between iterations, else None."""
        return self._stored

    def rows(self, k: int) -> slice:
        """The candidate rows of block k."""
        start = self.starts[k]
        return slice(start, min(start + self.block_size, self.n))

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
        rows = self.x[self.rows(k)]
        out = self._block_buffer(rows.shape[0])
        if rows.dtype == torch.float32:
            return torch.addmm(column_shift[None, :], rows, self.y_t, alpha=self.scale, out=out)
        return out.copy_(_products_fp32(rows, self.y_t, self.fp32_out)).mul_(self.scale).add_(column_shift[None, :])

    def columns(self, k: int, cols: torch.Tensor) -> torch.Tensor:
        """``2 x_i^T y_j / eps`` for the rows of block k and the target columns ``cols`` only."""
        if self._stored is not None:
            return self._stored[k][:, cols]
        rows = self.x[self.rows(k)]
        return _products_fp32(rows, self.y_t[:, cols], self.fp32_out).mul_(self.scale)

    def disable_compile(self, error: Exception) -> None:
        """Fall back to the eager block step after the compiled one failed (with a warning naming why)."""
        warnings.warn(f"torch.compile of the Sinkhorn block step failed ({type(error).__name__}: "
                      f"{str(error).splitlines()[0] if str(error) else ''}); continuing with the eager step. "
                      "Pass compile=False to skip the attempt.", RuntimeWarning, stacklevel=5)
        self.compile_error = f"{type(error).__name__}: {error}"[:500]
        self.compile_backend = None
