"""Speed, memory and agreement of gotd's Sinkhorn solver, against POT, on clustered synthetic embeddings.

Three measurements, each configuration in a fresh Python process (so that its peak resident memory is its
own):

1. **gotd vs POT** at N candidates (1e4, 3e4, 1e5, ... while POT's dense N x M arrays fit in free memory),
   M = 1000 targets, d = 384. Both solve the same problem with the same absolute eps (gotd's
   ``eps_rel=0.05`` resolution). POT runs ``ot.sinkhorn`` (Sinkhorn-Knopp, its default and its fastest CPU
   method; in float64 it does not underflow at this eps) and, up to ``--log-max-n``, the log-domain
   ``method="sinkhorn_log"``; its time includes the float64 conversion and the cost matrix ``ot.dist``.
   POT's stop rule is the L2 norm of the target-marginal error, checked every 10 iterations;
   ``stopThr = tol / sqrt(M)`` makes it imply gotd's rule (L1 error <= tol), because
   ``||e||_1 <= sqrt(M) ||e||_2``. Both solvers' final marginal errors are then recomputed here, the same
   way, from the returned potentials in float64. Rankings (lowest potential first = selected) are compared
   by top-1% / top-5% overlap and Spearman correlation, also against a tightly converged gotd reference
   (``--reference-tol``) that is checked against a tightly converged POT solve at the smallest N. Every
   solve is timed as the best of up to ``--repeats`` runs in its own process.
2. **gotd at scale**: N = 1e6 with float32 and bfloat16 products: time, iterations, seconds per iteration
   and peak memory beyond the embeddings (peak RSS of the process minus its RSS once the embeddings exist).
3. **Block-size sweep** at N = 1e5 for the stored and online paths: seconds per iteration, from the
   difference of two runs with different iteration caps (so one-off setup cancels).

Embeddings: a mixture of Gaussian clusters (with sub-clusters and a shared direction) in 384-d, L2
normalised like sentence embeddings; the target is drawn from 3 of the clusters. The default geometry was
chosen to resemble all-MiniLM-L6-v2 embeddings of real text (mean pairwise cosine ~0.03, nearest-neighbour
cosine ~0.6, and a similar number of Sinkhorn iterations).

Usage::

    python benchmarks/bench_ot.py                 # full run (20-40 min on 2 CPU cores)
    python benchmarks/bench_ot.py --quick         # small sizes, a couple of minutes

Writes ``benchmarks/results/ot_<device>.json`` (``ot_<device>_quick.json`` with ``--quick``) with
provenance, rewritten atomically after every measurement so an interrupted run keeps what it finished.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gotd._io import provenance, write_json_atomic
from gotd.ot import DEFAULT_EPS_REL, DEFAULT_TOL, available_memory_bytes, default_device, sinkhorn

RESULTS_DIR = Path(__file__).resolve().parent / "results"
GIB = 1 << 30


# ---------------------------------------------------------------------------------------------------
# synthetic sentence-like embeddings
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterSpec:
    """Geometry of the synthetic embeddings.

    A point is ``normalise(subcentre + spread_k * z / sqrt(d))`` with ``z ~ N(0, I_d)``; cluster centres are
    ``normalise(common_weight * u + c_k)`` with a shared unit direction ``u`` (sentence embeddings share a
    mean direction) and random unit ``c_k``; each cluster has ``n_sub`` sub-centres
    ``centre_k + sub_spread * z / sqrt(d)``. Cluster sizes follow Dirichlet(0.5) weights, so some clusters
    are rare in the pool; the target samples ``target_clusters`` clusters uniformly.
    """

    d: int = 384
    clusters: int = 48
    noise: float = 1.2
    common_weight: float = 0.3
    sub_spread: float = 1.0
    n_sub: int = 8
    target_clusters: int = 3


def _geometry(spec: ClusterSpec, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([seed, 0])
    d, k = spec.d, spec.clusters
    common = _unit(rng.standard_normal(d, dtype=np.float32))
    centres = _unit(spec.common_weight * common + _unit(rng.standard_normal((k, d), dtype=np.float32)))
    sub = centres[:, None, :] + spec.sub_spread / math.sqrt(d) * rng.standard_normal((k, spec.n_sub, d), dtype=np.float32)
    spread = (spec.noise * rng.uniform(0.7, 1.3, size=k)).astype(np.float32)
    weights = rng.dirichlet(np.full(k, 0.5))
    target = rng.choice(k, size=spec.target_clusters, replace=False)
    return {"sub": sub, "spread": spread, "weights": weights, "target": target}


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _sample(geometry: dict[str, np.ndarray], labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    sub, spread = geometry["sub"], geometry["spread"]
    d = sub.shape[2]
    which = rng.integers(0, sub.shape[1], size=labels.size)
    rows = sub[labels, which] + rng.standard_normal((labels.size, d), dtype=np.float32) * (spread[labels, None] / math.sqrt(d))
    return _unit(rows).astype(np.float32, copy=False)


def make_problem(n: int, m: int, seed: int = 0, spec: ClusterSpec = ClusterSpec(),
                 chunk_rows: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
    """Pool (n, d) and target (m, d) float32 embeddings, L2-normalised, deterministic for ``seed``.

    The pool is generated in chunks of ``chunk_rows`` with one random stream per chunk, straight into
    float32, so that a million rows need little more memory than the result.
    """
    geometry = _geometry(spec, seed)
    target_rng = np.random.default_rng([seed, 1])
    y = _sample(geometry, target_rng.choice(geometry["target"], size=m), target_rng)
    x = np.empty((n, spec.d), dtype=np.float32)
    for i, start in enumerate(range(0, n, chunk_rows)):
        rng = np.random.default_rng([seed, 2, i])
        rows = min(chunk_rows, n - start)
        x[start:start + rows] = _sample(geometry, rng.choice(spec.clusters, size=rows, p=geometry["weights"]), rng)
    return x, y


# ---------------------------------------------------------------------------------------------------
# measurements shared by the workers
# ---------------------------------------------------------------------------------------------------


def current_rss_bytes() -> int:
    """Resident memory of this process now (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return peak_rss_bytes()


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def free_memory_bytes() -> int:
    """``MemAvailable`` from /proc/meminfo (what can be allocated without swapping)."""
    free = available_memory_bytes(torch.device("cpu"))
    if free is None:
        raise RuntimeError("MemAvailable not found in /proc/meminfo")
    return free


def marginal_errors(x: np.ndarray, y: np.ndarray, f: np.ndarray, g: np.ndarray, eps: float,
                    block_rows: int = 8192) -> dict[str, float]:
    """L1 errors of both marginals of the plan ``P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps)``, float64.

    Uniform ``a = 1/n``, ``b = 1/m``; ``C_ij = ||x_i - y_j||^2``. Returns ``target_l1 = sum_j |P^T 1 - b|``
    and ``source_l1 = sum_i |P 1 - a|``, computed in row blocks (never the n x m matrix).
    """
    xt = torch.from_numpy(np.ascontiguousarray(x)).double()
    yt = torch.from_numpy(np.ascontiguousarray(y)).double()
    ft, gt = torch.from_numpy(np.asarray(f, np.float64)), torch.from_numpy(np.asarray(g, np.float64))
    n, m = xt.shape[0], yt.shape[0]
    log_ab = -math.log(n) - math.log(m)
    q = (yt * yt).sum(1)
    col = torch.full((m,), -math.inf, dtype=torch.float64)
    source = 0.0
    for start in range(0, n, block_rows):
        xb = xt[start:start + block_rows]
        cost = (xb * xb).sum(1)[:, None] + q[None, :] - 2.0 * xb @ yt.T
        log_p = (ft[start:start + block_rows, None] + gt[None, :] - cost) / eps + log_ab
        source += float((torch.logsumexp(log_p, 1).exp() - 1.0 / n).abs().sum())
        col = torch.logaddexp(col, torch.logsumexp(log_p, 0))
    return {"target_l1": float((col.exp() - 1.0 / m).abs().sum()), "source_l1": source}


def top_overlap(f1: np.ndarray, f2: np.ndarray, fraction: float) -> float:
    """Share of the ``fraction`` lowest-potential candidates that two potentials select in common."""
    k = max(1, int(round(fraction * f1.size)))
    first = np.argsort(f1, kind="stable")[:k]
    second = np.argsort(f2, kind="stable")[:k]
    return len(np.intersect1d(first, second, assume_unique=True)) / k


def agreement(f1: np.ndarray, f2: np.ndarray) -> dict[str, float]:
    """Top-1% and top-5% overlap and Spearman rank correlation of two candidate potentials."""
    from scipy.stats import spearmanr

    return {"top1": top_overlap(f1, f2, 0.01), "top5": top_overlap(f1, f2, 0.05),
            "spearman": float(spearmanr(f1, f2).statistic)}


# ---------------------------------------------------------------------------------------------------
# workers: one configuration each, in a fresh process
# ---------------------------------------------------------------------------------------------------


def _problem_for(spec: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, int]:
    x, y = make_problem(spec["n"], spec["m"], spec["seed"], ClusterSpec(**spec["clusters"]))
    return x, y, current_rss_bytes()


def _timed_repeats(solve: Any, spec: dict[str, Any]) -> tuple[Any, list[float]]:
    """Run ``solve()`` up to ``spec["repeats"]`` times, stopping once ``spec["repeat_budget_s"]`` is spent.

    Returns the last result and every run's seconds; the best run is the one reported, so that a solver
    is not charged for one-off start-up costs or for a moment when the machine was busy.
    """
    seconds: list[float] = []
    result = None
    while len(seconds) < spec.get("repeats", 1):
        result = None  # free the previous run's arrays before the next one
        started = time.perf_counter()
        result = solve()
        seconds.append(time.perf_counter() - started)
        if sum(seconds) >= spec.get("repeat_budget_s", 0.0):
            break
    return result, seconds


def worker_gotd(spec: dict[str, Any]) -> dict[str, Any]:
    """gotd solves (best of a few); saves the potentials, returns wall time, diagnostics and peak memory."""
    x, y, rss_data = _problem_for(spec)

    def solve() -> Any:
        return sinkhorn(x, y, eps_rel=spec["eps_rel"], tol=spec["tol"], max_iter=spec.get("max_iter", 10_000),
                        gemm_dtype=spec["gemm_dtype"], path=spec.get("path", "auto"),
                        block_size=spec.get("block_size"), device=spec["device"], progress=spec["progress"],
                        allow_unconverged=True)  # recorded in the diagnostics, not fatal to a benchmark

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res, seconds = _timed_repeats(solve, spec)
    peak = peak_rss_bytes()
    np.savez(spec["save"], f=res.f, g=res.g)
    diag = {k: v for k, v in res.diagnostics.items() if k != "error_history"}
    return {"wall_s": min(seconds), "wall_s_all_runs": seconds, "diagnostics": diag,
            "error_history": res.diagnostics["error_history"],
            "peak_beyond_embeddings_bytes": max(0, peak - rss_data), "rss_with_embeddings_bytes": rss_data,
            "warnings": sorted({str(w.message) for w in caught})}


def worker_pot(spec: dict[str, Any]) -> dict[str, Any]:
    """POT solves in float64 (``sinkhorn_log`` or plain ``sinkhorn``), best of a few, cost build included."""
    import ot

    x, y, rss_data = _problem_for(spec)
    n, m = x.shape[0], y.shape[0]
    eps = spec["eps"]
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    splits: list[float] = []

    def solve() -> dict[str, Any]:
        started = time.perf_counter()
        cost = ot.dist(x.astype(np.float64), y.astype(np.float64))  # squared Euclidean
        splits.append(time.perf_counter() - started)
        plan, log = ot.sinkhorn(a, b, cost, eps, method=spec["method"], stopThr=spec["stop_thr"],
                                numItermax=spec["num_iter_max"], log=True)
        del plan, cost
        return log

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log, seconds = _timed_repeats(solve, spec)
    peak = peak_rss_bytes()
    if spec["method"] == "sinkhorn_log":
        log_u, log_v = np.asarray(log["log_u"]), np.asarray(log["log_v"])
    else:
        with np.errstate(divide="ignore"):
            log_u, log_v = np.log(np.asarray(log["u"])), np.log(np.asarray(log["v"]))
    # POT's plan is diag(u) K diag(v) with K = exp(-C / reg): in cost units f = reg (log u - log a).
    f, g = eps * (log_u - np.log(a)), eps * (log_v - np.log(b))
    np.savez(spec["save"], f=f, g=g)
    errors = log.get("err", [])
    best = int(np.argmin(seconds))
    return {"seconds": seconds[best], "seconds_all_runs": seconds, "cost_build_s": splits[best],
            "solve_s": seconds[best] - splits[best], "iterations": int(log["niter"]) + 1,
            "pot_last_err_l2": float(errors[-1]) if errors else None,
            "finite": bool(np.isfinite(f).all() and np.isfinite(g).all()),
            "peak_beyond_embeddings_bytes": max(0, peak - rss_data),
            "warnings": sorted({str(w.message) for w in caught})}


def worker_marginals(spec: dict[str, Any]) -> dict[str, Any]:
    """Marginal L1 errors, recomputed in float64, of every saved potential pair in ``spec["files"]``."""
    x, y, _ = _problem_for(spec)
    out = {}
    for name, path in spec["files"].items():
        with np.load(path) as data:
            out[name] = marginal_errors(x, y, data["f"], data["g"], spec["eps"])
    return out


def worker_sweep(spec: dict[str, Any]) -> dict[str, Any]:
    """Seconds per iteration for each (path, entries per block): runs capped at two iteration counts."""
    x, y, _ = _problem_for(spec)
    low, high = spec["iterations"]
    rows = []
    for path in spec["paths"]:
        for entries in spec["entries"]:
            block = max(1, entries // spec["m"])
            seconds: dict[int, float] = {}
            for cap in (low, high):
                best = math.inf
                for _ in range(spec["repeats"]):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)  # capped on purpose
                        res = sinkhorn(x, y, eps_rel=spec["eps_rel"], tol=1e-12, max_iter=cap, path=path,
                                       block_size=block, device=spec["device"], allow_unconverged=True)
                    best = min(best, res.diagnostics["seconds"])
                seconds[cap] = best
            per_iteration = (seconds[high] - seconds[low]) / (high - low)
            rows.append({"path": path, "entries_per_block": block * spec["m"], "block_rows": block,
                         "s_per_iteration": per_iteration, "setup_s": seconds[low] - low * per_iteration,
                         "best_seconds_by_cap": {str(c): s for c, s in seconds.items()}})
    return {"rows": rows}


WORKERS = {"gotd": worker_gotd, "pot": worker_pot, "marginals": worker_marginals, "sweep": worker_sweep}


def run_worker(kind: str, spec: dict[str, Any], scratch: Path) -> dict[str, Any]:
    """Run one worker in a fresh interpreter; return its result, or ``{"error": ...}`` if it died."""
    spec_path = scratch / f"spec_{kind}_{time.monotonic_ns()}.json"
    result_path = spec_path.with_suffix(".result.json")
    spec_path.write_text(json.dumps({**spec, "kind": kind, "result": str(result_path)}))
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(spec_path)])
    if proc.returncode != 0 or not result_path.exists():
        reason = "killed by the OS (out of memory?)" if proc.returncode in (-9, 137) else f"exit code {proc.returncode}"
        return {"error": f"{kind} worker failed: {reason}"}
    return json.loads(result_path.read_text())


def worker_main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    result = WORKERS[spec["kind"]](spec)
    Path(spec["result"]).write_text(json.dumps(result))
    return 0


# ---------------------------------------------------------------------------------------------------
# the three parts
# ---------------------------------------------------------------------------------------------------


def _load_f(path: Path) -> np.ndarray:
    with np.load(path) as data:
        return data["f"]


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _print_row(cells: list[str], widths: list[int]) -> None:
    print("  ".join(c.rjust(w) for c, w in zip(cells, widths)), flush=True)


COMPARE_HEAD = ["N", "eps", "gotd s", "it", "POT s", "(dist)", "it", "gotd/POT", "top1%", "top5%",
                "spearman", "tgtL1 gotd", "tgtL1 POT", "ref top1 g/P", "log s", "gotd/log"]
COMPARE_W = [8, 8, 7, 4, 8, 7, 5, 8, 6, 6, 8, 10, 10, 13, 8, 10]


def compare_with_pot(args: argparse.Namespace, base: dict[str, Any], scratch: Path, record: dict[str, Any],
                     save: Any) -> None:
    """Part 1: gotd against POT's float64 ``ot.sinkhorn`` at growing N while POT fits in memory.

    POT's default method (Sinkhorn-Knopp) is the reference for time and ranking; its log-domain method is
    also run up to ``--log-max-n`` (it is 20-60x slower and only adds its own timing and ranking check).
    """
    print(f"\n== gotd vs POT ot.sinkhorn (float64), M={args.m}, d={args.d}, eps_rel={args.eps_rel}, tol={args.tol}; "
          "POT time includes ot.dist ==", flush=True)
    _print_row(COMPARE_HEAD, COMPARE_W)
    bytes_per_entry = args.pot_bytes_per_entry
    stop_thr = args.tol / math.sqrt(args.m)
    for n in args.sizes:
        needed = bytes_per_entry * n * args.m + 4 * n * args.d * 4
        available = free_memory_bytes()
        if needed > args.memory_fraction * available:
            record["comparison_skipped"].append({
                "n": n, "reason": f"POT would need ~{needed / GIB:.1f} GiB ({bytes_per_entry:.0f} bytes per cost entry, "
                f"measured at the previous N); {available / GIB:.1f} GiB available"})
            print(f"stop at N={n}: {record['comparison_skipped'][-1]['reason']}", flush=True)
            break
        spec = {**base, "n": n}
        files = {name: scratch / f"{name}_{n}.npz" for name in ("gotd", "reference", "pot", "pot_log", "pot_tight")}
        gotd = run_worker("gotd", {**spec, "tol": args.tol, "gemm_dtype": "float32", "save": str(files["gotd"])}, scratch)
        if "error" in gotd:
            record["comparison_skipped"].append({"n": n, "reason": gotd["error"]})
            break
        eps = gotd["diagnostics"]["eps"]
        reference = run_worker("gotd", {**spec, "tol": args.reference_tol, "gemm_dtype": "float32", "repeats": 1,
                                        "progress": False, "save": str(files["reference"])}, scratch)
        pot_spec = {**spec, "eps": eps, "num_iter_max": args.pot_max_iter}
        pot = run_worker("pot", {**pot_spec, "method": "sinkhorn", "stop_thr": stop_thr,
                                 "save": str(files["pot"])}, scratch)
        if "error" in pot:
            record["comparison_skipped"].append({"n": n, "reason": pot["error"]})
            print(f"stop at N={n}: {pot['error']}", flush=True)
            break
        bytes_per_entry = max(bytes_per_entry, pot["peak_beyond_embeddings_bytes"] / (n * args.m))
        pot_log = None
        if n <= args.log_max_n:
            pot_log = run_worker("pot", {**pot_spec, "method": "sinkhorn_log", "stop_thr": stop_thr,
                                         "save": str(files["pot_log"])}, scratch)
        tight = None
        if n == args.sizes[0]:
            tight = run_worker("pot", {**pot_spec, "method": "sinkhorn_log", "repeats": 1,
                                       "stop_thr": args.reference_tol / math.sqrt(args.m),
                                       "save": str(files["pot_tight"])}, scratch)
        errors = run_worker("marginals", {**spec, "eps": eps, "files": {
            k: str(files[k]) for k in ("gotd", "reference", "pot", "pot_log") if files[k].exists()}}, scratch)
        f = {k: _load_f(p) for k, p in files.items() if p.exists()}
        row = {
            "n": n, "m": args.m, "d": args.d, "eps": eps, "eps_rel": gotd["diagnostics"]["eps_rel"],
            "cost_std": gotd["diagnostics"]["cost_std"], "pot_stop_thr_l2": stop_thr,
            "gotd": gotd, "pot": pot, "pot_log": pot_log, "reference": reference, "pot_tight": tight,
            "time_ratio_gotd_over_pot": gotd["wall_s"] / pot["seconds"],
            "gotd_vs_pot": agreement(f["gotd"], f["pot"]),
            "gotd_vs_reference": agreement(f["gotd"], f["reference"]),
            "pot_vs_reference": agreement(f["pot"], f["reference"]),
            "marginal_errors": errors,
        }
        if "pot_log" in f:
            row["pot_log_vs_pot"] = agreement(f["pot_log"], f["pot"])
            row["time_ratio_gotd_over_pot_log"] = gotd["wall_s"] / pot_log["seconds"]
        if "pot_tight" in f:
            row["reference_vs_pot_tight"] = agreement(f["reference"], f["pot_tight"])
        record["comparison"].append(row)
        save()
        _print_row([f"{n:.0e}", f"{eps:.2e}", f"{gotd['wall_s']:.2f}", str(gotd["diagnostics"]["iterations"]),
                    f"{pot['seconds']:.2f}", f"{pot['cost_build_s']:.2f}", str(pot["iterations"]),
                    f"{row['time_ratio_gotd_over_pot']:.3f}", f"{row['gotd_vs_pot']['top1']:.4f}",
                    f"{row['gotd_vs_pot']['top5']:.4f}", f"{row['gotd_vs_pot']['spearman']:.5f}",
                    _fmt(errors.get("gotd", {}).get("target_l1"), ".2e"), _fmt(errors.get("pot", {}).get("target_l1"), ".2e"),
                    f"{row['gotd_vs_reference']['top1']:.4f}/{row['pot_vs_reference']['top1']:.4f}",
                    _fmt(pot_log.get("seconds") if pot_log and "error" not in pot_log else None, ".2f"),
                    _fmt(row.get("time_ratio_gotd_over_pot_log"), ".3f")], COMPARE_W)
        if tight is not None and "reference_vs_pot_tight" in row:
            r = row["reference_vs_pot_tight"]
            print(f"   reference check at N={n}: gotd tol={args.reference_tol:g} vs POT stopThr={args.reference_tol:g}/sqrt(M): "
                  f"top1 {r['top1']:.3f} top5 {r['top5']:.3f} spearman {r['spearman']:.6f}", flush=True)


LARGE_HEAD = ["N", "gemm", "path", "wall s", "solve s", "it", "s/it", "peak+ GiB", "tgtL1", "top1 vs fp32", "top5", "spearman"]
LARGE_W = [8, 9, 7, 7, 7, 4, 6, 9, 8, 12, 6, 9]


def gotd_at_scale(args: argparse.Namespace, base: dict[str, Any], scratch: Path, record: dict[str, Any],
                  save: Any) -> None:
    """Part 2: gotd alone at large N in float32 and bfloat16 products, peak memory per configuration."""
    n = args.large_n
    print(f"\n== gotd alone at N={n:.0e}, M={args.m}, d={args.d} (peak+ = peak RSS beyond the embeddings) ==", flush=True)
    _print_row(LARGE_HEAD, LARGE_W)
    spec = {**base, "n": n, "tol": args.tol}
    files = {}
    for gemm in args.large_dtypes:
        files[gemm] = scratch / f"large_{gemm}.npz"
        result = run_worker("gotd", {**spec, "gemm_dtype": gemm, "save": str(files[gemm])}, scratch)
        row = {"n": n, "m": args.m, "d": args.d, "gemm_dtype": gemm, **result}
        if "error" not in result:
            diag = result["diagnostics"]
            row["s_per_iteration"] = diag["seconds"] / diag["iterations"]
            # Validation, cost moments and float copies of the embeddings happen before the timed iterations.
            row["setup_s"] = result["wall_s"] - diag["seconds"]
            if gemm != "float32" and "float32" in files and files["float32"].exists():
                row["vs_float32"] = agreement(_load_f(files[gemm]), _load_f(files["float32"]))
        record["large"].append(row)
        save()
        if "error" in result:
            print(f"{n:.0e}  {gemm}: {result['error']}", flush=True)
            continue
        vs = row.get("vs_float32", {})
        _print_row([f"{n:.0e}", gemm, diag["path"], f"{result['wall_s']:.1f}", f"{diag['seconds']:.1f}",
                    str(diag["iterations"]), f"{row['s_per_iteration']:.2f}",
                    f"{result['peak_beyond_embeddings_bytes'] / GIB:.2f}", f"{diag['marginal_error']:.1e}",
                    _fmt(vs.get("top1"), ".4f"), _fmt(vs.get("top5"), ".4f"), _fmt(vs.get("spearman"), ".5f")], LARGE_W)
    done = {k: str(p) for k, p in files.items() if p.exists()}
    if done:
        eps = next(r["diagnostics"]["eps"] for r in record["large"] if "diagnostics" in r)
        errors = run_worker("marginals", {**spec, "eps": eps, "files": done}, scratch)
        for row in record["large"]:
            row["marginal_errors"] = errors.get(row["gemm_dtype"])
        save()
        print("   marginal L1 errors recomputed in float64 from the potentials: " + ", ".join(
            f"{k}: target {v['target_l1']:.2e} source {v['source_l1']:.2e}" for k, v in errors.items() if isinstance(v, dict)),
            flush=True)


def block_sweep(args: argparse.Namespace, base: dict[str, Any], scratch: Path, record: dict[str, Any],
                save: Any) -> None:
    """Part 3: seconds per iteration against cost entries per block, stored and online paths."""
    n = args.sweep_n
    low, high = args.sweep_iterations
    print(f"\n== block-size sweep at N={n:.0e}, M={args.m}: s/iteration from runs capped at {low} and {high} "
          f"iterations, best of {args.sweep_repeats} ==", flush=True)
    result = run_worker("sweep", {**base, "n": n, "entries": args.sweep_entries, "paths": ["stored", "online"],
                                  "iterations": [low, high], "repeats": args.sweep_repeats}, scratch)
    if "error" in result:
        record["block_sweep"] = {"error": result["error"]}
        print(result["error"], flush=True)
        return
    widths = [7, 12, 10, 10, 8]
    _print_row(["path", "entries/blk", "rows/blk", "s/it", "setup s"], widths)
    for r in result["rows"]:
        _print_row([r["path"], f"{r['entries_per_block']:,}", str(r["block_rows"]), f"{r['s_per_iteration']:.3f}",
                    f"{r['setup_s']:.2f}"], widths)
    fastest = {p: min((r for r in result["rows"] if r["path"] == p), key=lambda r: r["s_per_iteration"])
               for p in ("stored", "online")}
    record["block_sweep"] = {"n": n, "m": args.m, "iterations": [low, high], "rows": result["rows"],
                             "fastest": fastest}
    save()
    for p, r in fastest.items():
        print(f"   fastest {p}: {r['entries_per_block']:,} entries per block ({r['s_per_iteration']:.3f} s/it)", flush=True)


def floors(args: argparse.Namespace, record: dict[str, Any]) -> dict[str, Any]:
    """The targets the solver is held to, judged on what was measured."""
    out: dict[str, Any] = {}
    fp32 = next((r for r in record["large"] if r.get("gemm_dtype") == "float32" and "diagnostics" in r), None)
    if fp32 is not None:
        out["large_n"] = fp32["n"]
        out["large_converged_under_10_min"] = bool(fp32["diagnostics"]["converged"] and fp32["wall_s"] < 600)
        out["large_within_4_gib_beyond_embeddings"] = fp32["peak_beyond_embeddings_bytes"] <= 4 * GIB
    rows = record["comparison"]
    if rows:
        out["at_least_as_fast_as_pot_everywhere"] = all(r["time_ratio_gotd_over_pot"] <= 1.0 for r in rows)
        out["identical_top1_with_pot_everywhere"] = all(r["gotd_vs_pot"]["top1"] == 1.0 for r in rows)
        logs = [r for r in rows if "time_ratio_gotd_over_pot_log" in r]
        if logs:
            out["at_least_as_fast_as_pot_sinkhorn_log_where_run"] = all(r["time_ratio_gotd_over_pot_log"] <= 1.0 for r in logs)
    return out


# ---------------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------------


def gemm_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Best float32 matrix-product throughput of ``repeats`` (size x size) products, GFLOP/s.

    Recorded at the start and the end of a run: a drop means the machine was busy and timings suffered.
    """
    a = torch.randn(size, size)
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - started)
    return 2 * size ** 3 / best / 1e9


def _machine() -> dict[str, Any]:
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = set()
    try:
        flags = {f for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
                 for f in line.split(":", 1)[1].split()}
    except OSError:
        pass
    return {"cpu_model": model, "torch_threads": torch.get_num_threads(), "avx512_bf16": "avx512_bf16" in flags,
            "memory_total_gib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only (a couple of minutes)")
    parser.add_argument("--out", type=Path, help="result JSON (default benchmarks/results/ot_<device>[_quick].json)")
    parser.add_argument("--device", default=None, help="torch device for gotd (default: cuda if available, else cpu)")
    parser.add_argument("--parts", default="compare,large,sweep", help="comma-separated subset of compare,large,sweep")
    parser.add_argument("--sizes", type=lambda s: [int(float(v)) for v in s.split(",")],
                        help="N values for the POT comparison (default 1e4,3e4,1e5,2e5,3e5,5e5; stops when POT no longer fits)")
    parser.add_argument("--m", type=int, default=1000)
    parser.add_argument("--d", type=int, default=384)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eps-rel", type=float, default=DEFAULT_EPS_REL)
    parser.add_argument("--tol", type=float, default=DEFAULT_TOL)
    parser.add_argument("--reference-tol", type=float, default=1e-5, help="tol of the tightly converged reference solve")
    parser.add_argument("--pot-max-iter", type=int, default=10_000)
    parser.add_argument("--log-max-n", type=int, default=100_000,
                        help="largest N for POT's (slow) log-domain method, sinkhorn_log (default 1e5)")
    parser.add_argument("--pot-bytes-per-entry", type=float, default=48.0,
                        help="POT memory per cost entry before one was measured (6 float64 N x M arrays)")
    parser.add_argument("--memory-fraction", type=float, default=0.8, help="use at most this share of MemAvailable")
    parser.add_argument("--large-n", type=int, default=None, help="N for part 2 (default 1e6)")
    parser.add_argument("--large-dtypes", default="float32,bfloat16")
    parser.add_argument("--sweep-n", type=int, default=None, help="N for part 3 (default 1e5)")
    parser.add_argument("--sweep-entries", type=lambda s: [int(float(v)) for v in s.split(",")], default=None,
                        help="cost entries per block (default 2^18,2^20,2^22,2^24)")
    parser.add_argument("--sweep-repeats", type=int, default=3, help="timed runs per setting; the best is kept")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs of each solve, gotd and POT alike; the fastest is reported")
    parser.add_argument("--repeat-budget", type=float, default=60.0,
                        help="stop repeating a solve once its runs took this many seconds in all")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars in the solves")
    args = parser.parse_args(argv)
    quick = args.quick
    args.sizes = args.sizes or ([10_000, 30_000] if quick else [10_000, 30_000, 100_000, 200_000, 300_000, 500_000])
    args.large_n = args.large_n or (100_000 if quick else 1_000_000)
    args.sweep_n = args.sweep_n or (30_000 if quick else 100_000)
    args.sweep_entries = args.sweep_entries or ([1 << 20, 1 << 22] if quick else [1 << 18, 1 << 20, 1 << 22, 1 << 24])
    args.sweep_iterations = (1, 3) if quick else (2, 8)
    args.large_dtypes = args.large_dtypes.split(",")
    args.parts = set(args.parts.split(","))
    unknown = args.parts - {"compare", "large", "sweep"}
    if unknown:
        parser.error(f"--parts: unknown {sorted(unknown)}; choose from compare, large, sweep")
    args.device = str(args.device or default_device())
    if args.out is None:
        machine = torch.device(args.device).type
        args.out = RESULTS_DIR / f"ot_{machine}{'_quick' if quick else ''}.json"
    return args


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) == 3 and sys.argv[1] == "--worker":
        return worker_main(sys.argv[2])
    args = parse_args(argv)
    base = {"m": args.m, "seed": args.seed, "clusters": asdict(ClusterSpec(d=args.d)), "eps_rel": args.eps_rel,
            "device": args.device, "progress": not args.no_progress, "repeats": args.repeats,
            "repeat_budget_s": args.repeat_budget}
    record: dict[str, Any] = {
        "benchmark": "ot", "quick": args.quick, "provenance": provenance(args.device), "machine": _machine(),
        "settings": {"m": args.m, "d": args.d, "seed": args.seed, "eps_rel": args.eps_rel, "tol": args.tol,
                     "reference_tol": args.reference_tol, "clusters": base["clusters"],
                     "timing": f"best of up to {args.repeats} runs per solve, fewer once {args.repeat_budget:g} s were spent",
                     "pot_method": "ot.sinkhorn (method='sinkhorn', and 'sinkhorn_log' up to --log-max-n), float64, stopThr = tol / sqrt(M)",
                     "pot_time_includes": "float64 conversion and ot.dist cost matrix"},
        "comparison": [], "comparison_skipped": [], "large": [], "block_sweep": None,
    }

    def save() -> None:
        record["floors"] = floors(args, record)
        write_json_atomic(args.out, record)

    print(f"gotd OT benchmark on {record['machine']['cpu_model']} ({record['machine']['torch_threads']} threads), "
          f"device {args.device}; results -> {args.out}", flush=True)
    record["machine"]["gemm_gflops_at_start"] = gemm_gflops()
    with tempfile.TemporaryDirectory(prefix="bench_ot_") as tmp:
        scratch = Path(tmp)
        if "compare" in args.parts:
            compare_with_pot(args, base, scratch, record, save)
        if "large" in args.parts:
            gotd_at_scale(args, base, scratch, record, save)
        if "sweep" in args.parts:
            block_sweep(args, base, scratch, record, save)
    record["machine"]["gemm_gflops_at_end"] = gemm_gflops()
    save()
    print(f"\nfloat32 GEMM throughput: {record['machine']['gemm_gflops_at_start']:.0f} GFLOP/s at the start, "
          f"{record['machine']['gemm_gflops_at_end']:.0f} at the end")
    print("floors: " + json.dumps(record["floors"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
