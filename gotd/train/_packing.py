"""Training data: texts from a selection file or a list, tokenised and packed into blocks."""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gotd._io import file_sha256
from gotd.errors import GotdInputError

logger = logging.getLogger(__name__)



def load_training_texts(source: Any, *, text_field: str = "text") -> tuple[list[str], dict[str, Any]]:
    """Read the texts to pre-fine-tune on and describe where they came from.

    Parameters
    ----------
    source : path or sequence of str
        A selection file written by ``gotd select`` (its sidecar ``<file>.json`` is read too), any file
        :func:`gotd.data.read_texts` reads, or the texts themselves.
    text_field : str
        Text column of a file.

    Returns
    -------
    texts : list of str
    data : dict
        ``source`` (path or ``"texts"``), ``sha256`` of the file's bytes (None for in-memory texts),
        ``texts_sha256`` (fingerprint of the texts in order), ``n_texts`` and, for selection files, the
        selection ``method``, ``budget`` and ``seed``.

    Raises
    ------
    GotdInputError
        No texts, an empty or non-string text.
    """
    from gotd.data import read_texts, texts_fingerprint

    data: dict[str, Any] = {"source": "texts", "sha256": None}
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise GotdInputError(f"training data {path} does not exist; pass a selection file written by "
                                 "`gotd select` (or any .jsonl/.parquet/.csv/.txt file of texts)")
        from gotd.selection import load_selection, sidecar_path

        if path.is_file() and sidecar_path(path).is_file():
            frame, meta = load_selection(path)
            if text_field not in frame.columns:
                raise GotdInputError(f"selection {path} has no '{text_field}' column; it was saved without the "
                                     "pool records; write it with gotd.selection.save_selection or `gotd select`")
            frame = read_texts(frame[[text_field]].rename(columns={text_field: "text"}))
            data["selection"] = {k: meta.get(k) for k in ("method", "seed", "budget")}
        else:
            frame = read_texts(path, text_field=text_field)
        data["source"] = os.fspath(path)
        data["sha256"] = file_sha256(path) if path.is_file() else None
    else:
        if isinstance(source, str) or not isinstance(source, Sequence):
            raise GotdInputError("training texts must be a file path or a list of strings")
        if len(source) == 0:
            raise GotdInputError("no training texts: the selection is empty; select at least one text")
        frame = read_texts(list(source))
    texts = frame["text"].tolist()
    data["texts_sha256"] = texts_fingerprint(texts)
    data["n_texts"] = len(texts)
    return texts, data


def pack_token_blocks(token_ids: Sequence[Sequence[int]], block_size: int, *, separator_id: int | None,
                      packing: bool = True, tail: str = "short") -> tuple[list[list[int]], dict[str, int]]:
    """Cut tokenised texts into training blocks of at most ``block_size`` tokens, dropping nothing.

    Parameters
    ----------
    token_ids : sequence of sequence of int
        One token list per text (no special tokens).
    block_size : int
        Tokens per block.
    separator_id : int, optional
        Appended after every text (:func:`document_separator_id`) so the model sees where texts end.
    packing : bool
        True: concatenate all texts and cut the stream every ``block_size`` tokens; only the final
        block may be shorter. False: every text starts a new block; a text longer than a block
        continues in the next one.
    tail : {"short", "wrap"}
        With packing, what the last block holds: ``"short"`` leaves it shorter (the Trainer pads it and
        keeps the padding out of the loss); ``"wrap"`` fills it up with the stream's first tokens, so every
        block is full (the plain loop of :func:`gotd.train.train_loop` stacks them into one tensor).

    Returns
    -------
    blocks : list of list of int
    stats : dict
        ``n_tokens`` (separators included), ``n_blocks``, ``n_texts_split`` (texts longer than one block,
        which are split across blocks) and ``last_block_tokens``.
    """
    if block_size < 2:
        raise GotdInputError(f"block_size={block_size} must be >= 2 tokens")
    if tail not in ("short", "wrap"):
        raise GotdInputError(f"tail={tail!r}: must be 'short' or 'wrap'")
    sep = [] if separator_id is None else [int(separator_id)]
    pieces = [list(map(int, ids)) + sep for ids in token_ids]
    n_split = sum(len(p) > block_size for p in pieces)
    if packing:
        stream = [t for p in pieces for t in p]
        if tail == "wrap":
            if not stream:
                raise GotdInputError("no tokens to train on: the texts are empty")
            pad = -len(stream) % block_size
            stream = stream + (stream * (pad // len(stream) + 1))[:pad]
        blocks = [stream[i:i + block_size] for i in range(0, len(stream), block_size)]
    else:
        blocks = [p[i:i + block_size] for p in pieces for i in range(0, len(p), block_size)]
    blocks = [b for b in blocks if b]
    stats = {"n_tokens": sum(len(p) for p in pieces), "n_blocks": len(blocks), "n_texts_split": n_split,
             "last_block_tokens": len(blocks[-1]) if blocks else 0}
    return blocks, stats


class _BlockDataset:
    """Map-style dataset of token blocks (what the Trainer's dataloader indexes)."""

    def __init__(self, blocks: list[list[int]]) -> None:
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return {"input_ids": self.blocks[i]}


class _PadCollator:
    """Right-pad a batch of blocks; padding gets attention 0 and label -100 (out of the loss).

    Written out rather than ``DataCollatorForLanguageModeling`` because that collator masks every
    token equal to the pad id, which drops the end-of-text separators when pad == eos.
    """

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for row, f in enumerate(features):
            n = len(f["input_ids"])
            ids[row, :n] = torch.tensor(f["input_ids"], dtype=torch.long)
            mask[row, :n] = 1
        labels = ids.masked_fill(mask == 0, -100)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _tokenize(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, no special tokens, no truncation."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # silence "sequence length is longer than the maximum": we split
    try:
        return [list(x) for x in tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]]
    finally:
        hf_logging.set_verbosity(verbosity)


def fill_token_budget(token_ids: Sequence[Sequence[int]], budget_tokens: int, block_size: int) -> dict[str, Any]:
    """Exactly ``budget_tokens`` training tokens from texts taken in the order given (a method's rank order).

    Texts are concatenated in order (each already bos-prefixed) until the budget is filled; the last text
    taken is cut where the budget ends, and the tokens are cut into ``budget_tokens / block_size`` full
    blocks. Every method filling the same budget therefore trains on the same number of tokens and blocks,
    so the same number of optimizer steps, whatever the length of the texts it ranks first.

    Returns
    -------
    dict
        ``blocks`` (list of ``block_size``-token lists), ``n_texts`` (texts used, the last one possibly in
        part), ``tokens`` (= ``budget_tokens``) and ``last_text_tokens_used``.

    Raises
    ------
    GotdInputError
        ``budget_tokens`` not a positive multiple of ``block_size``, or the texts hold fewer tokens than
        the budget (rank more texts, or lower the budget).
    """
    if budget_tokens < block_size or budget_tokens % block_size:
        raise GotdInputError(f"token budget {budget_tokens} must be a positive multiple of the block size "
                             f"{block_size}")
    flat: list[int] = []
    used = 0
    last = 0
    for ids in token_ids:
        need = budget_tokens - len(flat)
        if need <= 0:
            break
        last = min(need, len(ids))
        flat.extend(ids[:last])
        used += 1
    if len(flat) < budget_tokens:
        raise GotdInputError(f"the {used} ranked texts hold {len(flat)} tokens, fewer than the budget of "
                             f"{budget_tokens}: rank more texts or lower the token budget")
    blocks = [flat[i:i + block_size] for i in range(0, budget_tokens, block_size)]
    return {"blocks": blocks, "n_texts": used, "tokens": budget_tokens, "last_text_tokens_used": last}
