"""The kit's main job on the built-in data: GOT-D and every baseline at one budget, with a summary.

Pool: Wikipedia leads plus news headlines, political debate statements and convention speeches, chunked to
1000 characters, with a ``domain`` column. Target: the training split of the Rotten Tomatoes review
snippets, packed to 1000 characters. Everything comes from PyPI packages (see :mod:`gotd.assets`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from gotd._io import atomic_path, provenance, write_json_atomic, write_text_atomic
from gotd.embed import Encoder
from gotd.pipeline import (NO_INPUT_METHODS, PROGRESS_METHODS, TEXT_METHODS, embed_frames, prepare_pool,
                           prepare_target)
from gotd.selection import save_selection
from gotd.selectors import run_selector

DEMO_METHODS = ("gotd", "matching", "knn", "dsir", "random")
DEMO_TARGET = "rotten-tomatoes"


def run_demo(
    out_dir: str | os.PathLike[str] = "reports/demo",
    *,
    data_dir: str | os.PathLike[str] = "data",
    budget: int = 500,
    methods: tuple[str, ...] = DEMO_METHODS,
    seed: int = 0,
    chunk_chars: int = 1000,
    cache_dir: str | os.PathLike[str] | None = None,
    encoder: Encoder | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Fetch the demo data, select ``budget`` pool chunks with each method, write the report.

    Returns
    -------
    pandas.DataFrame
        The domain make-up of each method's selection (share of the budget per pool domain), also written
        to ``<out_dir>/domain_shares.csv`` next to each selection file and ``summary.md``.
    """
    from gotd import assets

    out = Path(out_dir)
    assets.fetch(DEMO_TARGET, data_dir=data_dir)
    pool = prepare_pool(assets.build_demo_pool(data_dir=data_dir, fetch_missing=True), chunk_chars=chunk_chars,
                        progress=progress)
    target = prepare_target(assets.load(DEMO_TARGET, data_dir=data_dir, split="train"), chunk_chars=chunk_chars)
    encoder = encoder or Encoder()
    if any(m not in TEXT_METHODS | NO_INPUT_METHODS for m in methods):
        pool_emb, target_emb = embed_frames([pool, target], encoder=encoder, cache_dir=cache_dir, progress=progress)
    shares, overlap_sets, rows = {}, {}, []
    for method in methods:
        if method in TEXT_METHODS:
            inputs = (pool["text"].tolist(), target["text"].tolist())
        else:
            inputs = (pool_emb, target_emb)
        options: dict[str, Any] = {"progress": progress} if method in PROGRESS_METHODS else {}
        selection = run_selector(inputs[0], inputs[1], budget, method=method, seed=seed, **options)
        save_selection(selection, out / f"{method}.jsonl", records=pool,
                       extra={"encoder": encoder.settings(), "pool_rows": len(pool), "target_rows": len(target),
                              "target": DEMO_TARGET})
        chosen = pool.iloc[selection.indices]
        shares[method] = chosen["domain"].value_counts(normalize=True)
        overlap_sets[method] = set(selection.indices.tolist())
        rows.append({"method": method, "budget": budget, **{k: v for k, v in selection.diagnostics.items()
                                                             if k in ("eps", "eps_rel", "iterations",
                                                                      "marginal_error", "seconds")}})
    table = pd.DataFrame(shares).fillna(0.0).T
    table.loc["pool"] = pool["domain"].value_counts(normalize=True)
    table = table.fillna(0.0).round(3)
    with atomic_path(out / "domain_shares.csv") as tmp:
        table.to_csv(tmp)
    overlap = pd.DataFrame({a: {b: len(overlap_sets[a] & overlap_sets[b]) / budget for b in methods} for a in methods})
    write_text_atomic(out / "summary.md", _summary(table, overlap, pd.DataFrame(rows), len(pool), len(target), budget))
    write_json_atomic(out / "run.json", {"budget": budget, "methods": list(methods), "seed": seed,
                                          "chunk_chars": chunk_chars, "pool_rows": len(pool),
                                          "target_rows": len(target), "encoder": encoder.settings(),
                                          **provenance(device=encoder.device)})
    return table


def _summary(shares: pd.DataFrame, overlap: pd.DataFrame, runs: pd.DataFrame, n_pool: int, n_target: int,
             budget: int) -> str:
    return "\n".join([
        "# gotd demo",
        "",
        f"Pool: {n_pool} chunks (Wikipedia leads, Guardian headlines, debates, convention speeches). "
        f"Target: {n_target} packed Rotten Tomatoes review texts (train split). Budget: {budget} chunks.",
        "",
        "## Domain make-up of each selection (share of the budget)",
        "",
        shares.to_markdown() if _has_tabulate() else shares.to_string(),
        "",
        "## Overlap between methods (share of the budget in common)",
        "",
        overlap.round(3).to_markdown() if _has_tabulate() else overlap.round(3).to_string(),
        "",
        "## Solves",
        "",
        runs.to_markdown(index=False) if _has_tabulate() else runs.to_string(index=False),
        "",
    ])


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True
