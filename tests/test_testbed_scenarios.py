"""Testbed scenarios: disjoint documents, the requested sizes and shares, seeded, recorded."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gotd.errors import GotdInputError
from gotd.testbed import _scenarios


def _chunks() -> pd.DataFrame:
    rows = []
    for domain, docs in {"wikipedia": 300, "science": 200, "news": 150, "tweets": 400}.items():
        for d in range(docs):
            for k in range(1 + d % 3):                      # documents of one to three chunks
                rows.append({"id": f"{domain}/{d}#{k}", "doc_id": f"{domain}/{d}", "text": f"{domain} {d} {k}",
                             "domain": domain})
    return pd.DataFrame(rows)


def test_draw_by_document_is_disjoint_sized_and_seeded() -> None:
    chunks = _chunks()
    a = _scenarios.draw_by_document(chunks, {"x": 100, "y": 50}, seed=0, what="t")
    b = _scenarios.draw_by_document(chunks, {"x": 100, "y": 50}, seed=0, what="t")
    assert len(a["x"]) == 100 and len(a["y"]) == 50
    assert not set(a["x"]["doc_id"]) & set(a["y"]["doc_id"])
    assert a["x"]["id"].tolist() == b["x"]["id"].tolist()
    c = _scenarios.draw_by_document(chunks, {"x": 100, "y": 50}, seed=1, what="t")
    assert a["x"]["id"].tolist() != c["x"]["id"].tolist()
    with pytest.raises(GotdInputError, match="needed"):
        _scenarios.draw_by_document(chunks, {"x": 10 ** 6}, seed=0, what="t")


def test_partial_scenario_makes_the_rare_domain_rare_in_the_pool_and_half_the_target() -> None:
    sc = _scenarios.partial_scenario(pool=_chunks(), common=("wikipedia", "science", "news"), rare="tweets",
                                     rare_share=0.02, n_pool=500, n_target=100, n_test=60, n_heldout=50, seed=0)
    assert len(sc.pool) == 500 and (sc.pool["domain"] == "tweets").sum() == 10
    assert sc.target["domain"].value_counts().to_dict() == {"wikipedia": 50, "tweets": 50}
    assert sc.test["domain"].value_counts().to_dict() == {"wikipedia": 30, "tweets": 30}
    docs = {k: set(f["doc_id"]) for k, f in sc.frames().items()}
    for a in docs:
        for b in docs:
            if a < b:
                assert not docs[a] & docs[b], (a, b)
    assert sc.report["pool_make_up"]["tweets"] == 10 and sc.report["rare_share"] == 0.02


def test_task_scenario_uses_given_splits_and_keeps_target_out_of_the_labels() -> None:
    rng = np.random.default_rng(0)
    splits = {s: pd.DataFrame({"text": [f"{s} review {i}" for i in range(n)],
                               "label": rng.choice(["pos", "neg"], n)}) for s, n in (("train", 300), ("dev", 60),
                                                                                      ("test", 60))}
    common = {"common": ("wikipedia", "science", "news"), "rare": "tweets"}
    sc = _scenarios.task_scenario("toy", pool=_chunks(), task_splits=splits, n_pool=400, n_target=100, n_test=50,
                                  n_heldout=40, n_dev=30, seed=0, **common)
    assert len(sc.pool) == 400 and len(sc.target) == 100 and len(sc.test) == 50
    partial = _scenarios.partial_scenario(pool=_chunks(), n_pool=400, n_target=100, n_test=50, n_heldout=40, seed=0,
                                          **common)
    assert sc.pool["text"].tolist() == partial.pool["text"].tolist()          # one shared pool
    assert sc.pool_heldout["text"].tolist() == partial.pool_heldout["text"].tolist()
    assert not set(sc.target["text"]) & set(sc.labelled["train"]["text"])
    assert sc.labelled["test"]["text"].tolist() == sc.test["text"].tolist()
    assert sc.report["sizes"]["pool"] == 400 and sc.report["pool_table_chunks"] == len(_chunks())
    # more task test texts: the same pool and target, the earlier test texts among them
    more = _scenarios.task_scenario("toy", pool=_chunks(), task_splits=splits, n_pool=400, n_target=100, n_test=50,
                                    n_heldout=40, n_dev=30, seed=0, n_task_test=60, **common)
    assert len(more.test) == 60 and more.report["sizes"]["test"] == 60
    assert more.pool["text"].tolist() == sc.pool["text"].tolist() and more.target.equals(sc.target)
    assert more.test["text"].tolist()[:50] == sc.test["text"].tolist()
    with pytest.raises(GotdInputError, match="61 texts wanted"):
        _scenarios.task_scenario("toy", pool=_chunks(), task_splits=splits, n_pool=400, n_target=100, n_test=50,
                                 n_heldout=40, n_dev=30, seed=0, n_task_test=61, **common)
    # the testbed's own pool's duplicates are counted in its report (the full table's are not said)
    assert sc.report["pool_exact_duplicates"] == partial.report["pool_exact_duplicates"] == \
        sc.pool["text"].duplicated().sum()


def test_scenario_round_trips_through_files(tmp_path) -> None:
    sc = _scenarios.partial_scenario(pool=_chunks(), common=("wikipedia", "science", "news"), rare="tweets",
                                     n_pool=300, n_target=40, n_test=20, n_heldout=20)
    _scenarios.save_scenario(sc, tmp_path)
    back = _scenarios.load_scenario(tmp_path)
    assert back.pool["text"].tolist() == sc.pool["text"].tolist() and back.report == sc.report
