"""Checked inputs of the solver: embedding matrices and probability weights."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gotd.errors import GotdInputError
from gotd.validation import ROW_CHUNK, check_matrix

_ROW_CHUNK = ROW_CHUNK
"""Rows converted or reduced at a time, so that no float64 copy of a large pool is ever made."""


def _to_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A checked matrix as a torch tensor, without a copy where the memory layout allows one.

    Torch cannot wrap numpy arrays with negative strides (``X[::-1]``) nor some other views; those are
    copied once into a contiguous array instead of being rejected.
    """
    if isinstance(x, torch.Tensor):
        return x
    try:
        return torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError):
        # negative or otherwise unsupported strides: one contiguous copy
        return torch.as_tensor(np.ascontiguousarray(x))


def _as_matrix(x: Any, name: str) -> torch.Tensor:
    """``x`` checked by :func:`gotd.validation.check_matrix` as a float32/float64 torch tensor.

    float32 and float64 are kept without a copy; other real dtypes become float32. A torch tensor stays
    on its device, so that a pool already on the GPU is never copied to the host; anything else becomes
    a CPU tensor. Any strides are accepted (reversed or sliced views included).
    """
    return _to_tensor(check_matrix(x, name, dtype=(torch.float32, torch.float64)))


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
