"""Small synthetic data sets: a 2-D toy for explaining GOT-D, and a tiny text corpus for smoke runs.

:func:`two_cluster_toy` is the paper's cats-and-dogs argument in the plane: a pool that is mostly one
kind of point, a target that is half and half. :func:`toy_text_pool` and :func:`toy_text_task` make a few
hundred templated English texts in a few domains, so that the notebooks and their tests can run the whole
selection pipeline (real encoder, real OT solve) in seconds without downloading any corpus. They are
stand-ins for plumbing checks, not data to draw conclusions from.
"""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gotd.errors import GotdInputError


@dataclass
class ToyProblem:
    """A 2-D pool and target drawn from two Gaussian clusters.

    Attributes
    ----------
    pool : numpy.ndarray, shape (n, 2)
    target : numpy.ndarray, shape (m, 2)
    pool_cluster : numpy.ndarray of int, shape (n,)
        0 for the common cluster ("cats"), 1 for the rare one ("dogs").
    target_cluster : numpy.ndarray of int, shape (m,)
    centres : numpy.ndarray, shape (2, 2)
        The two cluster centres.
    """

    pool: np.ndarray
    target: np.ndarray
    pool_cluster: np.ndarray
    target_cluster: np.ndarray
    centres: np.ndarray


def _check_fraction(value: float, name: str) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise GotdInputError(f"{name} must be a fraction in [0, 1], got {value}")
    return float(value)


def two_cluster_toy(n_pool: int = 500, n_target: int = 100, *, rare_share: float = 0.1,
                    target_rare_share: float = 0.5, separation: float = 4.0, spread: float = 0.5,
                    seed: int = 0) -> ToyProblem:
    """Pool with ``rare_share`` of its points in cluster 1, target with ``target_rare_share``.

    Clusters are isotropic Gaussians with standard deviation ``spread`` centred at (0, 0) and
    (``separation``, 0). Counts per cluster are rounded (``round(rare_share * n_pool)`` rare pool points),
    so the shares are exact up to one point. Rows are ordered cluster 0 first.

    Parameters
    ----------
    n_pool, n_target : int
        Number of pool and target points (>= 2 each).
    rare_share, target_rare_share : float
        Share of cluster 1 in the pool and in the target, in [0, 1].
    separation, spread : float
        Distance between the centres and the standard deviation of each cluster (same units).
    seed : int
        Seed of ``numpy.random.default_rng``.
    """
    if n_pool < 2 or n_target < 2:
        raise GotdInputError(f"n_pool and n_target must be >= 2, got {n_pool} and {n_target}")
    if not spread > 0:
        raise GotdInputError(f"spread must be > 0, got {spread}")
    rare_share = _check_fraction(rare_share, "rare_share")
    target_rare_share = _check_fraction(target_rare_share, "target_rare_share")
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [float(separation), 0.0]])

    def draw(n: int, share: float) -> tuple[np.ndarray, np.ndarray]:
        n_rare = int(round(share * n))
        labels = np.r_[np.zeros(n - n_rare, dtype=np.int64), np.ones(n_rare, dtype=np.int64)]
        return centres[labels] + rng.normal(0.0, spread, (n, 2)), labels

    pool, pool_cluster = draw(n_pool, rare_share)
    target, target_cluster = draw(n_target, target_rare_share)
    return ToyProblem(pool=pool, target=target, pool_cluster=pool_cluster, target_cluster=target_cluster,
                      centres=centres)


# ---------------------------------------------------------------------------------------------------
# a tiny templated text corpus
# ---------------------------------------------------------------------------------------------------

_TEMPLATES: dict[str, tuple[str, ...]] = {
    "film": (
        "The {adj} film follows a {person} who {verb} across {place}; the acting is {quality} and the score {score}.",
        "Director's new movie is {quality}: a {adj} story about a {person}, with a script that {score}.",
        "I watched this {adj} comedy about a {person} in {place} and found the performances {quality}.",
    ),
    "politics": (
        "The {office} said the {bill} would {policy} and called on {party} members to support it.",
        "Voters in {place} heard the {office} promise to {policy} before the {bill} reaches a vote.",
        "In the debate the {office} argued that the {bill} fails to {policy}, and {party} leaders agreed.",
    ),
    "science": (
        "The {study} measured how {quantity} changes with {factor} in {sample} and found a {result} effect.",
        "Researchers propose a {method} to estimate {quantity} from {sample}; results show a {result} gain.",
        "We report a {result} correlation between {factor} and {quantity} across {sample} in this {study}.",
    ),
    "sport": (
        "The {team} beat their rivals {score_line} after a {adj} second half in front of fans in {place}.",
        "A late goal gave the {team} a {adj} win; the coach praised the defence and the {score_line} result.",
        "The {team} lost {score_line} at home, a {adj} night that leaves them out of the title race.",
    ),
}

_WORDS: dict[str, tuple[str, ...]] = {
    "adj": ("quiet", "bold", "strange", "gentle", "bright", "dark", "clever", "long", "slow", "lively"),
    "person": ("young nurse", "retired detective", "lonely farmer", "street musician", "teacher", "pilot"),
    "verb": ("travels", "searches", "runs", "hides", "waits", "returns"),
    "place": ("Paris", "the desert", "a small town", "London", "the coast", "the mountains", "Texas"),
    "quality": ("superb", "uneven", "moving", "flat", "wonderful", "forgettable", "sharp", "tedious"),
    "score": ("soars", "never lands", "lingers", "feels tired", "carries every scene", "drags"),
    "office": ("senator", "governor", "minister", "mayor", "president", "candidate"),
    "bill": ("budget bill", "health reform", "tax plan", "trade deal", "energy act"),
    "policy": ("cut taxes", "raise wages", "fund schools", "secure the border", "lower prices", "create jobs"),
    "party": ("opposition", "coalition", "party", "union"),
    "study": ("study", "survey", "experiment", "trial", "analysis"),
    "quantity": ("growth rate", "temperature", "error", "yield", "density", "latency"),
    "factor": ("pressure", "age", "dose", "sample size", "humidity", "training time"),
    "sample": ("mice", "soil samples", "patients", "simulations", "wheat fields", "benchmarks"),
    "method": ("Bayesian model", "new estimator", "sampling scheme", "neural network", "linear test"),
    "result": ("small", "strong", "significant", "modest", "large", "weak"),
    "team": ("home side", "visitors", "champions", "city club", "national team"),
    "score_line": ("2-1", "3-0", "1-0", "4-2", "2-2"),
}

_SENTIMENT: dict[str, tuple[str, ...]] = {
    "positive": ("A delight from start to finish.", "I loved every minute.", "Warm, funny and well made.",
                 "One of the best films of the year.", "Beautifully acted and deeply moving."),
    "negative": ("A dull waste of time.", "I was bored throughout.", "Clumsy, cold and far too long.",
                 "One of the worst films of the year.", "Badly acted and instantly forgettable."),
}

TOY_DOMAINS = tuple(_TEMPLATES)
"""Domains of :func:`toy_text_pool`."""


def _fill(template: str, rng: np.random.Generator) -> str:
    keys = {name: rng.choice(words) for name, words in _WORDS.items()}
    return template.format(**keys)


def _document(domain: str, rng: np.random.Generator, sentences: int) -> str:
    return " ".join(_fill(rng.choice(_TEMPLATES[domain]), rng) for _ in range(sentences))


def toy_text_pool(n_docs: int = 240, *, shares: dict[str, float] | None = None, sentences: int = 3,
                  seed: int = 0) -> pd.DataFrame:
    """A templated candidate pool with columns ``id``, ``text``, ``domain``.

    Parameters
    ----------
    n_docs : int
        Number of documents.
    shares : dict of str to float, optional
        Share of each domain (``film``, ``politics``, ``science``, ``sport``); normalised to sum 1.
        Default: politics 0.45, sport 0.3, science 0.15, film 0.1 (film, the target's domain, is rare).
    sentences : int
        Sentences per document (each ~100 characters).
    seed : int
        Seed of ``numpy.random.default_rng``.
    """
    shares = shares or {"politics": 0.45, "sport": 0.3, "science": 0.15, "film": 0.1}
    unknown = sorted(set(shares) - set(TOY_DOMAINS))
    if unknown:
        raise GotdInputError(f"unknown toy domain(s) {unknown}; choose from {list(TOY_DOMAINS)}")
    if n_docs < 1 or sentences < 1:
        raise GotdInputError(f"n_docs and sentences must be >= 1, got {n_docs} and {sentences}")
    weights = np.array([shares[d] for d in shares], dtype=float)
    if (weights < 0).any() or weights.sum() <= 0:
        raise GotdInputError(f"shares must be non-negative and not all zero, got {shares}")
    counts = np.floor(weights / weights.sum() * n_docs).astype(int)
    counts[np.argmax(weights)] += n_docs - counts.sum()  # rounding remainder to the largest domain
    rng = np.random.default_rng(seed)
    domains = np.repeat(list(shares), counts)
    rng.shuffle(domains)
    texts = [_document(d, rng, sentences) for d in domains]
    return pd.DataFrame({"id": [f"toy-pool/{i}" for i in range(n_docs)], "text": texts, "domain": domains})


def toy_text_task(n_samples: int = 80, *, seed: int = 0, split_fractions: tuple[float, float, float] = (0.5, 0.25, 0.25)
                  ) -> pd.DataFrame:
    """A templated film-review task with columns ``id``, ``text``, ``label`` (positive/negative), ``split``.

    Each review is one film sentence from the pool's templates plus a sentiment sentence, so the label is
    learnable from the text. Splits are a seeded permutation cut at ``split_fractions``.
    """
    if n_samples < 4:
        raise GotdInputError(f"n_samples must be >= 4 so that every split gets a row, got {n_samples}")
    fractions = np.asarray(split_fractions, dtype=float)
    if fractions.shape != (3,) or (fractions < 0).any() or not np.isclose(fractions.sum(), 1.0):
        raise GotdInputError(f"split_fractions {split_fractions} must be three non-negative numbers summing to 1")
    rng = np.random.default_rng(seed)
    labels = np.array(["positive", "negative"])[np.arange(n_samples) % 2]
    rng.shuffle(labels)
    texts = [f"{_document('film', rng, 1)} {rng.choice(_SENTIMENT[label])}" for label in labels]
    order = rng.permutation(n_samples)
    cuts = np.floor(np.cumsum(fractions)[:2] * n_samples).astype(int)
    split = np.empty(n_samples, dtype=object)
    for name, rows in zip(("train", "dev", "test"), np.split(order, cuts)):
        split[rows] = name
    return pd.DataFrame({"id": [f"toy-task/{i}" for i in range(n_samples)], "text": texts, "label": labels,
                         "split": split})


def stdlib_paragraphs(modules: Sequence[str], *, min_words: int = 12, max_words: int = 250) -> list[str]:
    """The distinct prose paragraphs of the docstrings of standard-library ``modules``, in a fixed order.

    Real English text that ships with every Python, so tests and benchmarks have it without a download.
    A paragraph is a blank-line-separated block of a module's, function's or class's docstring with its
    whitespace collapsed; doctest blocks (starting ``>>>``) and paragraphs outside
    ``[min_words, max_words]`` words are left out; modules that do not import are skipped.
    """
    seen: dict[str, None] = {}
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        members = sorted(vars(module).items())
        objects = [module] + [obj for _, obj in members if inspect.isroutine(obj) or inspect.isclass(obj)]
        for obj in objects:
            for paragraph in (inspect.getdoc(obj) or "").split("\n\n"):
                text = " ".join(paragraph.split())
                if min_words <= len(text.split()) <= max_words and not text.startswith(">>>"):
                    seen.setdefault(text, None)
    return list(seen)
