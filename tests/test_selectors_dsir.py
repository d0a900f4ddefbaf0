"""dsir against its reference package, ``data-selection`` (p-lambda/dsir, ``data_selection.HashedNgramDSIR``).

Both run on the same texts; the log importance weights must agree (Spearman >= 0.999, in fact equal to
rounding) and, for the same seed, the selected set must be the package's.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from gotd.errors import GotdInputError
from gotd.selectors import dsir_log_weights, run_selector, select

REPO = Path(__file__).resolve().parents[1]
TOPICS = {
    "sport": "the striker scored a late goal , as the team won the league match at the stadium ! fans cheered",
    "finance": "shares fell 3.5% as the central bank raised interest-rates ; inflation surprised markets (again)",
    "cooking": "stir the onions in butter , add garlic and simmer the tomato sauce for twenty minutes ... delicious",
    "space": "the telescope observed a distant galaxy ; astronomers measured the orbit of the planet's moon",
}


def corpus(seed: int = 0, n_pool: int = 400, short_share: float = 0.3) -> tuple[list[str], list[str]]:
    """Pool mostly sport/finance, target cooking/space; ``short_share`` of the pool under 100 tokens."""
    rng = np.random.default_rng(seed)
    words = {t: s.split() for t, s in TOPICS.items()}
    extra = ["U.S.", "e-mail", "don't", "café", "naïve", "x^2", "#1", "C++", "...", "--", "it's", "3,000", "'quoted'"]

    def text(topic: str, length: int) -> str:
        vocab = words[topic] + extra + words[rng.choice(list(words))][:3]
        return " ".join(rng.choice(vocab, size=length))

    pool = []
    for _ in range(n_pool):
        topic = rng.choice(list(TOPICS), p=[0.45, 0.45, 0.05, 0.05])
        length = int(rng.integers(20, 80)) if rng.random() < short_share else int(rng.integers(100, 220))
        pool.append(text(topic, length))
    target = [text(t, int(rng.integers(60, 200))) for t in ["cooking", "space"] * 20]
    return pool, target


def package_run(pool: list[str], target: list[str], tmp_path: Path, budget: int, seed: int,
                top_k: bool = False) -> tuple[np.ndarray, set[int]]:
    """The package's log importance weights (pool order) and the rows its resample keeps."""
    data_selection = pytest.importorskip("data_selection")
    raw, tgt = tmp_path / "raw.jsonl", tmp_path / "target.jsonl"
    raw.write_text("".join(json.dumps({"text": t, "row": i}) + "\n" for i, t in enumerate(pool)))
    tgt.write_text("".join(json.dumps({"text": t}) + "\n" for t in target))
    dsir = data_selection.HashedNgramDSIR([str(raw)], [str(tgt)], cache_dir=str(tmp_path / "cache"), num_proc=1)
    dsir.fit_importance_estimator(num_tokens_to_fit="auto")
    dsir.compute_importance_weights()
    weights = np.load(tmp_path / "cache" / "log_importance_weights" / "0.npy")
    np.random.seed(seed)
    dsir.resample(out_dir=str(tmp_path / "out"), num_to_sample=budget, cache_dir=str(tmp_path / "resampled"),
                  top_k=top_k)
    rows = {json.loads(line)["row"] for line in (tmp_path / "out" / "0.jsonl").read_text().splitlines()}
    return weights, rows


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def test_tokeniser_is_nltk_wordpunct():
    nltk_tokenize = pytest.importorskip("nltk.tokenize")
    from gotd.selectors._dsir import TOKEN_PATTERN

    text = "Don't e-mail the U.S. café at 3,000$ -- it's naïve (x^2)... #1 C++ «quoted» 日本語 tab\there"
    assert TOKEN_PATTERN.findall(text.lower()) == nltk_tokenize.WordPunctTokenizer().tokenize(text.lower())


def test_hashing_is_the_packages():
    hashed = pytest.importorskip("data_selection.hashed_ngram_dsir")
    from gotd.selectors._dsir import bucket_of

    for gram in ["the", "the striker", "café", "3,000 $", "日本語"]:
        assert bucket_of(gram, 10_000) == hashed.hash_buckets(gram, 10_000)
    pool, _ = corpus(1, n_pool=5)
    from gotd.selectors._dsir import TOKEN_PATTERN, _features

    buckets, owners, lengths, _ = _features(pool, ["the target"], 2, 10_000, False)
    for row, text in enumerate(pool):
        ours = np.bincount(buckets[owners == row], minlength=10_000)
        theirs = hashed.get_ngram_counts(text, n=2, num_buckets=10_000)
        np.testing.assert_array_equal(ours, theirs)
        assert lengths[row] == len(TOKEN_PATTERN.findall(text.lower()))


@pytest.mark.parametrize("seed", [0, 7])
def test_weights_and_selection_equal_the_package(tmp_path, seed):
    pool, target = corpus(seed)
    budget = 40
    weights, rows = package_run(pool, target, tmp_path, budget, seed)
    ours = dsir_log_weights(pool, target)
    # Same features, smoothing and dot product; only the summation order differs (rounding).
    assert spearman(ours, weights) >= 0.999
    np.testing.assert_allclose(ours, weights, rtol=1e-9, atol=1e-9)
    sel = run_selector(pool, target, budget, method="dsir", seed=seed)
    assert set(sel.indices.tolist()) == rows
    assert sel.diagnostics["selected_short"] == 0 and sel.diagnostics["n_short"] > 0


def test_top_k_equals_the_packages_top_k(tmp_path):
    pool, target = corpus(3)
    _, rows = package_run(pool, target, tmp_path, 30, 0, top_k=True)
    assert set(select(pool, target, 30, method="dsir", gumbel=False).tolist()) == rows


def test_short_texts_rank_after_every_long_one():
    pool, target = corpus(2, n_pool=120, short_share=0.5)
    from gotd.selectors._dsir import TOKEN_PATTERN

    short = np.array([len(TOKEN_PATTERN.findall(t.lower())) < 100 for t in pool])
    n_long = int((~short).sum())
    assert 0 < n_long < 120
    with pytest.warns(UserWarning, match=f"only {n_long} of 120"):
        sel = run_selector(pool, target, 100, method="dsir", seed=1)
    assert sel.budget == 100 and not short[sel.indices[:n_long]].any() and short[sel.indices[n_long:]].all()
    assert sel.diagnostics["selected_short"] == 100 - n_long
    with pytest.raises(GotdInputError, match=f"only {n_long} of 120.*short_texts='last'"):
        select(pool, target, 100, method="dsir", short_texts="error")
    # min_length=0 ranks every text together, as the package with min_example_length=0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert short[select(pool, target, 100, method="dsir", min_length=0)].any()


def test_dsir_prefers_texts_sharing_target_vocabulary():
    pool, target = corpus(4, short_share=0.0)
    on_topic = np.array([("onions" in t or "telescope" in t or "garlic" in t or "galaxy" in t) for t in pool])
    assert on_topic[select(pool, target, 20, method="dsir", gumbel=False)].mean() >= 0.9


def test_dsir_is_deterministic_per_seed_and_seeds_differ():
    pool, target = corpus(5)
    a, b = select(pool, target, 50, method="dsir", seed=1), select(pool, target, 50, method="dsir", seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, select(pool, target, 50, method="dsir", seed=2))


def test_dsir_weights_do_not_depend_on_python_hash_seed():
    code = ("from gotd.selectors import dsir_log_weights;"
            "print(dsir_log_weights(['the cat sat, on a mat', 'a dog ran'], ['the cat'], num_buckets=97).tolist())")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                           env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": s}).stdout
            for s in ("1", "2")}
    assert len(outs) == 1


def test_dsir_rejects_bad_input():
    with pytest.raises(GotdInputError, match=r"pool\[1\].*string"):
        select(["a", None, "c"], ["a"], 1, method="dsir")
    with pytest.raises(GotdInputError, match="single string"):
        select("just one text", ["a"], 1, method="dsir")
    with pytest.raises(GotdInputError, match="raw text"):
        select(np.zeros((4, 3)), ["a"], 1, method="dsir")
    with pytest.raises(GotdInputError, match="smoothing"):
        select(["a b", "c"], ["a"], 1, method="dsir", smoothing=0)
    with pytest.raises(GotdInputError, match="target: no text has a single token"):
        select(["a b", "c"], [" ", ""], 1, method="dsir", min_length=0)


# The reference is data-selection as installed with current nltk, whose WordPunctTokenizer compiles its
# pattern with the `regex` engine: there \w matches combining marks, so "i̇zmir" is one word.
MARKED = ["i̇zmir", "İzmir", "e\u0301te\u0301", "naïve", "बिल्ली", "ภาษาไทย", "كَتَبَ", "ñandú", "n\u0303o"]


def test_tokeniser_matches_nltk_on_combining_marks():
    nltk_tokenize = pytest.importorskip("nltk.tokenize")
    from gotd.selectors._dsir import TOKEN_PATTERN

    for text in [*MARKED, " ".join(MARKED) + " -- (i̇zmir's) e\u0301!"]:
        assert TOKEN_PATTERN.findall(text.lower()) == nltk_tokenize.WordPunctTokenizer().tokenize(text.lower()), text
    assert TOKEN_PATTERN.findall("i̇zmir") == ["i̇zmir"]


def test_weights_equal_the_package_on_texts_with_combining_marks(tmp_path):
    rng = np.random.default_rng(5)
    pool, target = corpus(5, n_pool=150)
    pool = [t + " " + " ".join(rng.choice(MARKED, size=int(rng.integers(0, 30)))) for t in pool]
    target = [t + " " + " ".join(rng.choice(MARKED[:4], size=20)) for t in target]
    weights, rows = package_run(pool, target, tmp_path, 30, 0)
    np.testing.assert_allclose(dsir_log_weights(pool, target), weights, rtol=1e-9, atol=1e-9)
    assert set(run_selector(pool, target, 30, method="dsir", seed=0).indices.tolist()) == rows


def test_the_old_smoothing_is_refused_naming_its_new_name():
    pool, target = corpus(1, n_pool=60)
    for call in (lambda: select(pool, target, 5, method="dsir", smoothing=1.0),
                 lambda: dsir_log_weights(pool, target, smoothing=1.0)):
        with pytest.raises(GotdInputError, match="smoothing=1.0 is no longer accepted.*probability_floor"):
            call()
    default = dsir_log_weights(pool, target)
    np.testing.assert_array_equal(dsir_log_weights(pool, target, probability_floor=1e-8), default)
    assert not np.allclose(dsir_log_weights(pool, target, probability_floor=1e-3), default)
    assert run_selector(pool, target, 5, method="dsir").params["probability_floor"] == 1e-8
