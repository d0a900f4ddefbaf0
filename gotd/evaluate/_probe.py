"""Few-label classification with a head on the (warmed-up) LM: a linear probe.

Features are the LM's last hidden states averaged over each text's tokens
(:func:`mean_hidden_states`), standardised with the training labels' mean and spread. The
head is an L2-regularised logistic regression (scikit-learn, lbfgs); its inverse regularisation ``C`` is
chosen on the dev split (highest accuracy, ties to the smaller ``C``), and the test split is scored once.
A probe, not full fine-tuning: it costs one forward pass per text, so every model of a grid can be scored.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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


def mean_hidden_states(model: Any, tokenizer: Any, texts: Sequence[str], *, block_size: int,
                       batch_size: int = 64) -> np.ndarray:
    """Features for the head: the last layer's hidden states averaged over each text's tokens.

    Each text is ``bos`` + its tokens, cut to its first ``block_size`` tokens (the caller counts longer
    texts); the mean is over the unpadded positions. Returns float32 of shape ``(len(texts), hidden_size)``.
    """
    import torch

    from gotd.models import encode_after_bos

    seqs = [ids[:block_size] for ids in encode_after_bos(tokenizer, texts)]
    out = np.zeros((len(seqs), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for lo in range(0, len(seqs), batch_size):
            chunk = seqs[lo:lo + batch_size]
            width = max(map(len, chunk))
            ids = torch.full((len(chunk), width), int(tokenizer.pad_token_id))
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for r, s in enumerate(chunk):
                ids[r, :len(s)], mask[r, :len(s)] = torch.tensor(s), 1
            hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
            pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
            out[lo:lo + len(chunk)] = pooled.float().numpy()
    return out
