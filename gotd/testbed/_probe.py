"""Few-label classification with a head on the (warmed-up) LM: a linear probe.

Features are the LM's last hidden states averaged over each text's tokens
(:func:`gotd.testbed._lm.mean_hidden_states`), standardised with the training labels' mean and spread. The
head is an L2-regularised logistic regression (scikit-learn, lbfgs); its inverse regularisation ``C`` is
chosen on the dev split (highest accuracy, ties to the smaller ``C``), and the test split is scored once.
A probe, not full fine-tuning: on a 2-core CPU it costs a forward pass per text, so every one of the
testbed's models can be scored.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from gotd.errors import GotdInputError

C_GRID = (0.01, 0.1, 1.0, 10.0)


def few_label_sample(train: pd.DataFrame, per_class: int, seed: int) -> pd.DataFrame:
    """``per_class`` labelled texts of every class, drawn with ``seed`` (the few labels a user would have)."""
    groups = []
    for label, g in train.groupby("label", sort=True):
        if len(g) < per_class:
            raise GotdInputError(f"class {label!r} has {len(g)} labelled texts, fewer than per_class={per_class}")
        groups.append(g.sample(n=per_class, random_state=seed))
    return pd.concat(groups, ignore_index=True)


def probe(train_x: np.ndarray, train_y: Sequence, dev_x: np.ndarray, dev_y: Sequence, test_x: np.ndarray,
          test_y: Sequence, *, seed: int = 0, c_grid: Sequence[float] = C_GRID) -> dict:
    """Fit the head for every ``C``, keep the best on dev, score test once.

    Returns
    -------
    dict
        ``C``, ``dev_accuracy``, ``test_accuracy`` and ``test_correct`` (0/1 per test text, for paired statistics).
    """
    from sklearn.linear_model import LogisticRegression

    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    z = lambda x: (x - mu) / sd  # noqa: E731
    best = None
    for c in c_grid:
        head = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(z(train_x), list(train_y))
        acc = float(np.mean(head.predict(z(dev_x)) == np.asarray(dev_y)))
        if best is None or acc > best[0]:
            best = (acc, c, head)
    acc, c, head = best
    correct = (head.predict(z(test_x)) == np.asarray(test_y)).astype(np.int64)
    return {"C": c, "dev_accuracy": acc, "test_accuracy": float(correct.mean()), "test_correct": correct}
