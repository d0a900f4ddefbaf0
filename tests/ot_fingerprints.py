"""Bitwise fingerprints of the OT solver and the embedding selectors, to prove a refactor changes no number.

Each case prints one JSON line: sha256 of the potentials' bytes (or of a selection's indices), the
iteration count, the final marginal error (``repr``, every digit) and a hash of the error history. Run it
on two versions of the package and compare the outputs::

    git archive 9d2fe36 gotd | tar -x -C /tmp/base
    PYTHONPATH=/tmp/base:tests python tests/ot_fingerprints.py > before.jsonl
    PYTHONPATH=.:tests python tests/ot_fingerprints.py > after.jsonl
    diff before.jsonl after.jsonl && echo identical

CPU only; identity holds on one machine and one torch build (the GEMM's summation order is the build's).
"""
from __future__ import annotations

import hashlib
import json
import warnings

import numpy as np
import torch

from ot_problems import clustered


def _sha(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()[:16]


def _gaussian(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(300, 8)), rng.normal(size=(40, 8)) + rng.normal()


def _solve_cases() -> dict[str, tuple[tuple[np.ndarray, np.ndarray], dict]]:
    clustered_problem = clustered(400, 60)
    rng = np.random.default_rng(7)
    a, b = rng.uniform(0.5, 2.0, 400), rng.uniform(0.5, 2.0, 60)
    cases = {}
    for path in ("stored", "online"):
        extra = {"path": path, "block_size": 64} if path == "online" else {"path": path}
        cases[f"default-{path}"] = (clustered_problem, extra)
        cases[f"paper-{path}"] = (clustered_problem, {"preset": "paper", **extra})
        cases[f"pool-marginal-{path}"] = (clustered_problem, {"stop_marginal": "pool", "tol": 1e-3, **extra})
        cases[f"restart-{path}"] = (_gaussian(2), {"omega": 1.9, **extra})
        cases[f"max-iter-{path}"] = (clustered_problem, {"max_iter": 5, "allow_unconverged": True, **extra})
        cases[f"max-iter-pool-{path}"] = (clustered_problem, {"max_iter": 5, "allow_unconverged": True,
                                                              "stop_marginal": "pool", **extra})
        cases[f"weights-{path}"] = (clustered_problem, {"a": a, "b": b, **extra})
        cases[f"small-eps-{path}"] = (clustered_problem, {"eps_rel": 0.005, "tol": 1e-4, **extra})
        cases[f"omega1-{path}"] = (_gaussian(1), {"omega": 1.0, "tol": 1e-5, **extra})
        cases[f"median-{path}"] = (_gaussian(3), {"eps_scale": "median", **extra})
    return cases


def _fallback_record() -> dict:
    """A stored-kernel solve whose scaling step fails (returns None) on its 5th call, as a non-finite
    scaling does: the iteration falls back to the log domain and rebuilds the kernel."""
    from gotd.ot import _kernel, sinkhorn

    original = _kernel._ScaledKernel.step
    calls = [0]

    def failing_once(self, *args, **kwargs):
        calls[0] += 1
        return None if calls[0] == 5 else original(self, *args, **kwargs)

    _kernel._ScaledKernel.step = failing_once
    try:
        result = sinkhorn(*clustered(400, 60), path="stored", tol=1e-4)
    finally:
        _kernel._ScaledKernel.step = original
    return {"case": "kernel-fallback", "f": _sha(result.f), "g": _sha(result.g),
            "iterations": result.diagnostics["iterations"], "calls": calls[0]}


def fingerprints() -> list[dict]:
    """One record per case: solves, a subsampled gradient, a c-transform and the selectors' picks."""
    from gotd.ot import c_transform_scores, ot_gradients_with_diagnostics, sinkhorn
    from gotd.selectors import methods_taking, select

    torch.manual_seed(0)
    records = []
    for name, ((pool, target), options) in _solve_cases().items():
        options = dict(options)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = sinkhorn(pool, target, **options)
        diag = result.diagnostics
        records.append({"case": name, "f": _sha(result.f), "g": _sha(result.g), "iterations": diag["iterations"],
                        "error": repr(diag["marginal_error"]), "history": _sha(np.array(diag["error_history"])),
                        "converged": diag["converged"], "restart_iteration": diag["restart_iteration"],
                        "omega": diag["omega"], "eps": repr(diag["eps"])})
    records.append(_fallback_record())
    pool, target = clustered(500, 50, seed=3)
    gradients, diag = ot_gradients_with_diagnostics(pool, target, subsample=0.5, seed=1)
    records.append({"case": "subsample-gradients", "gradients": _sha(gradients), "iterations": diag["iterations"]})
    result = sinkhorn(pool, target)
    scores = c_transform_scores(pool, target, result.g, eps=result.diagnostics["eps"], block_size=100)
    records.append({"case": "c-transform", "scores": _sha(scores)})
    for method in methods_taking("embeddings"):
        for seed in (0, 1):
            picks = select(pool, target, 60, method=method, seed=seed)
            records.append({"case": f"select-{method}-seed{seed}", "indices": _sha(np.asarray(picks, dtype=np.int64))})
    return records


if __name__ == "__main__":
    torch.set_num_threads(1)
    for record in fingerprints():
        print(json.dumps(record, sort_keys=True))
