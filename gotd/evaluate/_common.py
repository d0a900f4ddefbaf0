"""What every evaluation shares: tidy result rows, input checks, tokenising without truncation, the model."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from gotd.models import document_prefix_ids, load_causal_lm_and_tokenizer
from gotd.results import result_table
from gotd.validation import check_texts


def _table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Result rows as a table in the one schema (:mod:`gotd.results`): the schema, ``n``, the interval."""
    return result_table(rows)


def _model_and_tokenizer(model: Any, tokenizer: Any) -> tuple[Any, Any, str]:
    return load_causal_lm_and_tokenizer(model, tokenizer)


def _model_name(model: Any, name: str | None) -> str:
    if name:
        return name
    return str(getattr(getattr(model, "config", None), "name_or_path", "") or type(model).__name__)


def _device_of(model: Any) -> Any:
    return next(model.parameters()).device


def _model_window(model: Any) -> int | None:
    return getattr(getattr(model, "config", None), "max_position_embeddings", None)


def _check_texts(texts: Any, what: str) -> list[str]:
    """At least one text, none empty (an empty text has no tokens to score): gotd's one text validator."""
    return check_texts(texts, what, blank="error")


def _encode(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids without special tokens and without truncation (the length warning is silenced)."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return [list(x) for x in tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]]
    finally:
        hf_logging.set_verbosity(verbosity)


def _bos(tokenizer: Any) -> list[int]:
    """The token every scored sequence starts with, so that its first real token is predicted too
    (:func:`gotd.models.document_prefix_ids`: ``<|endoftext|>``, else bos, else eos, else nothing)."""
    return document_prefix_ids(tokenizer)


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, dynamic_ncols=True)


def _pad_id(tokenizer: Any) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0
