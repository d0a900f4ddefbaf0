"""The first tokens of each text without tokenising the rest: memory bounded by what is kept.

Tokenising a whole text to keep its first ``max_tokens`` tokens costs memory in proportion to the text
(a 50 MB text: gigabytes of token objects and offsets). :func:`head_tokens` tokenises a window of
characters instead, cut at a whitespace, and widens it (x4) only while the window still holds no more
than ``max_tokens + margin`` tokens and the text goes on. The kept tokens are those of the whole text:

- a window cut at a whitespace ends after a complete word, and the tokenizers used here (WordPiece,
  byte-level BPE, SentencePiece) split at whitespace first, so every token before the cut is the token
  of the whole text;
- without a whitespace in the window's second half the cut may split a word, whose tokens then differ
  only at the end of the window, ``margin`` tokens past what is kept.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

WINDOW_CHARS_PER_TOKEN = 8
"""Characters first read per kept token; a token rarely spans more (the window widens when it does)."""

MIN_WINDOW_CHARS = 1024
"""Smallest first window, in characters."""

MARGIN_TOKENS = 16
"""Tokens a window must hold beyond those kept, so that a word split by the cut never reaches them."""


def _cut(text: str, size: int) -> str:
    """``text[:size]``, shortened to end before its last whitespace when that lies in the second half."""
    if size >= len(text):
        return text
    window = text[:size]
    # whitespace after a complete word: search the second half only, so the window stays large
    for i in range(size - 1, size // 2, -1):
        if window[i].isspace():
            return window[:i]
    return window


def head_tokens(tokenizer: Any, texts: Sequence[str], max_tokens: int, **kwargs: Any
                ) -> tuple[list[str], list[dict[str, list[int]]], list[bool]]:
    """Tokenise enough of each text to know its first ``max_tokens`` tokens, and whether it has more.

    Parameters
    ----------
    tokenizer : transformers tokenizer
        Called as ``tokenizer(windows, truncation=False, **kwargs)``.
    texts : sequence of str
    max_tokens : int
        Tokens kept per text (special tokens included when ``kwargs`` adds them).
    **kwargs
        More tokenizer keywords (``add_special_tokens``, ``padding``, ``verbose``).

    Returns
    -------
    windows : list of str
        The part of each text that was tokenised (the whole text when it is short).
    features : list of dict
        The tokenizer's per-text features of each window (``input_ids``, ``attention_mask``...), not cut.
    longer : list of bool
        True when the text has more than ``max_tokens`` tokens: exact for a whole text, and certain for a
        window (it holds more than ``max_tokens + MARGIN_TOKENS`` tokens).
    """
    texts = list(texts)
    size = {i: max(MIN_WINDOW_CHARS, WINDOW_CHARS_PER_TOKEN * (max_tokens + MARGIN_TOKENS)) for i in range(len(texts))}
    windows: list[str] = [""] * len(texts)
    features: list[dict[str, list[int]]] = [{} for _ in texts]
    pending = list(range(len(texts)))
    while pending:
        cut = [_cut(texts[i], size[i]) for i in pending]
        encoded = tokenizer(cut, truncation=False, **kwargs)
        names = list(encoded.keys())
        again = []
        for j, i in enumerate(pending):
            windows[i] = cut[j]
            features[i] = {name: encoded[name][j] for name in names}
            whole = len(cut[j]) == len(texts[i])
            if not whole and len(features[i]["input_ids"]) <= max_tokens + MARGIN_TOKENS:
                size[i] *= 4  # too few tokens in the window to be sure: widen it
                again.append(i)
        pending = again
    longer = [len(f["input_ids"]) > max_tokens for f in features]
    return windows, features, longer
