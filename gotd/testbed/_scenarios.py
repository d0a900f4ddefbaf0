"""The testbed's scenarios: a pool (the tiny LM's pre-training data), a target, and held-out texts.

Every subsample is seeded, explicit and recorded in ``Scenario.report`` (sizes drawn from which table, the
domain make-up); nothing is cut silently. Pool, target and held-out texts never share a document.

One pool for both scenarios: the partial-coverage pool (common domains plus ``rare_share`` of the rare one),
drawn once with one seed, so that one embedding pass and one pre-trained LM serve both.

``task`` (the paper's Tables 3-4: few labels after pre-fine-tuning)
    A real built-in task as the target: ``n_target`` unlabelled texts of its train split (the reservoir each
    seed draws its target sample from) against the shared pool. Accuracy after fine-tuning on labels is
    measured on ``n_test`` texts of the task's test split; the labels come from the train split's other
    texts, redrawn per seed.
``partial`` (the paper's Fig. 3)
    Partial coverage with real text (the cats-and-dogs case): the target is half ``common`` domain, half
    ``rare`` domain; the pool holds the common domains and only ``rare_share`` of the rare one. Matching
    copies the target's 50/50 make-up; GOT-D should favour the domain the pool under-represents.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gotd.data import count_exact_duplicates
from gotd.errors import GotdInputError

SCENARIOS = ("task", "partial")


@dataclass
class Scenario:
    """Texts of one scenario; every frame has ``text`` and ``domain`` (labelled frames also ``label``)."""

    name: str
    pool: pd.DataFrame
    target: pd.DataFrame
    test: pd.DataFrame
    pool_heldout: pd.DataFrame
    labelled: dict[str, pd.DataFrame] = field(default_factory=dict)   # train / dev / test, with ``label``
    report: dict[str, Any] = field(default_factory=dict)

    def frames(self) -> dict[str, pd.DataFrame]:
        """Every table by file stem (``pool``, ``target``, ``test``, ``pool_heldout``, ``labelled_<split>``)."""
        out = {"pool": self.pool, "target": self.target, "test": self.test, "pool_heldout": self.pool_heldout}
        out.update({f"labelled_{k}": v for k, v in self.labelled.items()})
        return out


def _make_up(frame: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in frame["domain"].value_counts().sort_index().items()}


def draw_by_document(chunks: pd.DataFrame, counts: dict[str, int], seed: int, what: str) -> dict[str, pd.DataFrame]:
    """Draw disjoint sets of chunks, ``counts[role]`` each, so that no document spans two roles.

    Documents are visited in a seeded random order and each whole document goes to the first role still
    short of chunks; a role then keeps its first ``counts[role]`` chunks (the tail of its last document is
    dropped, not given to another role).
    """
    need = sum(counts.values())
    if len(chunks) < need:
        raise GotdInputError(f"{what}: {need} chunks needed ({counts}) but only {len(chunks)} exist; lower the "
                             "sizes (n_pool, n_target, n_test, n_heldout)")
    doc_col = "doc_id" if "doc_id" in chunks.columns else "id"
    docs = chunks[doc_col].drop_duplicates().to_numpy()
    order = np.random.default_rng(seed).permutation(len(docs))
    groups = chunks.groupby(doc_col, sort=False).indices
    taken: dict[str, list[int]] = {r: [] for r in counts}
    roles = iter(counts)
    role = next(roles)
    for d in order:
        while role is not None and len(taken[role]) >= counts[role]:
            role = next(roles, None)
        if role is None:
            break
        taken[role].extend(groups[docs[d]].tolist())
    short = {r: len(v) for r, v in taken.items() if len(v) < counts[r]}
    if short:
        raise GotdInputError(f"{what}: not enough documents for {short} (wanted {counts}); lower the sizes")
    return {r: chunks.iloc[v[:counts[r]]].reset_index(drop=True) for r, v in taken.items()}


def task_scenario(task: str, data_dir: str | os.PathLike[str] = "data", *, n_pool: int = 4000, n_target: int = 500,
                  n_test: int = 300, n_heldout: int = 200, n_dev: int = 200, chunk_chars: int = 400,
                  seed: int = 0, pool: pd.DataFrame | None = None, n_task_test: int | None = None,
                  task_splits: dict[str, pd.DataFrame] | None = None, **pool_options: Any) -> Scenario:
    """Scenario ``task``: ``task``'s unlabelled train texts as the target against the shared pool (module doc).

    The pool and held-out pool text are the ones :func:`partial_scenario` draws with the same sizes (its
    target and test documents are held out of the pool, so the sizes must match the partial scenario's), seed
    and ``pool_options`` (one shared pool, so one embedding pass and one pre-trained LM serve both
    scenarios). ``n_target`` train texts are the target reservoir (each seed draws its target sample from
    it), the train split's other texts are the labels (each seed draws its own), ``n_dev`` dev texts and
    ``n_task_test`` test texts (default ``n_test``) are fixed. ``n_test`` also sizes the partial scenario's
    draw that the shared pool comes from, so the task's own test count is a parameter of its own: more test
    texts narrow the downstream intervals without changing the pool. ``task_splits`` may pass the
    ``train``/``dev``/``test`` tables
    (columns ``text``, ``label``).
    """
    from gotd import assets

    shared = partial_scenario(data_dir, n_pool=n_pool, n_target=n_target, n_test=n_test, n_heldout=n_heldout,
                              chunk_chars=chunk_chars, seed=seed, pool=pool, **pool_options)
    if task_splits is None:
        info = assets.task_info(task)
        text_field, label_field = info.text_field, info.label_field
        splits = {s: assets.load(task, data_dir, split=s) for s in ("train", "dev", "test")}
    else:
        text_field, label_field, splits = "text", "label", task_splits
    rng = np.random.default_rng(seed + 1)

    def take(frame: pd.DataFrame, n: int, what: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        if len(frame) < n:
            raise GotdInputError(f"{task} {what}: {n} texts wanted but the split has {len(frame)}")
        idx = rng.permutation(len(frame))
        pick = frame.iloc[idx[:n]]
        rest = frame.iloc[idx[n:]]
        out = pick.rename(columns={text_field: "text", label_field: "label"})[["text", "label"]]
        return out.assign(domain=task).reset_index(drop=True), rest
    n_task_test = n_test if n_task_test is None else n_task_test
    target, train_rest = take(splits["train"], n_target, "train (target)")
    test, _ = take(splits["test"], n_task_test, "test")
    dev, _ = take(splits["dev"], n_dev, "dev")
    train_labels = train_rest.rename(columns={text_field: "text", label_field: "label"})
    train_labels = train_labels[["text", "label"]].assign(domain=task).reset_index(drop=True)
    report = {**{k: v for k, v in shared.report.items() if k not in ("target_make_up", "test_make_up", "scenario")},
              "scenario": "task", "task": task, "target_reservoir": n_target, "labels_reservoir": len(train_labels),
              "sizes": {"pool": n_pool, "pool_heldout": n_heldout, "target": n_target, "test": n_task_test,
                        "dev": n_dev},
              "task_subsample": f"{n_target} target texts (the reservoir each seed draws from), {n_task_test} test "
                                f"and {n_dev} dev texts drawn at random (seed+1); labels from the other train "
                                "texts"}
    return Scenario("task", shared.pool, target.drop(columns="label"), test, shared.pool_heldout,
                    {"train": train_labels, "dev": dev, "test": test}, report)


def partial_scenario(data_dir: str | os.PathLike[str] = "data", *, common: tuple[str, ...] = ("wikipedia", "science",
                     "news", "politics"), target_common: str = "wikipedia", rare: str = "tweets",
                     rare_share: float = 0.02, n_pool: int = 4000, n_target: int = 500, n_test: int = 300,
                     n_heldout: int = 200, chunk_chars: int = 400, seed: int = 0,
                     pool: pd.DataFrame | None = None) -> Scenario:
    """Scenario ``partial``: target = half ``target_common``, half ``rare``; the pool has ``rare_share`` of ``rare``.

    The common part of the pool is drawn uniformly from the chunks of the ``common`` domains (so its make-up
    follows the built-in pool's); the held-out pool text has the pool's make-up.
    """
    from gotd import assets

    if not 0 < rare_share < 0.5:
        raise GotdInputError(f"rare_share={rare_share} must be in (0, 0.5): the rare domain must be rare")
    # the full table's duplicates are not the testbed's: its own pool's count is in the report below
    full = assets.build_pool(data_dir, chunk_chars=chunk_chars, warn_duplicates=False) if pool is None else pool
    missing = [d for d in (*common, rare) if d not in set(full["domain"])]
    if missing:
        raise GotdInputError(f"domains {missing} are not in the pool table (domains: {sorted(set(full['domain']))})")
    n_rare = int(round(rare_share * n_pool))
    n_rare_held = int(round(rare_share * n_heldout))
    half_t, half_s = n_target // 2, n_test // 2
    rare_draw = draw_by_document(full[full["domain"] == rare], {"pool": n_rare, "pool_heldout": n_rare_held,
                                 "target": n_target - half_t, "test": n_test - half_s}, seed, f"rare domain {rare}")
    tc = full[full["domain"] == target_common]
    others = full[full["domain"].isin([d for d in common if d != target_common])]
    # The target's common half comes from target_common documents the pool never sees; the pool's common part
    # is drawn from the remaining documents of all common domains.
    tc_draw = draw_by_document(tc, {"target": half_t, "test": half_s}, seed + 1, f"target domain {target_common}")
    used = set(tc_draw["target"].get("doc_id", [])) | set(tc_draw["test"].get("doc_id", []))
    rest = pd.concat([tc[~tc["doc_id"].isin(used)], others], ignore_index=True)
    common_draw = draw_by_document(rest, {"pool": n_pool - n_rare, "pool_heldout": n_heldout - n_rare_held},
                                   seed + 2, "common domains")
    rng = np.random.default_rng(seed + 3)

    def mix(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
        both = pd.concat([a, b], ignore_index=True)
        return both.iloc[rng.permutation(len(both))].reset_index(drop=True)
    pool_df = mix(common_draw["pool"], rare_draw["pool"])
    held = mix(common_draw["pool_heldout"], rare_draw["pool_heldout"])
    target = mix(tc_draw["target"], rare_draw["target"])
    test = mix(tc_draw["test"], rare_draw["test"])
    report = {"scenario": "partial", "seed": seed, "chunk_chars": chunk_chars, "rare": rare, "rare_share": rare_share,
              "target_common": target_common, "common": list(common), "pool_table_chunks": len(full),
              "pool_exact_duplicates": count_exact_duplicates(pool_df["text"].tolist()),
              "sizes": {"pool": n_pool, "pool_heldout": n_heldout, "target": n_target, "test": n_test},
              "pool_make_up": _make_up(pool_df), "target_make_up": _make_up(target), "test_make_up": _make_up(test),
              "subsample": "draw_by_document per domain group, seeds seed..seed+3"}
    return Scenario("partial", pool_df, target, test, held, {}, report)


def build_scenario(name: str, data_dir: str | os.PathLike[str] = "data", *, task: str = "rotten-tomatoes",
                   **sizes: Any) -> Scenario:
    """:func:`task_scenario` (``name="task"``) or :func:`partial_scenario` (``name="partial"``)."""
    if name == "task":
        return task_scenario(task, data_dir, **sizes)
    if name == "partial":
        sizes.pop("n_dev", None)
        sizes.pop("n_task_test", None)
        return partial_scenario(data_dir, **sizes)
    raise GotdInputError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}")


def save_scenario(scenario: Scenario, folder: str | os.PathLike[str]) -> None:
    """Write every table as ``<folder>/<stem>.parquet`` and the report as ``scenario.json`` (atomically)."""
    from pathlib import Path

    from gotd._io import atomic_path, write_json_atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stem, frame in scenario.frames().items():
        with atomic_path(folder / f"{stem}.parquet") as tmp:
            frame[[c for c in ("id", "doc_id", "text", "domain", "label") if c in frame.columns]].to_parquet(
                tmp, index=False)
    write_json_atomic(folder / "scenario.json", {"name": scenario.name, "labelled": sorted(scenario.labelled),
                                                 "report": scenario.report})


def load_scenario(folder: str | os.PathLike[str]) -> Scenario:
    """Read back a :func:`save_scenario` folder."""
    import json
    from pathlib import Path

    folder = Path(folder)
    meta_path = folder / "scenario.json"
    if not meta_path.is_file():
        raise GotdInputError(f"{folder} holds no scenario.json; run the testbed's pretrain stage first")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    read = lambda stem: pd.read_parquet(folder / f"{stem}.parquet")  # noqa: E731
    return Scenario(meta["name"], read("pool"), read("target"), read("test"), read("pool_heldout"),
                    {k: read(f"labelled_{k}") for k in meta["labelled"]}, meta["report"])
