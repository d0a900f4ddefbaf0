"""Speed and agreement of gotd's ``dsir`` selector against the reference package ``data-selection``.

Both run in this process on the same synthetic texts: a Zipf-distributed vocabulary with punctuation,
pool texts of 40-400 tokens (so some fall under the 100-token filter), target texts from a shifted
vocabulary. The package (``data_selection.HashedNgramDSIR``, ``num_proc`` processes, its defaults:
10,000 buckets, unigrams + bigrams, ``min_example_length=100``) runs ``fit_importance_estimator``,
``compute_importance_weights`` and ``resample`` on JSONL files, timed together; gotd runs
``run_selector(..., method="dsir")`` on the lists of texts, with the same seed. Each side is timed as
the best of ``--repeats`` runs. Printed and written: seconds, the speed ratio, the Spearman correlation
of the log importance weights, whether the selected sets are equal, the load average before and after,
and the CPU model and flags.

Usage::

    python benchmarks/bench_dsir.py              # 20,000 pool texts (a few minutes on 2 cores)
    python benchmarks/bench_dsir.py --quick      # 3,000 pool texts

Writes ``benchmarks/results/dsir_cpu.json`` (``dsir_cpu_quick.json`` with ``--quick``) atomically.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from gotd._io import provenance, write_json_atomic
from gotd.selectors import run_selector

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PUNCT = [",", ".", "!", "?", ";", "(", ")", "--", "'s", "n't", "...", "3,000", "e-mail", "U.S."]


def make_texts(n_pool: int, n_target: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(20_000)] + PUNCT)
    zipf = 1.0 / np.arange(1, vocab.size + 1)
    pool_p = zipf / zipf.sum()
    target_p = np.roll(zipf, 500)
    target_p /= target_p.sum()  # the target's frequent words are the pool's mid-frequency ones

    def draw(p: np.ndarray, lo: int, hi: int) -> str:
        return " ".join(rng.choice(vocab, size=int(rng.integers(lo, hi)), p=p))

    return [draw(pool_p, 40, 400) for _ in range(n_pool)], [draw(target_p, 100, 300) for _ in range(n_target)]


def run_package(pool: list[str], target: list[str], budget: int, seed: int, num_proc: int) -> tuple[float, np.ndarray, set[int]]:
    from data_selection import HashedNgramDSIR

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "raw.jsonl").write_text("".join(json.dumps({"text": t, "row": i}) + "\n" for i, t in enumerate(pool)))
        (root / "target.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in target))
        started = time.perf_counter()
        dsir = HashedNgramDSIR([str(root / "raw.jsonl")], [str(root / "target.jsonl")], cache_dir=str(root / "cache"),
                               num_proc=num_proc)
        dsir.fit_importance_estimator(num_tokens_to_fit="auto")
        dsir.compute_importance_weights()
        np.random.seed(seed)
        dsir.resample(out_dir=str(root / "out"), num_to_sample=budget, cache_dir=str(root / "resampled"))
        seconds = time.perf_counter() - started
        # shard i holds rows i, i + num_proc, ... (the package's virtual sharding): back to pool order
        weights = np.empty(len(pool))
        for i in range(num_proc):
            weights[i::num_proc] = np.load(root / "cache" / "log_importance_weights" / f"{i}.npy")
        rows = {json.loads(line)["row"] for f in sorted((root / "out").glob("*.jsonl"))
                for line in f.read_text().splitlines()}
    return seconds, weights, rows


def distinct_bigram_share(texts: list[str]) -> float:
    """Distinct bigrams / bigram occurrences: what gotd hashes / what the package hashes (for bigrams)."""
    seen, total = set(), 0
    for t in texts:
        w = t.lower().split()
        seen.update(zip(w, w[1:]))
        total += max(len(w) - 1, 0)
    return len(seen) / max(total, 1)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1])


def cpu() -> dict[str, Any]:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), None)
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    wanted = ("sse4_2", "avx", "avx2", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_bf16", "sha_ni")
    return {"cpu_model": model, "cpu_count": os.cpu_count(), "flags": [f for f in wanted if f in flags]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--num-proc", type=int, default=1, help="the package's processes (1: the same order of rows)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    n_pool, n_target = (3_000, 300) if args.quick else (20_000, 1_000)
    budget, seed = n_pool // 10, 0
    pool, target = make_texts(n_pool, n_target)
    load_before = os.getloadavg()
    package_s, weights, package_rows = min((run_package(pool, target, budget, seed, args.num_proc)
                                            for _ in range(args.repeats)), key=lambda r: r[0])
    ours = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            sel = run_selector(pool, target, budget, method="dsir", seed=seed)
        ours.append(time.perf_counter() - started)
    load_after = os.getloadavg()
    result = {
        "n_pool": n_pool, "n_target": n_target, "budget": budget, "seed": seed, "package_num_proc": args.num_proc,
        "pool_tokens": int(sum(len(t.split()) for t in pool)),
        "distinct_bigram_share": distinct_bigram_share(pool),
        "package_seconds": package_s, "gotd_seconds": min(ours), "speedup": package_s / min(ours),
        "spearman_log_weights": spearman(sel.all_scores, weights),
        "max_abs_weight_difference": float(np.max(np.abs(sel.all_scores - weights))),
        # with num_proc > 1 the package draws its Gumbel noise in shard order, so only num_proc=1 draws the same noise
        "same_selected_set": set(sel.indices.tolist()) == package_rows,
        "overlap_selected": len(set(sel.indices.tolist()) & package_rows) / budget,
        "n_short": sel.diagnostics["n_short"], "load_average_before": load_before, "load_average_after": load_after,
        **cpu(), "provenance": provenance("cpu"),
    }
    out = args.out or RESULTS_DIR / f"dsir_cpu{'_quick' if args.quick else ''}.json"
    write_json_atomic(out, result)
    print(f"dsir on {n_pool} pool / {n_target} target texts ({result['pool_tokens']} pool tokens), budget {budget}")
    print(f"  data-selection (num_proc={args.num_proc}): {package_s:.2f} s   gotd: {min(ours):.2f} s   "
          f"ratio {result['speedup']:.1f}x")
    print(f"  Spearman {result['spearman_log_weights']:.6f}, max |dw| {result['max_abs_weight_difference']:.2e}, "
          f"same selected set: {result['same_selected_set']} (distinct bigram share "
          f"{result['distinct_bigram_share']:.2f})")
    print(f"  load average before {load_before}, after {load_after}; {result['cpu_model']}; flags {result['flags']}")
    print(f"  wrote {out}")
    return result


if __name__ == "__main__":
    main()
