"""Known-answer tests of the compare stage's paired statistics and verdict sentences."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from gotd.errors import GotdInputError
from gotd.stages import compare as _stats


def _scores(nll: np.ndarray, tokens: np.ndarray) -> _stats.Scores:
    return _stats.Scores(np.asarray(nll, float), np.asarray(tokens, float))


def test_perplexity_is_token_weighted() -> None:
    s = _scores([[2.0, 6.0]], [1, 3])
    assert s.per_seed()[0] == pytest.approx(np.exp(8.0 / 4.0))


def test_identical_models_have_zero_difference_and_zero_width() -> None:
    rng = np.random.default_rng(0)
    nll = rng.uniform(1, 5, size=(3, 50))
    tok = rng.integers(1, 20, size=50)
    out = _stats.paired_difference(_scores(nll, tok), _scores(nll, tok), n_boot=200)
    assert out["diff"] == 0.0 and out["ci_low"] == 0.0 and out["ci_high"] == 0.0


def test_constant_shift_is_recovered_exactly() -> None:
    # Every token 0.1 nats worse: perplexity ratio exp(0.1) in every resample, so the difference of
    # perplexities is known per replicate up to the token-weighted mean NLL of the resample.
    rng = np.random.default_rng(1)
    tok = np.full(40, 10.0)
    base = np.full((2, 40), 20.0)               # 2 nats per token everywhere
    worse = base + 0.1 * tok
    out = _stats.paired_difference(_scores(worse, tok), _scores(base, tok), n_boot=300)
    expected = np.exp(2.1) - np.exp(2.0)
    assert out["diff"] == pytest.approx(expected)
    assert out["ci_low"] == pytest.approx(expected) and out["ci_high"] == pytest.approx(expected)
    del rng


def test_t_interval_matches_scipy() -> None:
    tok = np.ones(5)
    a = np.log(np.array([[2.0] * 5, [3.0] * 5, [5.0] * 5]))   # per-seed perplexities 2, 3, 5
    b = np.zeros((3, 5))                                      # perplexity 1
    out = _stats.paired_difference(_scores(a, tok), _scores(b, tok), n_boot=100)
    d = np.array([1.0, 2.0, 4.0])
    lo, hi = sps.t.interval(0.95, 2, loc=d.mean(), scale=sps.sem(d))
    assert out["diff"] == pytest.approx(d.mean())
    assert out["t_low"] == pytest.approx(lo) and out["t_high"] == pytest.approx(hi)


def test_bootstrap_interval_covers_a_real_difference_and_excludes_zero() -> None:
    rng = np.random.default_rng(2)
    tok = rng.integers(5, 30, size=300).astype(float)
    base = rng.normal(3.0, 0.5, size=(3, 300)) * tok
    better = base - 0.2 * tok + rng.normal(0, 0.05, size=(3, 300)) * tok
    out = _stats.paired_difference(_scores(better, tok), _scores(base, tok), n_boot=1000)
    assert out["ci_high"] < 0 and out["ci_low"] < out["diff"] < out["ci_high"]


def test_noise_only_difference_interval_contains_zero() -> None:
    rng = np.random.default_rng(3)
    tok = np.full(200, 10.0)
    base = rng.normal(30, 5, size=(3, 200))
    other = base + rng.normal(0, 1, size=(3, 200))
    out = _stats.paired_difference(_scores(other, tok), _scores(base, tok), n_boot=1000)
    assert out["ci_low"] < 0 < out["ci_high"]


def test_single_seed_baseline_is_broadcast() -> None:
    tok = np.ones(4)
    base = _scores(np.zeros((1, 4)), tok)
    a = _scores(np.log(np.array([[2.0] * 4, [4.0] * 4])), tok)
    out = _stats.paired_difference(a, base, n_boot=50)
    assert out["diff"] == pytest.approx(2.0) and out["n_seeds"] == 2


def test_mismatched_texts_raise() -> None:
    with pytest.raises(GotdInputError):
        _stats.paired_difference(_scores(np.ones((1, 3)), np.ones(3)), _scores(np.ones((1, 4)), np.ones(4)))


def _table(effect: dict[str, float], n: int = 100, seeds: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(4)
    noise = rng.normal(0, 0.02, size=(seeds, n))
    rows = []
    for method, shift in effect.items():
        for s in range(seeds):
            nll = 10 * (2.0 + shift + noise[s] + rng.normal(0, 0.001, n))
            rows.append(pd.DataFrame({"scenario": "sc", "split": "test", "method": method, "budget": 10, "seed": s,
                                      "text_index": np.arange(n), "nll_sum": nll, "n_tokens": 10}))
    return pd.concat(rows, ignore_index=True)


def test_verdict_names_better_worse_and_tied_methods() -> None:
    table = _table({"gotd": 0.0, "matching": 0.2, "random": -0.2, "knn": 0.0})
    scores = _stats.scores_of(table, metric="perplexity", num="nll_sum", den="n_tokens")
    paired = _stats.paired_table(scores, n_boot=500)
    (sentence,) = _stats.verdict_sentences(paired, pool_sizes={"sc": 1000})
    assert "at 10 chunks (1% of the pool)" in sentence
    assert "better than matching by" in sentence
    assert "worse than random by" in sentence
    assert "not different from knn" in sentence
    assert "better beyond the 95% interval in 1 of 3 comparisons and worse in 1" in sentence
    # the advantage is stated as a positive number with an interval that contains it
    frag = sentence.split("better than matching by ")[1].split(";")[0]
    value = float(frag.split(" ")[0])
    lo, hi = (float(x) for x in frag.split("[")[1].rstrip("]").split(", "))
    assert 0 < lo <= value <= hi


def test_verdict_when_nothing_differs() -> None:
    table = _table({"gotd": 0.0, "matching": 0.0})
    paired = _stats.paired_table(_stats.scores_of(table, metric="perplexity", num="nll_sum", den="n_tokens"), n_boot=300)
    (sentence,) = _stats.verdict_sentences(paired)
    assert "no method differs from GOT-D beyond the 95% intervals" in sentence


def test_scores_of_rejects_broken_pairing() -> None:
    table = _table({"gotd": 0.0})
    table = table.drop(index=table.index[0])
    with pytest.raises(GotdInputError, match="pairing"):
        _stats.scores_of(table, metric="perplexity", num="nll_sum", den="n_tokens")
