"""One place that turns a user's ``device`` and ``dtype`` into torch objects.

Every stage (embedding, the OT solver, the neighbour searches, training, evaluation, model loading)
resolves its device and dtype here, so that ``"auto"``, ``None``, ``"bf16"`` and ``torch.bfloat16``
mean the same thing everywhere and a bad value gets the same message everywhere.

The one policy that differs by stage is whether bf16 is the automatic choice on a CPU: it is for
inference-only encoders (MiniLM encodes ~3x faster in bf16 on a CPU with AVX512-BF16 or AMX), it is not
for training and language-model scoring (float32 keeps reference numbers bit-stable there). Callers say
which with ``cpu_bf16``.

Set ``GOTD_CPU_BF16=0`` to make the automatic choice ignore a CPU's bf16 instructions (to reproduce on a
bf16-capable machine what a plain AVX2 machine computes), ``GOTD_CPU_BF16=1`` to force it on.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path
from typing import Any

import torch

from gotd.errors import GotdInputError

__all__ = ["DTYPES", "cpu_has_fast_bf16", "dtype_name", "resolve_device", "resolve_dtype"]

#: The dtypes a user may name, by their canonical names.
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float64": torch.float64,
}

_ALIASES = {"fp32": "float32", "float": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16",
            "fp64": "float64", "double": "float64"}


def _cpuinfo_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@functools.lru_cache(maxsize=None)
def _cpu_bf16_instructions() -> bool:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if all(callable(probe) for probe in probes):
        return any(bool(probe()) for probe in probes)
    return bool({"avx512_bf16", "amx_bf16"} & _cpuinfo_flags())


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products natively (AVX512-BF16 or AMX).

    Without those instructions torch emulates bf16 and it is slower than float32. The environment
    variable ``GOTD_CPU_BF16`` (``0`` or ``1``) overrides the detection.
    """
    forced = os.environ.get("GOTD_CPU_BF16", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return _cpu_bf16_instructions()


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The torch device to run on.

    Parameters
    ----------
    device : str, torch.device or None
        ``None`` or ``"auto"``: ``cuda`` when a GPU is visible, else ``cpu``. Anything else is parsed
        by torch and checked to exist.

    Returns
    -------
    torch.device

    Raises
    ------
    GotdInputError
        Not a torch device, or a CUDA device on a machine without one.
    """
    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise GotdInputError(f"device={device!r} is not a torch device; use 'cpu', 'cuda', 'cuda:N' or 'auto'") from exc
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise GotdInputError(f"device={device!r} was asked for but no CUDA GPU is visible; use device='cpu' or 'auto'")
    return parsed


def resolve_dtype(dtype: str | torch.dtype | None, device: str | torch.device | None = None, *,
                  cpu_bf16: bool = False, allowed: tuple[str, ...] | None = None) -> torch.dtype:
    """The torch dtype to compute in.

    Parameters
    ----------
    dtype : str, torch.dtype or None
        ``None`` or ``"auto"``: bfloat16 on a CUDA device that supports it; on a CPU bfloat16 only when
        ``cpu_bf16`` and :func:`cpu_has_fast_bf16`; float32 otherwise. Names (``"float32"``, ``"fp32"``,
        ``"bf16"``, ``"torch.float16"``...) and torch dtypes pass through.
    device : str, torch.device or None
        Where the computation runs (resolved with :func:`resolve_device`).
    cpu_bf16 : bool
        Whether the automatic choice may pick bf16 on a CPU (inference-only encoders).
    allowed : tuple of str, optional
        Canonical names this caller accepts (default: all of :data:`DTYPES`).

    Returns
    -------
    torch.dtype

    Raises
    ------
    GotdInputError
        An unknown dtype or one the caller does not accept, with the accepted names.
    """
    accepted = allowed if allowed is not None else tuple(DTYPES)
    if dtype is None or (isinstance(dtype, str) and dtype.strip().lower() == "auto"):
        place = resolve_device(device)
        if place.type == "cuda":
            fast = torch.cuda.is_bf16_supported()
        else:
            fast = cpu_bf16 and cpu_has_fast_bf16()
        name = "bfloat16" if fast and "bfloat16" in accepted else "float32"
        return DTYPES[name]
    if isinstance(dtype, torch.dtype):
        name = dtype_name(dtype)
    else:
        text = str(dtype).strip().lower().removeprefix("torch.")
        name = _ALIASES.get(text, text)
    if name not in accepted:
        raise GotdInputError(f"dtype={dtype!r} is not supported here; use one of {', '.join(accepted)} or 'auto'")
    return DTYPES[name]


def dtype_name(dtype: torch.dtype | str | Any) -> str:
    """The canonical name of a torch dtype (``torch.bfloat16`` -> ``"bfloat16"``)."""
    if isinstance(dtype, str):
        text = dtype.strip().lower().removeprefix("torch.")
        return _ALIASES.get(text, text)
    for name, value in DTYPES.items():
        if value == dtype:
            return name
    raise GotdInputError(f"dtype={dtype!r} is not supported; use one of {', '.join(DTYPES)}")
