"""Readers: every supported source (files, folders, lists, DataFrames, datasets) to one validated table."""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gotd.data._dedup import count_exact_duplicates, report_exact_duplicates
from gotd.data._validate import (
    _require_fields,
    _resolve_carried,
    _resolve_id_column,
    _validate_ids,
    _validate_texts,
)
from gotd.errors import GotdInputError

logger = logging.getLogger("gotd.data")

READABLE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".tsv", ".txt")
# pandas' default missing-value markers, applied to every CSV column except the text and id columns,
# where "NA" or "None" is a real string.
_CSV_NA = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
           "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
_SOURCE_KINDS = (f"a file ({', '.join(READABLE_SUFFIXES)}), a folder of .txt files, a list of strings, "
                 "a pandas DataFrame or a Hugging Face datasets.Dataset")


@dataclass
class _Loaded:
    """Raw records of one source, before validation."""

    frame: pd.DataFrame
    label: str  # the source's name in messages and generated ids
    locators: list[str]  # where each row is, e.g. "line 17"
    default_ids: list[str]


def read_texts(
    source: Any,
    *,
    text_field: str = "text",
    id_field: str | None = None,
    keep_fields: Sequence[str] | None = None,
    drop_empty: bool = False,
    warn_duplicates: bool = True,
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
    warn_duplicates : bool
        Log the warning about exact duplicate texts. A caller that says the count itself, once, for the table
        it makes from these rows (:func:`gotd.stages.inputs.prepare_pool`) turns it off.

    Returns
    -------
    pandas.DataFrame
        Columns ``id`` (str, unique), ``text`` (str, not blank), then the carried columns, in the
        source's order. ``attrs``: ``source`` (the label used in messages), ``dropped_empty``,
        ``exact_duplicates`` (rows whose exact text appeared earlier; they are kept, and a warning is
        logged when there are any).

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
    _check_unicode(label, loc, f"field '{text_field}'", texts)
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

    _check_unicode(label, [loc[i] for i in rows], "id", ids)
    out = pd.DataFrame({"id": ids, "text": [texts[i] for i in rows]})
    for column in carried:
        out[column] = frame[column].iloc[rows].reset_index(drop=True)
    exact = (report_exact_duplicates(out["text"].tolist(), label, "texts") if warn_duplicates
             else count_exact_duplicates(out["text"].tolist()))
    out.attrs = {"source": label, "dropped_empty": len(empty), "exact_duplicates": exact}
    return out


def _check_unicode(label: str, loc: Sequence[str], what: str, values: Sequence[Any]) -> None:
    """Refuse strings that are not valid Unicode text: a lone surrogate (``"\\ud800"`` is valid JSON) cannot
    be encoded as UTF-8, so no tokenizer, parquet or JSON file could take it later."""
    for i, value in enumerate(values):
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as err:
                raise GotdInputError(
                    f"{label} {loc[i]}: {what} holds {value[err.start]!r} at character {err.start}, a lone "
                    "surrogate that is not valid Unicode text; remove or replace that character") from None


def _check_file_name(path: Path) -> None:
    """A path whose name is not valid UTF-8 (bytes decoded with surrogate escapes) cannot be recorded."""
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(path).decode("utf-8", errors="backslashreplace")
        raise GotdInputError(f"{shown}: the file name is not valid UTF-8, so it cannot be recorded in ids and "
                             "sidecars; rename the file") from None


def _check_readable_kind(path: Path) -> None:
    """Only regular files and folders: a FIFO would block forever, a device or socket is no text file."""
    if not (path.is_file() or path.is_dir()):
        raise GotdInputError(f"{path}: not a regular file or folder (a pipe, device or socket); save the texts to "
                             f"a file ({', '.join(READABLE_SUFFIXES)}) and pass that")


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
    _check_file_name(path)
    if not path.exists():
        raise GotdInputError(f"{path}: no such file or folder; check the path")
    _check_readable_kind(path)
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
        # JSON may spell a lone surrogate ("\\ud800"); the table cannot hold it, so refuse it here, by line
        for key, value in item.items():
            _check_unicode(path.name, [f"{unit} {number}"], "a field name", [key])
            _check_unicode(path.name, [f"{unit} {number}"], f"field {key!r}", [value])


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
    texts = []
    for path in files:
        _check_file_name(path)
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as err:
            raise GotdInputError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); re-encode the file "
                                 "as UTF-8 or move it out of the folder") from None
    frame = pd.DataFrame({text_field: pd.Series(texts, dtype=object)})
    return _Loaded(frame, str(folder), names, names)


def _arrays_to_lists(frame: pd.DataFrame) -> pd.DataFrame:
    """Parquet and Arrow give list columns as numpy arrays; make them lists, as JSON lines does."""
    for column in frame.columns:
        if frame[column].dtype == object and any(isinstance(v, np.ndarray) for v in frame[column]):
            frame[column] = [v.tolist() if isinstance(v, np.ndarray) else v for v in frame[column]]
    return frame
