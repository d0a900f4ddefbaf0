"""Text data in and out: reading and validating corpora, chunking, packing, de-duplication.

Every reader returns one shape, a :class:`pandas.DataFrame` with a unique string ``id``, a non-empty
string ``text`` and the source's other columns, so the embedders and selectors never see file
formats. Bad input raises :class:`~gotd.errors.GotdInputError` naming the file, the row and the fix.

Row numbers in messages and generated ids are 1-based lines/rows for files (what an editor shows)
and 0-based indices for in-memory inputs (what Python shows).

Exact duplicates are kept unless :func:`deduplicate` is asked for, but never silently: :func:`read_texts`
and :func:`chunk_documents` count the rows whose exact text appeared earlier
(:func:`count_exact_duplicates`; :func:`report_exact_duplicates` counts and warns), store the count in ``df.attrs["exact_duplicates"]`` and log a warning
when it is not zero, unless told ``warn_duplicates=False`` by a caller that says the count itself, once, for
the table it makes (the select stage's loaders in :mod:`gotd.stages.inputs`).

Layout (private files, one job each): ``_readers`` (sources to one table), ``_validate`` (fields, ids,
texts), ``_chunking`` (pool chunks, target packs), ``_dedup`` (fingerprints, duplicate counts,
de-duplication), ``_writers`` (atomic writes).
"""
from __future__ import annotations

from gotd.data._chunking import chunk_documents, pack_targets
from gotd.data._dedup import count_exact_duplicates, deduplicate, report_exact_duplicates, texts_fingerprint
from gotd.data._readers import READABLE_SUFFIXES, read_texts
from gotd.data._writers import WRITABLE_SUFFIXES, write_texts

__all__ = [
    "READABLE_SUFFIXES",
    "WRITABLE_SUFFIXES",
    "read_texts",
    "chunk_documents",
    "pack_targets",
    "deduplicate",
    "count_exact_duplicates",
    "report_exact_duplicates",
    "write_texts",
    "texts_fingerprint",
]
