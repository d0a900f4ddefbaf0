"""Identity of texts: order-sensitive fingerprints, exact-duplicate counts and de-duplication."""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable

import numpy as np
import pandas as pd

from gotd.data._validate import _require_fields
from gotd.errors import GotdInputError
from gotd.validation import check_texts

logger = logging.getLogger("gotd.data")


def _text_key(text: str) -> bytes:
    # 16-byte digests: a set of them costs far less memory than the texts (collisions ~2^-64 at 1e10 rows).
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def count_exact_duplicates(texts: Iterable[str]) -> int:
    """The number of rows whose exact text already appeared earlier in ``texts``.

    ``n - |{distinct texts}|``: a text present ``k`` times counts ``k - 1``. Exact means byte-equal after
    UTF-8 encoding (no whitespace or case normalisation, unlike :func:`deduplicate`'s default).

    Raises
    ------
    GotdInputError
        An item is not a string.
    """
    texts = check_texts(texts, "count_exact_duplicates: texts", allow_empty=True)
    return len(texts) - len({_text_key(text) for text in texts})


def report_exact_duplicates(texts: list[str], label: str, unit: str) -> int:
    """Count the exact duplicates of ``texts`` and log a warning naming ``label`` when there are any.

    The warning of a direct library call. The stages read with it off and say the count once themselves, for
    the table a method selects from (:func:`gotd.stages.inputs.prepare_pool`), with the front door's option.
    """
    count = count_exact_duplicates(texts)
    if count:
        logger.warning("%s: %d of %d %s are exact copies of an earlier %s; they are kept (drop them with "
                       "gotd.data.deduplicate)", label, count, len(texts), unit, unit.rstrip("s"))
    return count


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
        The kept rows with a fresh index; ``attrs["duplicates_removed"]`` is the number dropped and
        ``attrs["exact_duplicates"]`` the exact duplicates left (0 unless ``field`` differs from what
        the input's count was made on).
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
        key = _text_key(value)
        if key not in seen:
            seen.add(key)
            keep[i] = True
    out = df.loc[keep].reset_index(drop=True)
    out.attrs = {**df.attrs, "duplicates_removed": int(len(values) - keep.sum()),
                 "exact_duplicates": count_exact_duplicates(out[field].tolist())}
    if out.attrs["duplicates_removed"]:
        logger.info("removed %d duplicate(s) of %d rows", out.attrs["duplicates_removed"], len(values))
    return out


def texts_fingerprint(texts: Iterable[str]) -> str:
    """SHA-256 hex digest of a sequence of texts, order-sensitive and unambiguous.

    Each text is hashed as its UTF-8 byte length (8 bytes, big-endian) followed by its bytes, so
    ``["ab", "c"]`` and ``["a", "bc"]`` differ. Used to key embedding caches and selection sidecars.
    """
    digest = hashlib.sha256()
    for text in check_texts(texts, "texts_fingerprint: texts", allow_empty=True):
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()
