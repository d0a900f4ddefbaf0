"""``gotd select-demo``: the select stage alone on the built-in data, GOT-D and every baseline at one budget.

(The kit's main job, with pre-fine-tuning, evaluation and the comparison, is ``gotd run demo``.)

Pool: Wikipedia leads plus news headlines, political debate statements and convention speeches, chunked to
1000 characters, with a ``domain`` column. Target: the training split of the Rotten Tomatoes review
snippets, packed to 1000 characters. Everything comes from PyPI packages (see :mod:`gotd.assets`).
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from gotd._io import atomic_path, provenance, write_json_atomic, write_text_atomic
from gotd.embed import Encoder
from gotd.outputs import check_output
from gotd.stages import select_stage

SELECT_DEMO_TARGET = "rotten-tomatoes"
RECORD_FILE = "select-demo.json"
"""This command's record; ``gotd run demo`` writes its own ``run.json`` into ``reports/demo/``."""


def select_demo_methods() -> list[str]:
    """The methods ``gotd select-demo`` compares: the selection methods of the main job's extended run config
    (``gotd/configs/demo-extended.yaml``: every method; ``demo.yaml`` runs a subset in its 10 minutes); its
    control that selects nothing from the pool (``oracle``) is left out."""
    from gotd import selectors
    from gotd.runner.config import load_config

    return [m for m in load_config("demo-extended").grid["method"] if m in selectors.available_methods()]


def run_select_demo(
    out_dir: str | os.PathLike[str] = "reports/select-demo",
    *,
    data_dir: str | os.PathLike[str] = "data",
    budget: int = 500,
    methods: tuple[str, ...] | None = None,
    seed: int = 0,
    chunk_chars: int = 1000,
    cache_dir: str | os.PathLike[str] | None = None,
    encoder: Encoder | None = None,
    shard_size: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Fetch the built-in data, select ``budget`` pool chunks with each method (the select stage), write the report.

    ``methods=None`` compares the methods of the ``demo`` run config (:func:`select_demo_methods`).

    Returns
    -------
    pandas.DataFrame
        The domain make-up of each method's selection (share of the budget per pool domain), also written
        to ``<out_dir>/domain_shares.csv`` next to each selection file, ``summary.md`` and
        ``select-demo.json``.
    """
    # gotd's own demo folder (its record says so) or a new one; not a data set; writable
    out = check_output(out_dir, folder=True, record=RECORD_FILE, inputs={"data_dir": data_dir}, replaces_folder=True)
    methods = tuple(methods or select_demo_methods())
    result = select_stage("builtin", SELECT_DEMO_TARGET, budget, methods=methods, out=out, seed=seed, encoder=encoder,
                          cache_dir=cache_dir, shard_size=shard_size, progress=progress,
                          load={"chunk_chars": chunk_chars, "data_dir": Path(data_dir).absolute(),
                                "target_split": "train"},
                          record={"target": SELECT_DEMO_TARGET, "chunk_chars": chunk_chars})
    pool = result.pool
    shares, rows = {}, []
    for method, selection in result.selections.items():
        shares[method] = pool.iloc[selection.indices]["domain"].value_counts(normalize=True)
        rows.append({"method": method, "budget": budget, **{k: v for k, v in selection.diagnostics.items()
                                                             if k in ("eps", "eps_rel", "iterations",
                                                                      "marginal_error", "seconds")}})
    table = pd.DataFrame(shares).fillna(0.0).T
    table.loc["pool"] = pool["domain"].value_counts(normalize=True)
    table = table.fillna(0.0).round(3)
    with atomic_path(out / "domain_shares.csv") as tmp:
        table.to_csv(tmp)
    chosen = {m: set(s.indices.tolist()) for m, s in result.selections.items()}
    overlap = pd.DataFrame({a: {b: len(chosen[a] & chosen[b]) / budget for b in methods} for a in methods})
    write_text_atomic(out / "summary.md", _summary(table, overlap, pd.DataFrame(rows), len(pool), len(result.target),
                                                   budget))
    write_json_atomic(out / RECORD_FILE, {"budget": budget, "methods": list(methods), "seed": seed,
                                          "chunk_chars": chunk_chars, "pool_rows": len(pool),
                                          "target_rows": len(result.target), "encoder": result.encoder_settings,
                                          "n_exact_duplicates": result.n_exact_duplicates,
                                          **provenance(device=result.encoder_settings.get("device"))})
    return table


def _summary(shares: pd.DataFrame, overlap: pd.DataFrame, runs: pd.DataFrame, n_pool: int, n_target: int,
             budget: int) -> str:
    return "\n".join([
        "# gotd select-demo",
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
