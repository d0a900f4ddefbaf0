"""Chunking pool documents into character windows and packing short target samples together."""
from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from gotd.data._dedup import count_exact_duplicates, report_exact_duplicates
from gotd.data._readers import read_texts
from gotd.errors import GotdInputError

logger = logging.getLogger("gotd.data")

_CHUNK_COLUMNS = ("id", "doc_id", "chunk_index", "char_start", "char_end", "text")
_NON_SPACE = re.compile(r"\S")
_ASCII_SPACE = " \n\t\r\f\v"


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
    return read_texts(docs, warn_duplicates=False)  # the chunks' duplicates are the ones said


def chunk_documents(docs: Any, *, chunk_chars: int = 1000, min_chunk_chars: int = 1,
                    progress: bool = False, warn_duplicates: bool = True) -> pd.DataFrame:
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
    warn_duplicates : bool
        Log the warning about exact duplicate chunks. A caller that reports the duplicates of the table it
        makes from the chunks (:func:`gotd.assets.build_pool`, :func:`gotd.stages.inputs.prepare_pool`) turns
        it off, so the count is said once.

    Returns
    -------
    pandas.DataFrame
        Columns ``id`` (``"<doc id>#<k>"``), ``doc_id``, ``chunk_index`` (k, 0-based position in the
        document, kept when short chunks are dropped), ``char_start``, ``char_end`` (so that
        ``doc_text[char_start:char_end] == text``), ``text``, then the documents' other columns.
        ``attrs``: ``dropped_short_chunks``, ``chunk_chars`` and ``exact_duplicates`` (chunks whose exact
        text is an earlier chunk's; kept, with a logged warning when there are any).
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
    exact = (report_exact_duplicates(columns["text"], "chunks", "chunks") if warn_duplicates
             else count_exact_duplicates(columns["text"]))
    out.attrs = {"dropped_short_chunks": dropped, "chunk_chars": chunk_chars, "exact_duplicates": exact}
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
