"""Checked inputs of the solver: embedding matrices and probability weights."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gotd.errors import GotdInputError

_ROW_CHUNK = 1 << 14
"""Rows converted or reduced at a time, so that no float64 copy of a large pool is ever made."""

_INTEGER_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def _to_tensor(x: Any, name: str) -> torch.Tensor:
    """``x`` as a torch tensor, without a copy where the memory layout allows one.

    Torch cannot wrap numpy arrays with negative strides (``X[::-1]``) nor some other views; those are
    copied once into a contiguous array instead of being rejected.
    """
    if isinstance(x, torch.Tensor):
        return x.detach()
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise GotdInputError(f"{name}: expected a numeric (n, d) array, got {type(x).__name__} ({exc})") from None
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise GotdInputError(f"{name}: expected real numbers, got a {type(x).__name__} of dtype {arr.dtype}")
    try:
        return torch.as_tensor(arr)
    except (TypeError, ValueError, RuntimeError):
        # negative or otherwise unsupported strides: one contiguous copy
        return torch.as_tensor(np.ascontiguousarray(arr))


def _as_matrix(x: Any, name: str) -> torch.Tensor:
    """Return ``x`` as a checked 2-D float32/float64 tensor (no copy when it already is one).

    A torch tensor stays on its device, so that a pool already on the GPU is never copied to the host;
    anything else becomes a CPU tensor. Any strides are accepted (reversed or sliced views included).
    """
    t = _to_tensor(x, name)
    if t.dtype not in (torch.float32, torch.float64):
        if t.dtype.is_complex or t.dtype == torch.bool or not (t.dtype.is_floating_point or t.dtype in _INTEGER_DTYPES):
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


def check_weights(w: Any, n: int, name: str) -> torch.Tensor:
    """Probability weights of ``n`` points, as the solver reads them.

    Parameters
    ----------
    w : array-like of shape (n,), torch tensor, or None
        Positive, finite weights in any units; None means uniform.
    n : int
        The number of points (rows of the matrix the weights belong to).
    name : str
        The argument's name, for messages (``"a"``, ``"b"``).

    Returns
    -------
    torch.Tensor, shape (n,), float64, on the CPU
        :math:`w / \\sum_i w_i`, or :math:`1/n` everywhere when ``w`` is None.

    Raises
    ------
    gotd.errors.GotdInputError
        ``w`` has another length, or holds a weight that is not finite and > 0.
    """
    if w is None:
        return torch.full((n,), 1.0 / n, dtype=torch.float64)
    if isinstance(w, torch.Tensor):
        w = w.detach().cpu().numpy()
    t = torch.as_tensor(np.array(w, dtype=np.float64))
    if t.shape != (n,):
        raise GotdInputError(f"{name}: expected {n} weights, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all() or (t <= 0).any():
        raise GotdInputError(f"{name}: weights must be finite and > 0; drop zero-weight rows instead")
    return t / t.sum()


def _check_dims(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape[1] != y.shape[1]:
        raise GotdInputError(f"pool has {x.shape[1]} features but target has {y.shape[1]}; "
                             "embed both with the same encoder")


def _positive_finite(value: Any, name: str, fix: str) -> float:
    """``float(value)`` when it is a finite number > 0, else a GotdInputError naming ``fix``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise GotdInputError(f"{name} must be a number > 0, got {value!r}; {fix}") from None
    if not (np.isfinite(number) and number > 0):
        raise GotdInputError(f"{name} must be > 0 and finite, got {value!r}; {fix}")
    return number
