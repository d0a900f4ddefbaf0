"""From potentials to GOT-D scores: LAVA's calibration, the c-transform, and the public gradient calls."""
from __future__ import annotations

import inspect
import time
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from gotd.errors import GotdInputError
from gotd.ot._backend import _DTYPES, _pick_block_size, resolve_compile, resolve_device, resolve_gemm_dtype
from gotd.ot._geometry import _BlockDots
from gotd.ot._inputs import _as_matrix, _check_dims, _positive_finite, check_weights
from gotd.ot._presets import resolve_preset
from gotd.ot._scale import DEFAULT_EPS_SCALE, cost_scale, magnitude_factor, scaled_settings, unscaled_result
from gotd.ot._solver import _solve, sinkhorn, solve_options
from gotd.ot._step import row_potential

CALIBRATIONS = ("lava", "paper")


def calibrated_gradients(f: Any, calibration: str = "lava") -> np.ndarray:
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
    calibration : {"lava", "paper"}
        ``"lava"`` (default): the divisor n - 1 above. ``"paper"``: the GOT-D release's
        ``g - (mean(g) - g / n)``, i.e. :math:`f_j - \\frac{1}{n} \\sum_{i \\neq j} f_i` (divisor n); same
        ranking, values larger by :math:`\\bar f / (n - 1)`-order terms.

    Returns
    -------
    numpy.ndarray, shape (n,), float64
    """
    f = np.asarray(f, dtype=np.float64)
    if f.ndim != 1 or f.size < 2:
        raise GotdInputError(f"calibrated gradients need a 1-D potential over at least 2 candidates, got shape {f.shape}")
    if calibration not in CALIBRATIONS:
        raise GotdInputError(f"calibration must be one of {', '.join(CALIBRATIONS)}, got {calibration!r}")
    n = f.size
    if calibration == "paper":
        return f - (f.sum() - f) / n
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
    dev = resolve_device(device)
    gemm_dtype = resolve_gemm_dtype(gemm_dtype, dev)
    backend = resolve_compile(compile, dev)
    bsize = _pick_block_size(x.shape[0], y.shape[0], dev, block_size)
    eps = _positive_finite(eps, "eps", "pass the eps of the solve that produced target_potential")
    dots = _BlockDots(x, y, eps=eps, device=dev, gemm_dtype=_DTYPES[gemm_dtype], block_size=bsize, store=False,
                      compile_backend=backend)
    g = torch.as_tensor(g_np, dtype=torch.float32, device=dev)
    log_b = check_weights(b, y.shape[0], "b").log().to(dev, torch.float32)
    shift = (g - dots.q) / eps + log_b
    # Kept on the device and copied once at the end: no host synchronisation per block.
    out = torch.empty(x.shape[0], dtype=torch.float32, device=dev)
    for k in tqdm(range(len(dots.starts)), desc="c-transform", unit="block", disable=not progress, leave=False):
        out[dots.rows(k)] = row_potential(dots, k, shift, eps)
    return out.double().cpu().numpy()


def ot_gradients(pool: Any, target: Any, *, eps: float | None = None, **options: Any) -> np.ndarray:
    """Calibrated gradient of OT_eps(pool, target) with respect to each pool row's mass.

    Parameters
    ----------
    pool : array-like, shape (n, d)
        Candidate embeddings (numpy of any strides, or torch).
    target : array-like, shape (m, d)
        Target embeddings.
    eps : float, optional
        Entropic regularisation in cost units (POT's ``reg``); default ``eps_rel=0.05`` of std(C).
    **options
        ``eps_rel``, ``subsample`` (solve on this many random candidates, or this fraction, then score every
        candidate by :func:`c_transform_scores`), ``seed`` (for ``subsample``), ``preset`` (e.g.
        ``"paper"``; explicit options win), ``allow_unconverged`` and every other keyword of
        :func:`sinkhorn`.

    Returns
    -------
    numpy.ndarray, shape (n,), float64
        Lower means adding the candidate moves the pool closer to the target: select the most negative.

    Raises
    ------
    gotd.errors.GotdConvergenceError
        The solve reached max_iter (unless ``allow_unconverged=True``) or diverged twice.
    """
    gradients, _ = ot_gradients_with_diagnostics(pool, target, eps=eps, **options)
    return gradients


_SOLVE_OPTIONS = frozenset(inspect.signature(sinkhorn).parameters) - {"pool", "target"}
_SCORING_OPTIONS = ("b", "block_size", "device", "gemm_dtype", "compile", "progress")


def ot_gradients_with_diagnostics(
    pool: Any, target: Any, *, eps: float | None = None, subsample: int | float | None = None, seed: int = 0,
    **options: Any,
) -> tuple[np.ndarray, dict[str, Any]]:
    """:func:`ot_gradients` plus the solve's diagnostics (and the subsample size when one was used).

    With ``subsample``, eps comes from the *full* pool's cost scale (exact and cheap), so that it does not
    depend on which candidates the subsample drew.
    """
    unknown = sorted(set(options) - _SOLVE_OPTIONS)
    if unknown:
        raise GotdInputError(f"unknown OT option(s) {', '.join(map(repr, unknown))}; use keywords of gotd.ot.sinkhorn")
    preset = options.pop("preset", None)
    settings = resolve_preset(preset, {"eps": eps, **options})
    calibration = settings.pop("calibration", "lava")
    x = _as_matrix(pool, "pool")
    y = _as_matrix(target, "target")
    factor = magnitude_factor(x, y)
    if factor != 1.0:  # extreme magnitudes: the same problem on exactly rescaled embeddings (magnitude_factor)
        x, y, settings = x * factor, y * factor, scaled_settings(settings, factor)
    solver_settings, a, b = solve_options(settings)
    if subsample is None:
        result = _solve(x, y, solver_settings, a=a, b=b, preset=preset, calibration=calibration if preset else None)
        return unscaled_result(calibrated_gradients(result.f, calibration), result.diagnostics, factor)
    n = x.shape[0]
    size = int(round(subsample * n)) if isinstance(subsample, float) and subsample <= 1.0 else int(subsample)
    if not 2 <= size <= n:
        raise GotdInputError(f"subsample must give between 2 and {n} candidates (a count, or a fraction <= 1), got {subsample}")
    scale = cost_scale(x, y, settings.get("eps_scale", DEFAULT_EPS_SCALE))
    rows = np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
    result = _solve(x[torch.as_tensor(rows, device=x.device)], y, solver_settings, a=a, b=b, preset=preset,
                    scale=scale, calibration=calibration if preset else None)
    scoring = {k: settings[k] for k in _SCORING_OPTIONS if k in settings}
    started = time.perf_counter()
    f_all = c_transform_scores(x, y, result.g, eps=result.diagnostics["eps"], **scoring)
    diagnostics = {**result.diagnostics, "subsample": size, "subsample_seed": seed, "n": n,
                   "scoring_seconds": time.perf_counter() - started}
    return unscaled_result(calibrated_gradients(f_all, calibration), diagnostics, factor)
