"""Tokenizer conventions every stage shares: which token separates packed documents, which one starts a
scored text. Training packs with the first, evaluation scores after the second, so they live with the
models rather than in either stage."""
from __future__ import annotations

from typing import Any

DOCUMENT_BOUNDARY_TOKEN = "<|endoftext|>"
"""The document separator of GPT-2-style vocabularies (GPT-2, SmolLM, Qwen...)."""


def document_separator_id(tokenizer: Any) -> int | None:
    """The token that ends a text when texts are packed: ``<|endoftext|>`` when the vocabulary has it, else eos.

    Chat-tuned checkpoints often redefine eos as an end-of-turn token (SmolLM2-Instruct: ``<|im_end|>``),
    while their pre-training separated documents with ``<|endoftext|>``; packing with the latter keeps the
    warm-up text looking like pre-training text.
    """
    token_id = tokenizer.convert_tokens_to_ids(DOCUMENT_BOUNDARY_TOKEN) if DOCUMENT_BOUNDARY_TOKEN in tokenizer.get_vocab() else None
    if token_id is not None:
        return int(token_id)
    return None if tokenizer.eos_token_id is None else int(tokenizer.eos_token_id)


def document_prefix_ids(tokenizer: Any) -> list[int]:
    """The token put before a text that is scored from its first token (evaluation).

    ``<|endoftext|>`` when the vocabulary has it (the previous document ended), else bos, else eos (as
    lm-evaluation-harness's prefix token), else nothing. Measured on SmolLM2-135M-Instruct: plain English
    sentences score perplexity 13.6 after ``<|endoftext|>`` and 70.3 after its bos ``<|im_start|>``.
    """
    if DOCUMENT_BOUNDARY_TOKEN in tokenizer.get_vocab():
        return [int(tokenizer.convert_tokens_to_ids(DOCUMENT_BOUNDARY_TOKEN))]
    for candidate in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return [int(candidate)]
    return []


def encode_after_bos(tokenizer: Any, texts: Any) -> list[list[int]]:
    """Token ids of each text (no special tokens added by the tokenizer) with the bos id in front."""
    bos = tokenizer.bos_token_id
    return [[bos, *ids] for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]
