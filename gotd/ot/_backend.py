"""Where and how the solver runs: device, GEMM precision, torch.compile backend, memory budget, blocks.

Device resolution itself is :func:`gotd.devices.resolve_device` (one resolver for every stage); this
module only adds the solver's own choices on top of it.
"""
from __future__ import annotations

import functools

import torch

from gotd.devices import resolve_device, resolve_dtype
from gotd.errors import GotdInputError

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}

GEMM_DTYPES = ("float32", "bfloat16", "float16")

KERNEL_BUDGET_CAP_BYTES = 4 << 30


def default_device() -> torch.device:
    """CUDA when available, else CPU (:func:`gotd.devices.resolve_device` with ``None``)."""
    return resolve_device(None)


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


def resolve_gemm_dtype(gemm_dtype: str | None, device: torch.device) -> str:
    """The precision of the cost products: bfloat16 on CUDA devices that support it, float32 elsewhere.

    Potentials, log-sum-exps and marginals stay float32 whatever this is; the products are taken after
    centring on the target mean, which keeps their bfloat16 rounding error small next to eps.
    """
    if gemm_dtype is None:
        if device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return "bfloat16"
        return "float32"
    if gemm_dtype not in GEMM_DTYPES:
        raise GotdInputError(f"gemm_dtype must be float32, bfloat16 or float16 (or None for auto), got {gemm_dtype!r}")
    # The names are the ones gotd.devices knows; resolving checks that and keeps one table of dtypes.
    resolve_dtype(gemm_dtype, device, allowed=GEMM_DTYPES)
    return gemm_dtype


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


def _pick_block_size(n: int, m: int, device: torch.device, block_size: int | None) -> int:
    if block_size is not None:
        if block_size < 1:
            raise GotdInputError(f"block_size must be >= 1, got {block_size}")
        return int(block_size)
    # ~4M cost entries a block keeps CPU temporaries in cache; GPUs want bigger GEMMs.
    entries = (1 << 26) if device.type == "cuda" else (1 << 22)
    return int(max(1, min(n, entries // max(m, 1))))
