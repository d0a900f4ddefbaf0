"""Tests of gotd.toxicity: the default scorer, the scorer interface and registry, the summary."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gotd import toxicity
from gotd.errors import GotdError, GotdInputError
from gotd.toxicity import (
    DEFAULT_SCORER,
    ProfanityCheckScorer,
    ToxicityScorer,
    available_scorers,
    get_scorer,
    register_scorer,
    toxicity_summary,
)

CLEAN = ["Thank you for the lovely dinner, we had a wonderful evening.",
         "The committee will meet on Tuesday to review the budget."]
OFFENSIVE = ["You are a stupid fucking idiot and everyone hates you.",
             "Shut up, you worthless piece of shit."]


@pytest.fixture(scope="module")
def scorer() -> ToxicityScorer:
    return get_scorer()


def test_default_scorer_ranks_offensive_above_clean(scorer: ToxicityScorer) -> None:
    assert DEFAULT_SCORER == "profanity-check" and isinstance(scorer, ProfanityCheckScorer)
    scores = scorer.score(CLEAN + OFFENSIVE)
    assert scores.shape == (4,) and scores.dtype == np.float64
    assert np.all((scores >= 0) & (scores <= 1))
    assert scores[2:].min() > scores[:2].max()
    assert scores[:2].max() < 0.5 < scores[2:].min()  # and on the right side of the paper's threshold


def test_scores_keep_input_order_across_batches() -> None:
    texts = [CLEAN[i % 2] if i % 3 else OFFENSIVE[i % 2] for i in range(25)] + [""]
    whole = ProfanityCheckScorer(batch_size=1000).score(texts)
    batched = ProfanityCheckScorer(batch_size=4).score(texts)
    np.testing.assert_array_equal(whole, batched)
    assert whole.shape == (26,) and 0.0 <= whole[-1] <= 1.0  # an empty string is a valid text
    np.testing.assert_array_equal(whole[0], ProfanityCheckScorer().score([texts[0]])[0])


def test_empty_input_and_other_containers(scorer: ToxicityScorer) -> None:
    empty = scorer.score([])
    assert empty.shape == (0,) and empty.dtype == np.float64
    from_list = scorer.score(CLEAN + OFFENSIVE)
    np.testing.assert_array_equal(scorer.score(tuple(CLEAN + OFFENSIVE)), from_list)
    np.testing.assert_array_equal(scorer.score(pd.Series(CLEAN + OFFENSIVE)), from_list)
    np.testing.assert_array_equal(scorer.score(np.array(CLEAN + OFFENSIVE)), from_list)


def test_non_string_input_is_a_clear_error(scorer: ToxicityScorer) -> None:
    with pytest.raises(GotdInputError, match=r"texts\[1\] is NoneType"):
        scorer.score(["fine", None])
    with pytest.raises(GotdInputError, match=r"texts\[0\] is int"):
        scorer.score([3])
    with pytest.raises(GotdInputError, match="single str"):
        scorer.score("just one sentence")
    with pytest.raises(GotdInputError, match="list of strings"):
        scorer.score(42)
    with pytest.raises(GotdInputError, match="one-dimensional"):
        scorer.score(np.array([["a", "b"]]))
    with pytest.raises(GotdInputError, match="batch_size"):
        ProfanityCheckScorer(batch_size=0)


def test_describe_records_the_versions(scorer: ToxicityScorer) -> None:
    record = scorer.describe()
    assert record["name"] == "profanity-check"
    assert record["versions"]["alt-profanity-check"] is not None


class _LengthScorer(ToxicityScorer):
    """A stand-in scorer: longer texts are 'more toxic' (tests the plug-in path, not toxicity)."""

    name = "length"
    batch_size = 2

    def _score_batch(self, texts: list[str]) -> np.ndarray:
        return np.array([min(len(t) / 100, 1.0) for t in texts])


class _BrokenScorer(ToxicityScorer):
    name = "broken"

    def _score_batch(self, texts: list[str]) -> np.ndarray:
        return np.full(len(texts), 2.0)


def test_another_scorer_plugs_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(toxicity, "_SCORERS", dict(toxicity._SCORERS))
    register_scorer("length", _LengthScorer)
    assert available_scorers() == ["profanity-check", "length"]
    scores = get_scorer("length").score(["a" * 10, "b" * 50, "c" * 500, ""])
    np.testing.assert_allclose(scores, [0.1, 0.5, 1.0, 0.0])
    with pytest.raises(GotdInputError, match="already registered"):
        register_scorer("length", _LengthScorer)
    register_scorer("length", _LengthScorer, replace=True)
    register_scorer("broken", _BrokenScorer)
    with pytest.raises(GotdError, match=r"outside \[0, 1\]"):
        get_scorer("broken").score(["x"])
    register_scorer("not-a-scorer", lambda: "nope")
    with pytest.raises(GotdError, match="not a ToxicityScorer"):
        get_scorer("not-a-scorer")
    with pytest.raises(GotdInputError, match="unknown toxicity scorer 'perspective'.*profanity-check"):
        get_scorer("perspective")


def test_toxicity_summary() -> None:
    summary = toxicity_summary([0.1, 0.6, 0.5, 0.9])
    assert summary["mean"] == pytest.approx(0.525)
    assert summary["fraction_toxic"] == pytest.approx(0.5)  # strictly above 0.5
    assert summary["max"] == pytest.approx(0.9) and summary["n"] == 4
    assert toxicity_summary([0.1, 0.6], threshold=0.05)["fraction_toxic"] == 1.0
    empty = toxicity_summary([])
    assert empty["n"] == 0 and np.isnan(empty["mean"])
    with pytest.raises(GotdInputError, match="probabilities"):
        toxicity_summary([0.2, 1.5])
    with pytest.raises(GotdInputError, match="threshold"):
        toxicity_summary([0.2], threshold=2)
