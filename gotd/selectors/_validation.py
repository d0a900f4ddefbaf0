"""Input checks shared by every selector, by the input kind each declares.

The registry (:mod:`gotd.selectors._registry`) calls :func:`check_inputs` once, by the input kind a
selector declares, and hands the selector checked inputs. Texts and matrices go through gotd's one
text validator and one matrix validator (:mod:`gotd.validation`, like scikit-learn's check_array); the
checks here raise
:class:`gotd.errors.GotdInputError` naming the problem and the fix.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from gotd.errors import GotdInputError
from gotd.validation import check_matrix, check_texts

INPUT_KINDS = ("embeddings", "texts", "none")
"""What a selector reads: embedding matrices, raw texts, or only the pool's length."""


def check_seed(seed: Any) -> int:
    """A non-negative int seed."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise GotdInputError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def check_budget(budget: Any, n: int) -> int:
    """An int number of rows in [1, n]."""
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)):
        raise GotdInputError(f"budget must be an int number of pool rows, got {budget!r} ({type(budget).__name__}); "
                             f"for a fraction of the pool pass round(fraction * {n})")
    if not 1 <= budget <= n:
        raise GotdInputError(f"budget={budget} is outside [1, n={n}] for a pool of n={n} rows; "
                             f"choose a budget between 1 and {n} or add candidates to the pool")
    return int(budget)


def check_positive_int(value: Any, name: str, *, maximum: int | None = None) -> int:
    """An int >= 1 (and <= ``maximum`` when given)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise GotdInputError(f"{name} must be an int >= 1, got {value!r}")
    if maximum is not None and value > maximum:
        raise GotdInputError(f"{name}={value} exceeds {maximum}; choose a value <= {maximum}")
    return int(value)


def check_fraction(value: Any, name: str, *, low: float = 0.0, high: float = 1.0,
                   closed_low: bool = True, closed_high: bool = True) -> float:
    """A finite real number in an interval."""
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool) \
        and math.isfinite(value)
    if ok:
        ok = (value >= low if closed_low else value > low) and (value <= high if closed_high else value < high)
    if not ok:
        lo, hi = "[" if closed_low else "(", "]" if closed_high else ")"
        raise GotdInputError(f"{name} must be a finite number in {lo}{low}, {high}{hi}, got {value!r}")
    return float(value)


def check_embeddings(x: Any, name: str) -> np.ndarray | torch.Tensor:
    """``x`` as a finite float matrix with at least one row and one feature (:func:`gotd.validation.check_matrix`).

    Any strided numpy array is accepted (views such as ``x[::-1]`` included); integer arrays become
    float64; a torch tensor stays on its device.
    """
    return check_matrix(x, name, min_features=1)


def check_pair(pool: Any, target: Any, target_name: str = "target",
               pool_name: str = "pool") -> tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor]:
    """Two embedding matrices with the same number of features."""
    x = check_embeddings(pool, pool_name)
    y = check_embeddings(target, target_name)
    if x.shape[1] != y.shape[1]:
        raise GotdInputError(f"{pool_name} has {x.shape[1]} features per row but {target_name} has {y.shape[1]}; "
                             "embed both with the same encoder")
    return x, y


def check_length(pool: Any, name: str = "pool") -> int:
    """The number of rows of a pool that is only counted (embeddings or texts)."""
    try:
        n = len(pool)
    except TypeError:
        raise GotdInputError(f"{name}: expected embeddings or texts with a length, got {type(pool).__name__}") from None
    if n == 0:
        raise GotdInputError(f"{name}: is empty; pass at least one candidate")
    return int(n)


def check_inputs(inputs: str, pool: Any, target: Any, budget: Any) -> tuple[Any, Any, int]:
    """Check a selector's pool, target and budget by the input kind it declares.

    Returns
    -------
    pool, target, budget
        Embeddings as float arrays/tensors of equal width, texts as lists of str, or (``"none"``) the
        pool unchanged and the target as given; the budget as an int in [1, n].
    """
    if inputs == "embeddings":
        x, y = check_pair(pool, target)
        return x, y, check_budget(budget, x.shape[0])
    if inputs == "texts":
        texts, target_texts = check_texts(pool, "pool"), check_texts(target, "target")
        return texts, target_texts, check_budget(budget, len(texts))
    if inputs == "none":
        return pool, target, check_budget(budget, check_length(pool))
    raise GotdInputError(f"unknown input kind {inputs!r}; a selector takes one of {', '.join(INPUT_KINDS)}")


def rank(scores: np.ndarray, *, higher_is_better: bool) -> np.ndarray:
    """Row indices sorted best first; equal scores keep index order (stable sort)."""
    keys = -scores if higher_is_better else scores
    return np.argsort(keys, kind="stable").astype(np.int64)


def json_safe(value: Any) -> Any:
    """``value`` with numpy/torch scalars as Python numbers, arrays and devices summarised, recursively.

    Sidecars must be JSON: a weight array is recorded by its shape, not element by element.
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.ndarray, torch.Tensor)):
        if value.ndim == 0:
            return json_safe(value.item())
        return f"<array shape {tuple(value.shape)}>"
    if isinstance(value, (torch.device, torch.dtype)):
        return str(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or infinity
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)
