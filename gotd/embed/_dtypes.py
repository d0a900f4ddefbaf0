"""The encoder's device and dtype, resolved by :mod:`gotd.devices`, kept as the strings the cache records.

The cache key and the manifest record the compute dtype by name (``"float32"``, ``"bfloat16"``,
``"float16"``), so the encoder keeps names, not torch objects. :func:`resolve_device`,
:func:`resolve_dtype` and :func:`cpu_has_fast_bf16` are the names ``gotd.embed`` always exported; they
are thin layers over :mod:`gotd.devices`.
"""
from __future__ import annotations

import numpy as np
import torch

from gotd import devices
from gotd.errors import GotdInputError

ENCODER_DTYPES = ("float32", "bfloat16", "float16")
DTYPES = {name: devices.DTYPES[name] for name in ENCODER_DTYPES}
"""The compute dtypes an encoder runs in, by name."""

STORAGE_DTYPES = {"float32": np.float32, "bfloat16": np.uint16, "float16": np.float16}
"""On-disk dtype of a cache shard for each storage dtype (bfloat16 as its uint16 bit pattern)."""


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products natively (see :func:`gotd.devices.cpu_has_fast_bf16`)."""
    return devices.cpu_has_fast_bf16()


def resolve_device(device: str | torch.device | None) -> str:
    """``None``/``"auto"`` -> ``"cuda"`` when available else ``"cpu"``; otherwise the checked device, as a string."""
    return str(devices.resolve_device(device))


def resolve_dtype(dtype: str | torch.dtype | None, device: str | torch.device | None) -> str:
    """The encoder's compute dtype name: ``None``/``"auto"`` -> ``"bfloat16"`` where the hardware runs it natively.

    bf16 is the automatic choice on CUDA devices with bf16 support and on CPUs with AVX512-BF16 or AMX
    (there MiniLM encodes ~3.5x faster than in float32; ``GOTD_CPU_BF16=0`` turns that off), float32
    elsewhere. Pass ``"float32"`` for bit-stable reference numbers.
    """
    return devices.dtype_name(devices.resolve_dtype(dtype, device, cpu_bf16=True, allowed=ENCODER_DTYPES))


def check_storage_dtype(storage_dtype: str) -> str:
    """The canonical name of a storage dtype (``"bf16"`` -> ``"bfloat16"``), or a clear error."""
    name = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}.get(storage_dtype, storage_dtype)
    if name not in STORAGE_DTYPES:
        raise GotdInputError(f"storage_dtype={storage_dtype!r} is not one of {sorted(STORAGE_DTYPES)}")
    return name
