"""Text data in and out: reading and validating corpora, chunking, packing, de-duplication.

Every reader returns one shape, a :class:`pandas.DataFrame` with a unique string ``id``, a non-empty
string ``text`` and the source's other columns, so the embedders and selectors never see file
formats. Bad input raises :class:`~gotd.errors.GotdInputError` naming the file, the row and the fix.

Row numbers in messages and generated ids are 1-based lines/rows for files (what an editor shows)
and 0-based indices for in-memory inputs (what Python shows).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from gotd._io import atomic_path
from gotd.errors import GotdInputError

__all__ = [
    "READABLE_SUFFIXES",
    "WRITABLE_SUFFIXES",
    "read_texts",
    "chunk_documents",
    "pack_targets",
    "deduplicate",
    "write_texts",
    "texts_fingerprint",
]

logger = logging.getLogger(__name__)

READABLE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".tsv", ".txt")
WRITABLE_SUFFIXES = (".jsonl", ".parquet", ".csv")
_RESERVED = ("id", "text")
_CHUNK_COLUMNS = ("id", "doc_id", "chunk_index", "char_start", "char_end", "text")
# pandas' default missing-value markers, applied to every CSV column except the text and id columns,
# where "NA" or "None" is a real string.
_CSV_NA = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
           "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
_NON_SPACE = re.compile(r"\S")
_ASCII_SPACE = " \n\t\r\f\v"
_SOURCE_KINDS = (f"a file ({', '.join(READABLE_SUFFIXES)}), a folder of .txt files, a list of strings, "
                 "a pandas DataFrame or a Hugging Face datasets.Dataset")


@dataclass
class _Loaded:
    """Raw records of one source, before validation."""

    frame: pd.DataFrame
    label: str  # the source's name in messages and generated ids
    locators: list[str]  # where each row is, e.g. "line 17"
    default_ids: list[str]


# ----------------------------------------------------------------------------------------------
# Reading


def read_texts(
    source: Any,
    *,
    text_field: str = "text",
    id_field: str | None = None,
    keep_fields: Sequence[str] | None = None,
    drop_empty: bool = False,
) -> pd.DataFrame:
    """Read and validate a text collection.

    Parameters
    ----------
    source : path, list of str, DataFrame or datasets.Dataset
        ``.jsonl`` (one JSON object a line; ``.json`` may also hold one JSON array of objects),
        ``.parquet``, ``.csv``, ``.tsv``; a ``.txt`` file is one document per line; a folder is one
        document per ``.txt`` file inside it (recursively, sorted), with id = relative path.
    text_field : str
        Column holding the text (ignored for ``.txt`` files, folders and lists of strings).
    id_field : str, optional
        Column holding unique ids. When not given, a column named ``id`` is used if there is one;
        otherwise ids are ``"<file name>:<line or row>"`` (``"texts:<index>"`` for in-memory inputs).
    keep_fields : sequence of str, optional
        Other columns to carry along; by default all of them (a source column named ``id`` or
        ``text`` that is not the id/text field cannot be carried and is left out).
    drop_empty : bool
        Drop rows whose text is empty, whitespace only or null instead of raising. The number
        dropped is logged and stored in ``df.attrs["dropped_empty"]``.

    Returns
    -------
    pandas.DataFrame
        Columns ``id`` (str, unique), ``text`` (str, not blank), then the carried columns, in the
        source's order. ``attrs``: ``source`` (the label used in messages), ``dropped_empty``.

    Raises
    ------
    GotdInputError
        Missing file, unknown format, malformed JSON, missing field, non-string or empty text,
        missing or duplicate ids, or no texts at all.
    """
    loaded = _load(source, text_field, id_field or "id")
    frame, label, loc = loaded.frame, loaded.label, loaded.locators
    if len(frame) == 0:
        raise GotdInputError(f"no texts in {label}; give a source with at least one row")
    columns = [str(c) for c in frame.columns]
    _require_fields(label, columns, [text_field], "text_field",
                    "--pool-field/--target-field of gotd select, --field of gotd embed")
    id_column = _resolve_id_column(label, columns, text_field, id_field)
    carried = _resolve_carried(label, columns, text_field, id_column, keep_fields)

    texts = frame[text_field].tolist()
    empty = _validate_texts(label, loc, text_field, texts)
    keep = np.ones(len(texts), dtype=bool)
    if empty:
        if not drop_empty:
            raise GotdInputError(
                f"{label} {loc[empty[0]]}: field '{text_field}' is empty, whitespace only or null "
                f"({len(empty)} such row{'s' if len(empty) > 1 else ''} in all); remove empty rows "
                "or pass drop_empty=True (--drop-empty)")
        keep[empty] = False
        logger.warning("%s: dropped %d empty text(s) of %d", label, len(empty), len(texts))

    rows = np.flatnonzero(keep)
    if id_column is None:
        ids = [loaded.default_ids[i] for i in rows]
    else:
        ids = _validate_ids(label, loc, id_column, frame[id_column].tolist(), rows, id_field is None)
    if len(rows) == 0:
        raise GotdInputError(f"no texts in {label}: all {len(texts)} rows were empty; "
                             "give a source with at least one non-empty text")

    out = pd.DataFrame({"id": ids, "text": [texts[i] for i in rows]})
    for column in carried:
        out[column] = frame[column].iloc[rows].reset_index(drop=True)
    out.attrs = {"source": label, "dropped_empty": len(empty)}
    return out


def _load(source: Any, text_field: str, id_field: str) -> _Loaded:
    """Turn any supported source into raw records with row locators."""
    if isinstance(source, pd.DataFrame):
        return _in_memory(source.reset_index(drop=True), "DataFrame")
    if isinstance(source, pd.Series):
        source = source.tolist()
    if isinstance(source, (list, tuple)):
        return _in_memory(pd.DataFrame({text_field: pd.Series(list(source), dtype=object)}), "texts")
    if type(source).__module__.split(".")[0] == "datasets":
        return _in_memory(_hf_to_frame(source), "Dataset")
    if not isinstance(source, (str, os.PathLike)):
        raise GotdInputError(f"cannot read texts from a {type(source).__name__}; give {_SOURCE_KINDS}")

    path = Path(source)
    if not path.exists():
        raise GotdInputError(f"{path}: no such file or folder; check the path")
    if path.is_dir():
        return _load_txt_folder(path, text_field, id_field)
    suffix = path.suffix.lower()
    readers = {".jsonl": _load_json, ".json": _load_json, ".parquet": _load_parquet,
               ".csv": _load_delimited, ".tsv": _load_delimited, ".txt": _load_txt}
    if suffix not in readers:
        raise GotdInputError(f"{path.name}: unknown file type '{suffix}'; "
                             f"supported: {', '.join(READABLE_SUFFIXES)} or a folder of .txt files")
    try:
        return readers[suffix](path, text_field, id_field)
    except UnicodeDecodeError as err:
        raise GotdInputError(f"{path.name}: not UTF-8 text ({err.reason} at byte {err.start}); "
                             "re-encode the file as UTF-8") from err


def _in_memory(frame: pd.DataFrame, label: str) -> _Loaded:
    n = len(frame)
    return _Loaded(_arrays_to_lists(frame), label, [f"index {i}" for i in range(n)],
                   [f"{label}:{i}" for i in range(n)])


def _from_file(frame: pd.DataFrame, path: Path, unit: str, numbers: Sequence[int]) -> _Loaded:
    return _Loaded(_arrays_to_lists(frame), path.name, [f"{unit} {k}" for k in numbers],
                   [f"{path.name}:{k}" for k in numbers])


def _hf_to_frame(dataset: Any) -> pd.DataFrame:
    try:
        import datasets
    except ImportError as err:  # pragma: no cover - datasets is installed in the test environment
        raise GotdInputError("reading a Hugging Face dataset needs the 'datasets' package; "
                             "pip install gotd[hf]") from err
    if isinstance(dataset, datasets.DatasetDict):
        raise GotdInputError(f"got a DatasetDict with splits {sorted(dataset)}; pass one split, "
                             "e.g. dataset['train']")
    if not isinstance(dataset, datasets.Dataset):
        raise GotdInputError(f"cannot read texts from a {type(dataset).__name__}; pass a "
                             "datasets.Dataset (materialise streaming datasets first)")
    return dataset.to_pandas()


def _load_json(path: Path, text_field: str, id_field: str = "id") -> _Loaded:
    """JSON lines; a ``.json`` file whose first character is ``[`` is read as one JSON array."""
    with open(path, encoding="utf-8") as fh:
        head = fh.read(4096).lstrip()
        fh.seek(0)
        if path.suffix.lower() == ".json" and head.startswith("["):
            try:
                items = json.load(fh)
            except json.JSONDecodeError as err:
                raise GotdInputError(f"{path.name} line {err.lineno}: invalid JSON ({err.msg}); "
                                     "fix the file") from err
            numbers = list(range(1, len(items) + 1))
            _require_objects(path, "item", numbers, items)
            return _from_file(pd.DataFrame(items), path, "item", numbers)
        records, numbers = [], []
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue  # blank lines (a trailing newline, spacing) carry no record
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise GotdInputError(
                    f"{path.name} line {number}: invalid JSON ({err.msg} at column {err.colno}); "
                    "each line must be one JSON object such as {\"text\": \"...\"}") from err
            numbers.append(number)
    _require_objects(path, "line", numbers, records)
    return _from_file(pd.DataFrame(records), path, "line", numbers)


def _require_objects(path: Path, unit: str, numbers: Sequence[int], items: Sequence[Any]) -> None:
    if not isinstance(items, list):
        raise GotdInputError(f"{path.name}: expected JSON lines or a JSON array of objects")
    for number, item in zip(numbers, items):
        if not isinstance(item, dict):
            raise GotdInputError(f"{path.name} {unit} {number}: expected a JSON object such as "
                                 f"{{\"text\": \"...\"}}, got {type(item).__name__}")


def _load_parquet(path: Path, text_field: str, id_field: str = "id") -> _Loaded:
    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a broken file
        raise GotdInputError(f"{path.name}: not a readable parquet file ({err}); "
                             "re-export it or check the download") from err
    return _from_file(frame.reset_index(drop=True), path, "row", range(1, len(frame) + 1))


def _load_delimited(path: Path, text_field: str, id_field: str = "id") -> _Loaded:
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        header = [str(c) for c in pd.read_csv(path, sep=sep, nrows=0).columns]
        # The text column keeps "NA", "None" and empty cells as strings; other columns get the usual
        # missing-value parsing, so numbers stay numbers.
        frame = pd.read_csv(path, sep=sep, dtype={text_field: str, id_field: str},
                            keep_default_na=False,
                            na_values={c: _CSV_NA for c in header if c not in (text_field, id_field)})
    except pd.errors.EmptyDataError as err:
        raise GotdInputError(f"no texts in {path.name}: the file is empty; give a header row "
                             f"('{text_field}' column) and at least one row") from err
    except pd.errors.ParserError as err:
        raise GotdInputError(f"{path.name}: malformed {sep!r}-separated file ({err}); "
                             "fix the quoting or the column count") from err
    return _from_file(frame, path, "row", range(1, len(frame) + 1))


def _load_txt(path: Path, text_field: str, id_field: str = "id") -> _Loaded:
    lines = path.read_text(encoding="utf-8").splitlines()
    return _from_file(pd.DataFrame({text_field: pd.Series(lines, dtype=object)}), path, "line",
                      range(1, len(lines) + 1))


def _load_txt_folder(folder: Path, text_field: str, id_field: str = "id") -> _Loaded:
    files = sorted(p for p in folder.rglob("*.txt") if p.is_file())
    if not files:
        raise GotdInputError(f"no texts in {folder}: a folder source is read as one document per "
                             ".txt file and it has none; add .txt files or pass a data file")
    names = [p.relative_to(folder).as_posix() for p in files]
    texts = [p.read_text(encoding="utf-8") for p in files]
    frame = pd.DataFrame({text_field: pd.Series(texts, dtype=object)})
    return _Loaded(frame, str(folder), names, names)


def _arrays_to_lists(frame: pd.DataFrame) -> pd.DataFrame:
    """Parquet and Arrow give list columns as numpy arrays; make them lists, as JSON lines does."""
    for column in frame.columns:
        if frame[column].dtype == object and any(isinstance(v, np.ndarray) for v in frame[column]):
            frame[column] = [v.tolist() if isinstance(v, np.ndarray) else v for v in frame[column]]
    return frame


def _require_fields(label: str, columns: Sequence[str], wanted: Iterable[str], arg: str,
                    flag: str | None = None) -> None:
    hint = f" ({flag})" if flag else ""
    for field in wanted:
        if field not in columns:
            raise GotdInputError(f"{label}: field '{field}' not found; available fields: "
                                 f"{', '.join(columns)}; pass {arg}=<one of them>{hint}")


def _resolve_id_column(label: str, columns: Sequence[str], text_field: str,
                       id_field: str | None) -> str | None:
    if id_field is not None:
        _require_fields(label, columns, [id_field], "id_field")
        return id_field
    return "id" if "id" in columns and text_field != "id" else None


def _resolve_carried(label: str, columns: Sequence[str], text_field: str, id_column: str | None,
                     keep_fields: Sequence[str] | None) -> list[str]:
    if keep_fields is None:
        return [c for c in columns if c not in (text_field, id_column, *_RESERVED)]
    keep_fields = list(keep_fields)
    _require_fields(label, columns, keep_fields, "keep_fields")
    clash = [f for f in keep_fields if f in _RESERVED]
    if clash:
        raise GotdInputError(f"{label}: keep_fields {clash} clash with the output columns 'id' and "
                             "'text'; rename those source columns or leave them out of keep_fields")
    return keep_fields


def _is_null(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _validate_texts(label: str, loc: Sequence[str], field: str, texts: Sequence[Any]) -> list[int]:
    """Raise on non-string texts; return the positions of null or blank ones."""
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) and not _is_null(t)]
    if bad:
        value = texts[bad[0]]
        raise GotdInputError(
            f"{label} {loc[bad[0]]}: field '{field}' is a {type(value).__name__} "
            f"({repr(value)[:40]}), expected a string ({len(bad)} such row{'s' if len(bad) > 1 else ''}"
            " in all); store the text as a string or pick the right column with text_field")
    return [i for i, t in enumerate(texts) if _is_null(t) or not t.strip()]


def _validate_ids(label: str, loc: Sequence[str], column: str, values: Sequence[Any],
                  rows: Sequence[int], auto: bool) -> list[str]:
    fix = ("rename the 'id' column to number rows automatically" if auto
           else "leave id_field unset to number rows automatically")
    first_row: dict[str, int] = {}
    ids = []
    for i in rows:
        if _is_null(values[i]) or (isinstance(values[i], str) and not values[i].strip()):
            raise GotdInputError(f"{label} {loc[i]}: id field '{column}' is missing or blank; give every row "
                                 f"an id or {fix}")
        key = str(values[i])
        if key in first_row:
            raise GotdInputError(f"{label}: id '{key}' in field '{column}' appears twice "
                                 f"({loc[first_row[key]]} and {loc[i]}); make the ids unique or {fix}")
        first_row[key] = i
        ids.append(key)
    return ids


# ----------------------------------------------------------------------------------------------
# Chunking and packing


def _chunk_spans(text: str, chunk_chars: int) -> list[tuple[int, int]]:
    """Cut ``text`` into spans ``[start, end)`` of at most ``chunk_chars`` characters.

    A window that would end inside a word is cut instead at its last whitespace, if that lies in
    the window's second half. Whitespace at the edges of a span is left between spans, so every
    span starts and ends with a non-space character and only whitespace lies outside the spans.
    """
    spans = []
    n = len(text)
    match = _NON_SPACE.search(text)
    pos = match.start() if match else n
    while pos < n:
        end = min(pos + chunk_chars, n)
        if end < n and not text[end].isspace():
            cut = max(text.rfind(c, pos + chunk_chars // 2, end) for c in _ASCII_SPACE)
            if cut > pos:
                end = cut
        stop = pos + len(text[pos:end].rstrip())  # >= pos + 1: text[pos] is not whitespace
        spans.append((pos, stop))
        match = _NON_SPACE.search(text, end)
        pos = match.start() if match else n
    return spans


def _check_positive(name: str, value: int, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise GotdInputError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _as_texts(docs: Any) -> pd.DataFrame:
    if isinstance(docs, pd.DataFrame) and {"id", "text"} <= set(docs.columns):
        if docs["id"].duplicated().any():
            dup = docs["id"][docs["id"].duplicated()].iloc[0]
            raise GotdInputError(f"document id '{dup}' appears more than once; make the ids unique "
                                 "(read_texts checks this)")
        return docs
    return read_texts(docs)


def chunk_documents(docs: Any, *, chunk_chars: int = 1000, min_chunk_chars: int = 1,
                    progress: bool = False) -> pd.DataFrame:
    """Split each document into consecutive chunks of at most ``chunk_chars`` characters.

    The paper's pool preparation: fixed-size character windows (1000 characters; 500 for the
    detoxification pool). A window that would end inside a word is cut at its last whitespace when
    that whitespace lies in the window's second half, otherwise exactly at ``chunk_chars``. Only
    whitespace is lost: the whitespace at each cut (and at the document's ends).

    Parameters
    ----------
    docs : DataFrame with ``id`` and ``text`` columns, or anything :func:`read_texts` accepts
    chunk_chars : int
        Maximum chunk length in characters (>= 1).
    min_chunk_chars : int
        Chunks shorter than this are dropped; the count is logged and stored in
        ``df.attrs["dropped_short_chunks"]``.
    progress : bool
        Show a progress bar over documents.

    Returns
    -------
    pandas.DataFrame
        Columns ``id`` (``"<doc id>#<k>"``), ``doc_id``, ``chunk_index`` (k, 0-based position in the
        document, kept when short chunks are dropped), ``char_start``, ``char_end`` (so that
        ``doc_text[char_start:char_end] == text``), ``text``, then the documents' other columns.
    """
    _check_positive("chunk_chars", chunk_chars)
    _check_positive("min_chunk_chars", min_chunk_chars, minimum=0)
    if min_chunk_chars > chunk_chars:
        raise GotdInputError(f"min_chunk_chars={min_chunk_chars} is above chunk_chars={chunk_chars}, "
                             "so every chunk would be dropped; lower min_chunk_chars")
    docs = _as_texts(docs)
    extra = [c for c in docs.columns if c not in _CHUNK_COLUMNS]
    columns: dict[str, list[Any]] = {name: [] for name in _CHUNK_COLUMNS}
    source_rows: list[int] = []
    total = 0
    rows = zip(docs["id"].tolist(), docs["text"].tolist())
    for row, (doc_id, text) in enumerate(tqdm(rows, total=len(docs), desc="chunking",
                                              unit="doc", disable=not progress)):
        for k, (start, end) in enumerate(_chunk_spans(text, chunk_chars)):
            total += 1
            if end - start < min_chunk_chars:
                continue
            for name, value in zip(_CHUNK_COLUMNS, (f"{doc_id}#{k}", str(doc_id), k, start, end,
                                                    text[start:end])):
                columns[name].append(value)
            source_rows.append(row)
    dropped = total - len(source_rows)
    if dropped:
        logger.warning("dropped %d of %d chunks shorter than %d characters", dropped, total,
                       min_chunk_chars)
    if not source_rows:
        raise GotdInputError(f"all {total} chunks are shorter than min_chunk_chars={min_chunk_chars}; "
                             "lower min_chunk_chars")
    out = pd.DataFrame(columns)
    for name in extra:
        out[name] = docs[name].iloc[source_rows].reset_index(drop=True)
    out.attrs = {"dropped_short_chunks": dropped, "chunk_chars": chunk_chars}
    return out


def pack_targets(samples: Any, *, chunk_chars: int = 1000, separator: str = "\n",
                 id_prefix: str = "target") -> pd.DataFrame:
    """Concatenate short target samples into texts of about ``chunk_chars`` characters.

    Greedy, in order: a sample joins the current pack (after ``separator``) while the pack stays
    within ``chunk_chars`` characters; otherwise a new pack starts. A sample longer than
    ``chunk_chars`` is split into its own packs by :func:`chunk_documents`' rule, never truncated.

    Parameters
    ----------
    samples : DataFrame with ``id`` and ``text`` columns, or anything :func:`read_texts` accepts
    chunk_chars : int
        Maximum packed length in characters (>= 1).
    separator : str
        Inserted between samples of one pack; its length counts towards ``chunk_chars``.
    id_prefix : str
        Packs are named ``"<id_prefix>#<k>"``.

    Returns
    -------
    pandas.DataFrame
        Columns ``id``, ``text`` and ``source_ids`` (the sample ids packed, in order).
    """
    _check_positive("chunk_chars", chunk_chars)
    samples = _as_texts(samples)
    packs: list[tuple[str, list[str]]] = []
    parts: list[str] = []
    ids: list[str] = []
    length = 0

    def flush() -> None:
        nonlocal parts, ids, length
        if parts:
            packs.append((separator.join(parts), ids))
        parts, ids, length = [], [], 0

    for sample_id, text in zip(samples["id"].astype(str).tolist(), samples["text"].tolist()):
        if len(text) > chunk_chars:
            flush()
            packs.extend((text[s:e], [sample_id]) for s, e in _chunk_spans(text, chunk_chars))
            continue
        added = len(text) + (len(separator) if parts else 0)
        if parts and length + added > chunk_chars:
            flush()
            added = len(text)
        parts.append(text)
        ids.append(sample_id)
        length += added
    flush()
    return pd.DataFrame({"id": [f"{id_prefix}#{k}" for k in range(len(packs))],
                         "text": [text for text, _ in packs],
                         "source_ids": [source for _, source in packs]})


# ----------------------------------------------------------------------------------------------
# De-duplication, writing, fingerprints


def deduplicate(df: pd.DataFrame, *, field: str = "text", normalize_whitespace: bool = True,
                casefold: bool = False) -> pd.DataFrame:
    """Drop exact duplicates of ``df[field]``, keeping the first occurrence.

    Parameters
    ----------
    df : pandas.DataFrame
    field : str
        The string column compared.
    normalize_whitespace : bool
        Compare texts with runs of whitespace collapsed to one space and the ends stripped.
    casefold : bool
        Compare texts case-insensitively (``str.casefold``).

    Returns
    -------
    pandas.DataFrame
        The kept rows with a fresh index; ``attrs["duplicates_removed"]`` is the number dropped.
    """
    _require_fields("DataFrame", [str(c) for c in df.columns], [field], "field")
    values = df[field].tolist()
    not_text = [i for i, v in enumerate(values) if not isinstance(v, str)]
    if not_text:
        raise GotdInputError(f"DataFrame index {not_text[0]}: field '{field}' is a "
                             f"{type(values[not_text[0]]).__name__}, expected a string; "
                             "deduplicate a text column")
    seen: set[bytes] = set()
    keep = np.zeros(len(values), dtype=bool)
    for i, value in enumerate(values):
        if normalize_whitespace:
            value = " ".join(value.split())
        if casefold:
            value = value.casefold()
        key = hashlib.blake2b(value.encode("utf-8"), digest_size=16).digest()
        if key not in seen:
            seen.add(key)
            keep[i] = True
    out = df.loc[keep].reset_index(drop=True)
    out.attrs = {**df.attrs, "duplicates_removed": int(len(values) - keep.sum())}
    if out.attrs["duplicates_removed"]:
        logger.info("removed %d duplicate(s) of %d rows", out.attrs["duplicates_removed"], len(values))
    return out


def write_texts(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``df`` to ``.jsonl``, ``.parquet`` or ``.csv`` (by suffix) atomically; return the path.

    List columns (such as ``source_ids``) survive JSON lines and parquet; CSV cannot hold them and
    is refused for such frames rather than writing Python reprs.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITABLE_SUFFIXES:
        raise GotdInputError(f"{path.name}: cannot write '{suffix}' files; "
                             f"use one of {', '.join(WRITABLE_SUFFIXES)}")
    frame = df.reset_index(drop=True)
    frame.attrs = {}  # parquet stores attrs as JSON metadata; they are run state, not data
    if suffix == ".csv":
        nested = [c for c in frame.columns
                  if any(isinstance(v, (list, tuple, dict, np.ndarray)) for v in frame[c])]
        if nested:
            raise GotdInputError(f"{path.name}: columns {nested} hold lists or objects, which CSV "
                                 "cannot store; write .jsonl or .parquet instead")
    with atomic_path(path) as tmp:
        if suffix == ".jsonl":
            with open(tmp, "w", encoding="utf-8") as fh:
                for record in frame.to_dict(orient="records"):
                    fh.write(json.dumps({k: _plain(v) for k, v in record.items()},
                                        ensure_ascii=False, allow_nan=False) + "\n")
        elif suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
    return path


def _plain(value: Any) -> Any:
    """A JSON-ready version of one cell: numpy to Python, NaN to null."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        value = value.item()
    if _is_null(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def texts_fingerprint(texts: Iterable[str]) -> str:
    """SHA-256 hex digest of a sequence of texts, order-sensitive and unambiguous.

    Each text is hashed as its UTF-8 byte length (8 bytes, big-endian) followed by its bytes, so
    ``["ab", "c"]`` and ``["a", "bc"]`` differ. Used to key embedding caches and selection sidecars.
    """
    digest = hashlib.sha256()
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise GotdInputError(f"texts_fingerprint: item {i} is a {type(text).__name__}, "
                                 "expected a string")
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()
