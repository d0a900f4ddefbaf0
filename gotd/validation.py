"""The two input validators every package uses: one for a list of texts, one for an embedding matrix.

Modelled on scikit-learn's single ``check_array``: each step that takes texts (embedding, the text
selectors, evaluation, toxicity scoring, fingerprints) or a matrix (the OT solver, the embedding
selectors, c-transform scoring) calls :func:`check_texts` or :func:`check_matrix` instead of writing its
own checks, so one input gets one message wherever it goes. Both raise
:class:`gotd.errors.GotdInputError` with the argument's name and the fix.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from gotd.errors import GotdInputError

ROW_CHUNK = 1 << 14
"""Rows checked for NaN/inf at a time, so that no full-size boolean copy of a large pool is made."""

_TORCH_INTEGERS = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def check_texts(texts: Any, name: str = "texts", *, allow_empty: bool = False,
                blank: Literal["keep", "warn", "error"] = "keep") -> list[str]:
    """``texts`` as a list of strings, or one line naming what is wrong.

    Parameters
    ----------
    texts : iterable of str
        A list, tuple, pandas Series, 1-D array or any other iterable of strings.
    name : str
        The argument's name in messages (``"pool"``, ``"train texts"``).
    allow_empty : bool
        Whether no texts at all is valid (embedding zero texts is; selecting from none is not).
    blank : {"keep", "warn", "error"}
        What an empty or whitespace-only text is: a text like any other, one counted in a warning
        (embedding, where it gets the embedding of the special tokens alone), or an error (evaluation,
        where it has no tokens to score).

    Raises
    ------
    gotd.errors.GotdInputError
        A single string or bytes, a matrix, something not iterable, no texts (unless ``allow_empty``), an
        item that is not a string, or (with ``blank="error"``) an empty text.
    """
    if isinstance(texts, (str, bytes)):
        kind = "string" if isinstance(texts, str) else "bytes object"
        raise GotdInputError(f"{name}: got a single {kind}; pass a list of strings, e.g. [text]")
    if isinstance(texts, (np.ndarray, torch.Tensor)) and texts.ndim != 1:
        raise GotdInputError(f"{name}: got an array of shape {tuple(texts.shape)}; pass a one-dimensional list of "
                             "texts (this step reads raw text; a matrix of embeddings goes to a method that reads "
                             "embeddings)")
    try:
        items = list(texts)
    except TypeError:
        raise GotdInputError(f"{name}: expected a list of strings, got {type(texts).__name__}") from None
    if not items and not allow_empty:
        raise GotdInputError(f"{name}: has no texts; pass at least one")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise GotdInputError(f"{name}[{i}] is {type(item).__name__} ({item!r:.60}), not a string; drop or fill "
                                 "missing texts first (e.g. df['text'].fillna('').astype(str))")
        if blank == "error" and not item.strip():
            raise GotdInputError(f"{name}[{i}] is empty or whitespace only ({item!r:.20}); remove it or fill it in")
    if blank == "warn":
        n_blank = sum(1 for item in items if not item.strip())
        if n_blank:
            warnings.warn(f"{n_blank} of {len(items)} {name} are empty or whitespace only; they are kept (an "
                          "encoder gives each the embedding of its special tokens alone). Drop empty texts first "
                          "if that is not intended.", stacklevel=3)
    return items


def check_matrix(x: Any, name: str, *, dtype: Sequence[Any] | None = None,
                 min_features: int = 0) -> np.ndarray | torch.Tensor:
    """``x`` as a finite, non-empty 2-D float matrix (rows, features), or one line naming what is wrong.

    A numpy array stays a numpy array and a torch tensor stays a torch tensor on its device, without a
    copy when its dtype is accepted (any strides; ``x[::-1]`` included); anything else array-like becomes
    a numpy array.

    Parameters
    ----------
    x : array-like, numpy array or torch tensor, shape (n, d)
    name : str
        The argument's name in messages (``"pool"``, ``"target"``).
    dtype : sequence of dtypes, optional
        Float dtypes kept as they are (numpy dtypes for numpy input, torch dtypes for torch input, or
        names such as ``"float32"``); any other real dtype (integers, other floats) is converted to the
        first. Default: every float dtype is kept and integers become float64.
    min_features : int
        Fewest columns accepted (0: any; the embedding selectors ask for 1).

    Raises
    ------
    gotd.errors.GotdInputError
        Text instead of numbers, a non-real dtype (bool, complex, object), not 2-D, no rows (or fewer than
        ``min_features`` columns), or a row holding NaN or inf (the first such row is named).
    """
    if isinstance(x, str) or (isinstance(x, Sequence) and len(x) and isinstance(x[0], str)):
        raise GotdInputError(f"{name}: got text, but this step works on embeddings; embed the texts first "
                             "(gotd.embed) or use a method that reads text (gotd.selectors.methods_taking('texts'))")
    if isinstance(x, torch.Tensor):
        matrix = _torch_floats(x.detach(), name, dtype)
    else:
        matrix = _numpy_floats(x, name, dtype)
    shape = tuple(matrix.shape)
    if len(shape) != 2:
        raise GotdInputError(f"{name}: expected a 2-D array (rows, features), got shape {shape}; reshape a single "
                             "vector with x[None, :], or embed the texts first")
    if shape[0] == 0 or shape[1] < min_features:
        raise GotdInputError(f"{name}: has shape {shape}, no rows or too few features; it needs at least one row "
                             f"and {max(min_features, 1)} feature(s)")
    for start in range(0, shape[0], ROW_CHUNK):
        block = matrix[start:start + ROW_CHUNK]
        if isinstance(block, torch.Tensor):
            finite = torch.isfinite(block).all(dim=1)
            bad = None if bool(finite.all()) else int((~finite).nonzero()[0, 0])
        else:
            finite = np.isfinite(block).all(axis=1)
            bad = None if finite.all() else int(np.flatnonzero(~finite)[0])
        if bad is not None:
            raise GotdInputError(f"{name}: row {start + bad} holds NaN or infinite values; drop or re-embed that row")
    return matrix


def _torch_floats(t: torch.Tensor, name: str, dtype: Sequence[Any] | None) -> torch.Tensor:
    if t.dtype.is_complex or t.dtype == torch.bool or not (t.dtype.is_floating_point or t.dtype in _TORCH_INTEGERS):
        raise GotdInputError(f"{name}: expected real numbers, got dtype {t.dtype}")
    kept = [_torch_dtype(d) for d in dtype] if dtype is not None else None
    if kept is None:
        return t if t.is_floating_point() else t.double()
    return t if t.dtype in kept else t.to(kept[0])


def _numpy_floats(x: Any, name: str, dtype: Sequence[Any] | None) -> np.ndarray:
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise GotdInputError(f"{name}: expected a numeric (rows, features) array, got {type(x).__name__} "
                             f"({exc})") from None
    if a.dtype == object or a.dtype.kind not in "biuf" or a.dtype.kind == "b":
        raise GotdInputError(f"{name}: expected real numbers, got a {type(x).__name__} of dtype {a.dtype}")
    kept = [np.dtype(_numpy_name(d)) for d in dtype] if dtype is not None else None
    if kept is None:
        return a if a.dtype.kind == "f" else a.astype(np.float64)
    return a if a.dtype in kept else a.astype(kept[0])


def _torch_dtype(d: Any) -> torch.dtype:
    return d if isinstance(d, torch.dtype) else getattr(torch, np.dtype(d).name)


def _numpy_name(d: Any) -> str:
    return str(d).removeprefix("torch.") if isinstance(d, torch.dtype) else np.dtype(d).name
