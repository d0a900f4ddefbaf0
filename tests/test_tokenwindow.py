"""A huge text costs memory for the tokens kept: only a window of it is tokenised, with the same tokens."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from gotd.embed import Encoder

WORDS = ["movie", "great", "plot", "the", "acting", "was", "dull", "café", "naïve", "i̇zmir", "dog", "123", "!!"]


class CountingTokenizer:
    """Forwards to a tokenizer and remembers the longest text it was given."""

    def __init__(self, inner) -> None:
        self.inner, self.longest = inner, 0

    def __call__(self, texts, **kwargs):
        self.longest = max([self.longest, *(len(t) for t in texts)])
        return self.inner(texts, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from transformers import AutoTokenizer

    from gotd.models import build_tiny_causal_lm

    tiny = build_tiny_causal_lm(tmp_path_factory.mktemp("tiny") / "lm")
    return {"wordpiece": Encoder(device="cpu").tokenizer, "byte-bpe": AutoTokenizer.from_pretrained(tiny)}


def texts() -> list[str]:
    rng = random.Random(0)
    out = ["", "short", "x" * 5000, " " * 3000 + "late start of the words " * 50, "y" * 20000 + " tail words"]
    for n in (10, 300, 3000, 30000):
        out.append(" ".join(rng.choice(WORDS) for _ in range(n)))
        out.append("".join(rng.choice(WORDS) for _ in range(n)))  # no whitespace at all
        out.append("\n\t ".join(rng.choice(WORDS) for _ in range(n)))
    return out


@pytest.mark.parametrize("kind", ["wordpiece", "byte-bpe"])
@pytest.mark.parametrize("max_tokens", [8, 128])
def test_the_window_keeps_the_tokens_of_the_whole_text(tokenizers: dict, kind: str, max_tokens: int) -> None:
    from gotd.tokenwindow import head_tokens

    tok = tokenizers[kind]
    sample = texts()
    windows, features, longer = head_tokens(tok, sample, max_tokens, add_special_tokens=False)
    for text, window, feature, flag in zip(sample, windows, features, longer):
        whole = tok([text], truncation=False, add_special_tokens=False)["input_ids"][0]
        assert feature["input_ids"][:max_tokens] == whole[:max_tokens]
        assert flag == (len(whole) > max_tokens)
        assert text.startswith(window)


def test_embedding_a_huge_text_tokenises_only_a_window(tokenizers: dict) -> None:
    encoder = Encoder(device="cpu", max_length=64)
    counting = CountingTokenizer(tokenizers["wordpiece"])
    huge = "the plot was great and the acting dull " * 100_000  # 3.9 million characters
    features, n_truncated = encoder._tokenize(["a short text", huge], counting)
    assert n_truncated == 1 and len(features[1]["input_ids"]) == 64
    full = tokenizers["wordpiece"]([huge[:100_000]], truncation=True, max_length=64)["input_ids"][0]
    assert features[1]["input_ids"] == full
    assert counting.longest <= 64 * 64  # characters handed to the tokenizer: bounded by what is kept
