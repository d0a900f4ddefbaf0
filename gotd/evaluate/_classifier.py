"""Fine-tuning a small LM with a classification head on labelled texts: the plain engine for tiny models.

The downstream score of the testbed: the (warmed-up) LM's decoder plus a fresh linear head on the mean of
its last hidden states over each text's tokens, every weight trained with AdamW on the labelled texts for
a fixed recipe (no choice made on the scored split), then every evaluation text scored once. Two numbers
per text: ``correct`` (0/1, the arg-max label) and ``true_label_nll`` (the cross-entropy of the true label,
nats), a continuous score that separates models where accuracy cannot at small scale.

For models of the ``transformers`` registry (SmolLM2...) the Trainer-based
:func:`gotd.evaluate.few_label_finetune` is the engine; this one avoids the Trainer's machinery for
models of a few hundred thousand parameters, as :func:`gotd.stages.warm_up_copy` does for warm-ups.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gotd.errors import GotdInputError


@dataclass(frozen=True)
class ClassifierRecipe:
    """How the head and the LM are fine-tuned (AdamW, constant lr, seeded batches)."""

    epochs: int = 3              # passes over the labelled texts
    batch_size: int = 32         # texts per step
    lr: float = 1e-3             # learning rate of every weight
    weight_decay: float = 0.0
    max_tokens: int = 64         # tokens per text after <bos> (longer texts are cut; the count is returned)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0 or self.max_tokens < 1:
            raise GotdInputError(f"ClassifierRecipe needs epochs, batch_size, max_tokens >= 1 and lr > 0: {self}")


def _batch(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[Any, Any]:
    import torch

    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), int(pad_id))
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, :len(s)], mask[r, :len(s)] = torch.tensor(s), 1
    return ids, mask


def finetune_classifier(lm: Any, tokenizer: Any, train_texts: Sequence[str], train_labels: Sequence[Any],
                        eval_texts: Sequence[str], eval_labels: Sequence[Any], *, recipe: ClassifierRecipe,
                        seed: int, label_names: Sequence[Any] | None = None) -> dict[str, Any]:
    """Fine-tune a copy of ``lm``'s decoder and a fresh head on the training labels; score ``eval_texts`` once.

    ``lm`` is a causal LM whose ``.model`` is the decoder (a Llama); it is left untouched. The head maps the
    mean last hidden state over a text's tokens (``<bos>`` + at most ``recipe.max_tokens`` tokens) to one
    logit per label; the loss is the mean cross-entropy (nats). ``seed`` fixes the head's initialisation
    and the batch order.

    Returns
    -------
    dict
        ``correct`` (int array, 0/1 per evaluation text), ``true_label_nll`` (float array, nats),
        ``accuracy``, ``mean_true_label_nll``, ``steps``, ``train_loss_last_epoch`` and ``truncated``
        (texts cut to ``max_tokens``, train and evaluation).
    """
    import torch

    from gotd.models import encode_after_bos

    labels = list(label_names) if label_names is not None else sorted(set(train_labels), key=str)
    index = {lab: i for i, lab in enumerate(labels)}
    unknown = sorted({str(y) for y in [*train_labels, *eval_labels] if y not in index})
    if unknown:
        raise GotdInputError(f"labels {unknown} are not among the label names {labels}")
    if not train_texts or not eval_texts:
        raise GotdInputError("finetune_classifier needs training and evaluation texts")
    limit = recipe.max_tokens + 1
    enc = lambda texts: encode_after_bos(tokenizer, list(texts))  # noqa: E731
    train_ids, eval_ids = enc(train_texts), enc(eval_texts)
    truncated = sum(len(s) > limit for s in (*train_ids, *eval_ids))
    train_ids = [s[:limit] for s in train_ids]
    eval_ids = [s[:limit] for s in eval_ids]
    y_train = torch.tensor([index[y] for y in train_labels])
    y_eval = np.array([index[y] for y in eval_labels])

    torch.manual_seed(seed)
    body = copy.deepcopy(lm.model)
    head = torch.nn.Linear(lm.config.hidden_size, len(labels))
    params = [*body.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    pad = int(tokenizer.pad_token_id)

    def logits(seqs: Sequence[Sequence[int]]) -> Any:
        ids, mask = _batch(seqs, pad)
        hidden = body(input_ids=ids, attention_mask=mask).last_hidden_state
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return head(pooled)

    rng = np.random.default_rng(seed)
    body.train()
    steps, last_losses = 0, []
    for epoch in range(recipe.epochs):
        order = rng.permutation(len(train_ids))
        last_losses = []
        for lo in range(0, len(order), recipe.batch_size):
            rows = order[lo:lo + recipe.batch_size]
            loss = torch.nn.functional.cross_entropy(logits([train_ids[r] for r in rows]), y_train[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            last_losses.append(float(loss.detach()))
    body.eval()
    log_probs = []
    with torch.inference_mode():
        for lo in range(0, len(eval_ids), 128):
            log_probs.append(torch.log_softmax(logits(eval_ids[lo:lo + 128]), dim=-1).numpy())
    lp = np.concatenate(log_probs)
    correct = (lp.argmax(1) == y_eval).astype(np.int64)
    nll = -lp[np.arange(len(y_eval)), y_eval].astype(np.float64)
    return {"correct": correct, "true_label_nll": nll, "accuracy": float(correct.mean()),
            "mean_true_label_nll": float(nll.mean()), "steps": steps,
            "train_loss_last_epoch": float(np.mean(last_losses)) if last_losses else float("nan"),
            "truncated": int(truncated)}
