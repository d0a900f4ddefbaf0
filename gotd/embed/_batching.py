"""Host-side work of an encode: tokenising once, length-sorted padded batches, look-ahead.

A block (one cache shard) is tokenised once without truncation to count the texts over ``max_length``,
sorted by token length (longest first, ties by position) so that a batch pads little, and padded batch by
batch. On a GPU, ``tokenize_workers`` background threads prepare the next blocks while the current one
runs, so the device does not wait for the tokenizer.
"""
from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from gotd.tokenwindow import head_tokens


class BlockPreparer:
    """The host-side half of :class:`~gotd.embed.Encoder` (a mixin: it reads the encoder's settings)."""

    tokenizer: Any
    max_length: int
    pooling: str
    device: str
    batch_size: int
    tokenize_workers: int
    _lookahead: dict[int, Any]
    _worker_state: Any

    def _tokenize(self, texts: list[str], tokenizer: Any = None) -> tuple[list[dict[str, list[int]]], int]:
        """Tokenise once; return per-text features (truncated to max_length) and how many were truncated.

        Only a window of each text's characters is tokenised (:func:`gotd.tokenwindow.head_tokens`), so a
        huge text costs memory for the tokens kept, not for the whole text.
        """
        if not texts:
            return [], 0
        tokenizer = self.tokenizer if tokenizer is None else tokenizer
        windows, features, longer = head_tokens(tokenizer, texts, self.max_length, padding=False, verbose=False)
        names = list(features[0].keys())
        too_long = [i for i, flag in enumerate(longer) if flag]
        if too_long:
            cut = tokenizer(
                [windows[i] for i in too_long], truncation=True, max_length=self.max_length, padding=False
            )
            for j, i in enumerate(too_long):
                features[i] = {name: cut[name][j] for name in names}
        return features, len(too_long)

    def _collate(self, features: list[dict[str, list[int]]], tokenizer: Any = None) -> dict[str, torch.Tensor]:
        """Pad a batch of token features to tensors (to max_length for "mean_with_padding")."""
        tokenizer = self.tokenizer if tokenizer is None else tokenizer
        if self.pooling == "mean_with_padding":
            batch = tokenizer.pad(features, padding="max_length", max_length=self.max_length, return_tensors="pt")
        else:
            batch = tokenizer.pad(features, padding="longest", return_tensors="pt")
        batch = dict(batch)
        if self.device.startswith("cuda"):
            # Page-locked host memory lets the copy to the GPU run asynchronously.
            batch = {name: tensor.pin_memory() for name, tensor in batch.items()}
        return batch

    def _prepare_block(self, texts: list[str], tokenizer: Any = None
                       ) -> tuple[list[list[int]], list[dict[str, torch.Tensor]], int]:
        """Host-side work for a block: tokenise, sort by token length, pad each batch.

        Sorting by token length (longest first, so memory peaks early, ties by input position) cuts
        padding. Returns the batches' row indices into ``texts``, the padded batches, and the number of
        truncated texts.
        """
        features, n_truncated = self._tokenize(texts, tokenizer)
        order = sorted(range(len(texts)), key=lambda i: (-len(features[i]["input_ids"]), i))
        rows = [order[start : start + self.batch_size] for start in range(0, len(order), self.batch_size)]
        batches = [self._collate([features[i] for i in batch_rows], tokenizer) for batch_rows in rows]
        return rows, batches, n_truncated

    def _prepare_block_in_worker(self, texts: list[str]) -> tuple[list[list[int]], list[dict[str, torch.Tensor]], int]:
        # Each worker thread tokenises with its own copy: a fast tokenizer's truncation settings are state
        # that concurrent calls must not share.
        tokenizer = getattr(self._worker_state, "tokenizer", None)
        if tokenizer is None:
            tokenizer = self._worker_state.tokenizer = copy.deepcopy(self.tokenizer)
        return self._prepare_block(texts, tokenizer)

    @contextlib.contextmanager
    def _blocks_with_lookahead(self, blocks: list[list[str]]) -> Iterator[Iterator[list[str]]]:
        """Iterate over ``blocks`` while background workers prepare the next ``tokenize_workers`` of them.

        Leaving the context cancels the preparations not started and waits for the running ones, so an
        interrupted encode leaves no thread behind.
        """
        pool = None
        if self.tokenize_workers and blocks:
            _ = self.tokenizer  # load it here, once, before the workers copy it
            pool = ThreadPoolExecutor(self.tokenize_workers, thread_name_prefix="gotd-tokenize")

        def iterate() -> Iterator[list[str]]:
            for i, block in enumerate(blocks):
                if pool is not None:
                    # the current block and the next `tokenize_workers` ones are in preparation
                    for ahead in blocks[i : i + 1 + self.tokenize_workers]:
                        if id(ahead) not in self._lookahead:
                            self._lookahead[id(ahead)] = pool.submit(self._prepare_block_in_worker, ahead)
                yield block

        try:
            yield iterate()
        finally:
            for block in blocks:
                future = self._lookahead.pop(id(block), None)
                if future is not None:
                    future.cancel()
            if pool is not None:
                pool.shutdown(wait=True)
