"""Checks shared by the readers: fields present, ids unique, texts strings and not blank."""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from gotd.errors import GotdInputError

_RESERVED = ("id", "text")


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
