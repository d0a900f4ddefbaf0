"""The one byte-level BPE tokenizer trainer: the tiny test model's and the testbed LM's tokenizer alike."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int, *, special_tokens: Mapping[str, str],
                        min_frequency: int = 2) -> Any:
    """Train a byte-level BPE on ``texts`` (deterministic) and wrap it as a ``PreTrainedTokenizerFast``.

    The byte-level pre-tokenizer, decoder and post-processor of GPT-2 (no prefix space, offsets untrimmed):
    any UTF-8 text tokenises, by byte fallback. The special tokens take the first ids, in the order of
    ``special_tokens``; the 256 byte symbols follow, then the merges.

    Parameters
    ----------
    texts : iterable of str
        Training text (one string per document or line).
    vocab_size : int
        Vocabulary size, special and byte tokens included (an upper bound: a small text may give fewer merges).
    special_tokens : mapping of str to str
        ``PreTrainedTokenizerFast`` role -> token, e.g. ``{"bos_token": "<bos>", "pad_token": "<pad>"}``.
    min_frequency : int
        A pair is merged only when it occurs at least this often.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
                                  special_tokens=list(special_tokens.values()),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **dict(special_tokens))
