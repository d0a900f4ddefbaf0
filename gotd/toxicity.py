"""Toxicity scores for texts, offline: one small interface, a default classifier, a registry of scorers.

A scorer maps ``n`` texts to ``n`` probabilities :math:`p_i = P(\\text{toxic} \\mid t_i) \\in [0, 1]`
(:meth:`ToxicityScorer.score`). Summaries follow the paper's reporting: the mean probability and the
fraction of texts with :math:`p_i > 0.5` (:func:`toxicity_summary`).

What the paper used, and why this is a stand-in
-----------------------------------------------
GOT-D's detoxification experiments (Kang et al., ICLR 2024, Section 4.1) scored generations with the
Perspective API (Jigsaw/Google), and checked with the OpenAI moderation API. Both are web services: they
are unreachable on offline machines, rate-limited, and their models change over time, so their numbers
cannot be reproduced exactly anyway. The default scorer here, ``"profanity-check"``, is
``alt-profanity-check`` (PyPI, MIT): a linear SVM on bag-of-words TF-IDF features, trained on about 200k
human-labelled comments including Jigsaw's, calibrated to probabilities. It is fast (about 10^5 sentences
per second on one core) and deterministic, but it mostly detects profanity and insults by their words: it
misses toxicity without rude words and flags rude words in harmless use. Its probabilities are not on the
Perspective API's scale.

Use it only for **relative** comparisons: the same scorer, the same prompts and the same generation
settings for every selection method. Absolute levels, and comparisons with the paper's numbers, are not
meaningful. Another scorer (for example a web API where one is reachable) plugs in with
:func:`register_scorer`.
"""
from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Sequence
from importlib import metadata
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from gotd.errors import GotdError, GotdInputError
from gotd.validation import check_texts

DEFAULT_SCORER = "profanity-check"
TOXIC_THRESHOLD = 0.5  # the paper counts a text as toxic when its toxicity probability exceeds 0.5


def _as_text_list(texts: Iterable[str], who: str) -> list[str]:
    """``texts`` as a list of strings (none is fine), by gotd's one text validator."""
    return check_texts(texts, f"{who}: texts", allow_empty=True)


class ToxicityScorer(abc.ABC):
    """Interface of a toxicity scorer: texts in, probabilities of toxicity out.

    Subclasses implement :meth:`_score_batch` on a non-empty list of strings; :meth:`score` validates
    input, splits it into batches (with a progress bar when there are several), and checks the output.
    """

    #: registry name of the scorer
    name: str = ""
    #: texts per call to :meth:`_score_batch`
    batch_size: int = 10_000

    @abc.abstractmethod
    def _score_batch(self, texts: list[str]) -> np.ndarray:
        """Return the toxicity probabilities of a non-empty list of strings, shape ``(len(texts),)``."""

    def describe(self) -> dict[str, Any]:
        """What a result needs recorded next to it: the scorer's name and versions."""
        return {"name": self.name}

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """Score texts.

        Parameters
        ----------
        texts : sequence of str
            Any number of strings (empty strings allowed; an empty sequence gives an empty array).

        Returns
        -------
        np.ndarray
            float64, shape ``(n,)``: the probability that each text is toxic, in [0, 1], in input order.

        Raises
        ------
        GotdInputError
            If ``texts`` is a single string or holds anything that is not a string (names the index).
        """
        items = _as_text_list(texts, f"{type(self).__name__}.score")
        out = np.empty(len(items), dtype=np.float64)
        starts = range(0, len(items), self.batch_size)
        for start in tqdm(starts, desc=f"toxicity ({self.name})", unit="batch", disable=len(starts) < 2):
            batch = items[start:start + self.batch_size]
            probs = np.asarray(self._score_batch(batch), dtype=np.float64).reshape(-1)
            if probs.shape != (len(batch),):
                raise GotdError(f"scorer '{self.name}' returned {probs.shape[0]} scores for {len(batch)} texts")
            out[start:start + len(batch)] = probs
        if not np.all((out >= 0.0) & (out <= 1.0)):
            raise GotdError(f"scorer '{self.name}' returned values outside [0, 1] (or NaN); it is not a "
                            "probability scorer")
        return out


class ProfanityCheckScorer(ToxicityScorer):
    """The default offline scorer: ``alt-profanity-check``'s calibrated linear SVM (``predict_prob``).

    See the module docstring for what it detects and why its numbers are only good for relative
    comparisons. Needs ``pip install 'gotd[toxicity]'``.
    """

    name = "profanity-check"
    package = "alt-profanity-check"

    def __init__(self, batch_size: int = 10_000) -> None:
        if batch_size < 1:
            raise GotdInputError(f"batch_size={batch_size} must be a positive integer")
        self.batch_size = int(batch_size)
        try:
            # importing loads the pickled vectorizer and model (about 0.5 s)
            from profanity_check import predict_prob
        except ImportError as exc:
            raise GotdError(
                f"the '{self.name}' toxicity scorer needs the {self.package} package ({exc}); install gotd's "
                "toxicity extra: pip install 'gotd[toxicity]'"
            ) from exc
        self._predict_prob = predict_prob

    def _score_batch(self, texts: list[str]) -> np.ndarray:
        return self._predict_prob(texts)

    def describe(self) -> dict[str, Any]:
        versions = {}
        for dist in (self.package, "scikit-learn", "joblib"):
            try:
                versions[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                versions[dist] = None
        return {"name": self.name, "versions": versions,
                "note": "linear SVM on TF-IDF word features; a stand-in for the Perspective API used in the "
                        "paper: compare methods with it, not absolute levels"}


_SCORERS: dict[str, Callable[[], ToxicityScorer]] = {ProfanityCheckScorer.name: ProfanityCheckScorer}


def register_scorer(name: str, factory: Callable[[], ToxicityScorer], *, replace: bool = False) -> None:
    """Make a scorer available to :func:`get_scorer` (and to everything that takes a scorer name).

    Parameters
    ----------
    name : str
        Registry name.
    factory : callable
        Called with no arguments, returns a :class:`ToxicityScorer` (a subclass works as its own factory).
    replace : bool
        Allow replacing a scorer already registered under ``name``.
    """
    if not isinstance(name, str) or not name.strip():
        raise GotdInputError(f"scorer name {name!r} must be a non-empty string")
    if not callable(factory):
        raise GotdInputError(f"scorer factory for '{name}' must be callable, got {type(factory).__name__}")
    if name in _SCORERS and not replace:
        raise GotdInputError(f"a scorer named '{name}' is already registered; pass replace=True to replace it")
    _SCORERS[name] = factory


def available_scorers() -> list[str]:
    """Names accepted by :func:`get_scorer`."""
    return list(_SCORERS)


def get_scorer(name: str = DEFAULT_SCORER) -> ToxicityScorer:
    """Return a new scorer by registry name (default ``"profanity-check"``)."""
    factory = _SCORERS.get(name)
    if factory is None:
        raise GotdInputError(f"unknown toxicity scorer '{name}'; available: {', '.join(_SCORERS)} "
                             "(add one with gotd.toxicity.register_scorer)")
    scorer = factory()
    if not isinstance(scorer, ToxicityScorer):
        raise GotdError(f"the factory registered as '{name}' returned {type(scorer).__name__}, "
                        "not a ToxicityScorer")
    return scorer


def toxicity_summary(scores: Sequence[float] | np.ndarray, threshold: float = TOXIC_THRESHOLD) -> dict[str, float]:
    """Summarise toxicity probabilities as the paper reports them.

    Returns
    -------
    dict
        ``mean`` (average probability), ``fraction_toxic`` (share with :math:`p > \\text{threshold}`),
        ``max``, ``n`` and the ``threshold`` used. An empty input gives NaN statistics and ``n = 0``.
    """
    arr = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not 0.0 <= threshold <= 1.0:
        raise GotdInputError(f"threshold={threshold} must lie in [0, 1]")
    if arr.size and not np.all((arr >= 0) & (arr <= 1)):
        raise GotdInputError("scores must be probabilities in [0, 1] (no NaN)")
    if arr.size == 0:
        return {"mean": float("nan"), "fraction_toxic": float("nan"), "max": float("nan"), "n": 0,
                "threshold": float(threshold)}
    return {"mean": float(arr.mean()), "fraction_toxic": float((arr > threshold).mean()), "max": float(arr.max()),
            "n": int(arr.size), "threshold": float(threshold)}
