"""Zero-shot classification by the LM loss of each label's verbalised prompt."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from gotd._params import ParameterObject
from gotd.errors import GotdInputError
from gotd.evaluate._common import _bos, _check_texts, _encode, _model_and_tokenizer, _model_name, _model_window, _pad_id, _table
from gotd.evaluate._perplexity import token_nll
from gotd.evaluate._stats import classification_metrics

DEFAULT_TEMPLATE = "{text}\nAnswer: {label}"
"""Zero-shot prompt when none is given: the text, then the verbalised label."""

SCORINGS = ("prompt", "label")


def _label_setup(labels: Sequence[Any] | None, label_names: Sequence[Any] | None,
                 verbalizers: Mapping[Any, str] | Sequence[str] | None) -> tuple[list[Any], list[str]]:
    """The label set (order = class index) and each label's verbaliser."""
    if label_names is None:
        if labels is None:
            raise GotdInputError("give label_names (the label set) or the gold labels")
        label_names = sorted(set(labels), key=str)
    label_names = list(label_names)
    if len(set(label_names)) != len(label_names):
        raise GotdInputError(f"label_names repeat a label: {label_names}")
    if len(label_names) < 2:
        raise GotdInputError(f"the label set has {len(label_names)} class ({label_names}); classification needs at "
                             "least two labels: pass label_names with every class")
    if verbalizers is None:
        words = [str(x) for x in label_names]
    elif isinstance(verbalizers, Mapping):
        missing = [x for x in label_names if x not in verbalizers]
        if missing:
            raise GotdInputError(f"verbalizers have no word for label(s) {missing}; give one per label")
        words = [str(verbalizers[x]) for x in label_names]
    else:
        words = [str(w) for w in verbalizers]
        if len(words) != len(label_names):
            raise GotdInputError(f"{len(words)} verbalizers for {len(label_names)} labels; give one per label")
    if len(set(words)) != len(words):
        raise GotdInputError(f"two labels share a verbaliser ({words}); the prompts would be identical")
    return label_names, words


def _label_indices(labels: Sequence[Any], label_names: list[Any], what: str = "labels") -> np.ndarray:
    index = {x: i for i, x in enumerate(label_names)}
    unknown = sorted({str(x) for x in labels if x not in index})
    if unknown:
        raise GotdInputError(f"{what} {unknown[:5]} {'are' if len(unknown) > 1 else 'is'} not in the label set "
                             f"{label_names}; fix the labels or pass the full label_names")
    return np.array([index[x] for x in labels], dtype=np.int64)


def zero_shot_scores(model: Any, tokenizer: Any, texts: Sequence[str], label_names: Sequence[Any], *,
                     verbalizers: Mapping[Any, str] | Sequence[str] | None = None, template: str = DEFAULT_TEMPLATE,
                     scoring: str = "prompt", max_length: int | None = None, batch_size: int = 8,
                     progress: bool = True) -> np.ndarray:
    """Loss of every (text, label) prompt: the lower, the more the LM prefers that label.

    Each label's verbaliser is filled into ``template`` (``{text}`` and ``{label}`` placeholders) and the
    LM scores the resulting prompt:

    ``scoring="prompt"`` (default; OpenICL's ``PPLInferencer``, which the paper used)
        mean loss per token over the whole filled-in prompt (nats/token; the first token is conditioned
        on the document-start token of :func:`gotd.models.document_prefix_ids`). When ``{label}`` comes after
        ``{text}``, the text tokens' losses are the same for every label, so the ranking is decided by the
        label tokens, but divided by the prompt length: longer verbalisers are not penalised as a sum
        would. With the label before the text it also measures how well the label explains the text.
    ``scoring="label"``
        summed loss of the tokens from the verbaliser to the end of the prompt, given what precedes
        them: ``-log p(label ... | text)``, the usual continuation log-likelihood; it favours short
        verbalisers.

    Returns
    -------
    numpy.ndarray of float64, shape (n_texts, n_labels)
        ``prompt``: mean nats per prompt token; ``label``: nats summed over the label part.

    Raises
    ------
    GotdInputError
        Fewer than two labels, a template without ``{text}``/``{label}``, or a prompt longer than
        ``max_length`` tokens (default: the model's position limit); prompts are never truncated.
    """
    texts = _check_texts(texts, "texts")
    if scoring not in SCORINGS:
        raise GotdInputError(f"scoring={scoring!r} is not one of {SCORINGS}")
    if "{text}" not in template or "{label}" not in template:
        raise GotdInputError(f"template {template!r} needs both a {{text}} and a {{label}} placeholder")
    label_names, words = _label_setup(None, label_names, verbalizers)
    model, tokenizer, _ = _model_and_tokenizer(model, tokenizer)
    limit = max_length or _model_window(model)
    bos = _bos(tokenizer)
    head, _, _ = template.partition("{label}")
    prompts = [template.replace("{text}", t).replace("{label}", w) for t in texts for w in words]
    encoded = [bos + ids for ids in _encode(tokenizer, prompts)]
    if limit is not None:
        lengths = np.array([len(x) for x in encoded])
        too_long = np.flatnonzero(lengths > limit)
        if too_long.size:
            worst = int(too_long[np.argmax(lengths[too_long])])
            raise GotdInputError(
                f"{too_long.size} of {len(prompts)} prompts are longer than max_length={limit} tokens (longest: "
                f"{int(lengths[worst])} tokens, text {worst // len(words)}); shorten those texts or raise max_length; "
                "prompts are not truncated because that would cut off the label")
    starts = None
    if scoring == "label":
        prefixes = [bos + ids for ids in _encode(tokenizer, [head.replace("{text}", t) for t in texts])]
        starts = []
        for k, ids in enumerate(encoded):
            prefix = prefixes[k // len(words)]
            # BPE may merge across the boundary: score from the first token that differs from the prefix.
            common = 0
            for a, b in zip(prefix, ids):
                if a != b:
                    break
                common += 1
            starts.append(min(common, len(ids) - 1))
    nll, counts = token_nll(model, encoded, score_from=starts, batch_size=batch_size, pad_id=_pad_id(tokenizer),
                            progress=progress, desc="zero-shot")
    scores = nll / np.maximum(counts, 1) if scoring == "prompt" else nll
    return scores.reshape(len(texts), len(words))


@dataclass(frozen=True)
class ZeroShotConfig(ParameterObject):
    """How :func:`zero_shot_classify` prompts, scores and summarises.

    Attributes
    ----------
    template : str
        The prompt, with ``{text}`` and ``{label}`` (the verbaliser) in it.
    scoring : str
        ``prompt``: mean loss per token over the whole prompt (nats/token; OpenICL, the paper); ``label``:
        summed loss of the label's tokens (nats). See :func:`zero_shot_scores`.
    max_length : int, optional
        Token limit of a prompt (default: the model's position limit); a longer prompt is an error, never cut.
    batch_size : int
        Prompts per forward pass.
    n_bootstrap : int
        Percentile-bootstrap resamples of the examples for the intervals (0: none).
    confidence : float
        Coverage of the intervals (0.95: 95%).
    seed : int
        Seed of the bootstrap.
    """

    template: str = DEFAULT_TEMPLATE
    scoring: str = "prompt"
    max_length: int | None = None
    batch_size: int = 8
    n_bootstrap: int = 1000
    confidence: float = 0.95
    seed: int = 0


def zero_shot_classify(model: Any, tokenizer: Any, texts: Sequence[str], labels: Sequence[Any],
                       config: ZeroShotConfig | None = None, *, label_names: Sequence[Any] | None = None,
                       verbalizers: Mapping[Any, str] | Sequence[str] | None = None, model_name: str | None = None,
                       task: str = "task", split: str = "test", progress: bool = True,
                       **settings: Any) -> pd.DataFrame:
    """Zero-shot classification by the LM loss of each label's prompt; accuracy and macro-F1.

    The predicted label is ``argmin_k score[i, k]`` of :func:`zero_shot_scores` (ties go to the first
    label). Intervals: percentile bootstrap over examples (``n_bootstrap`` resamples, ``seed``).

    Parameters
    ----------
    labels : sequence
        Gold label of each text, each in ``label_names``.
    config : ZeroShotConfig, optional
        Prompt, scoring, token limit, batch size and bootstrap (default: :class:`ZeroShotConfig`'s).
    label_names : sequence, optional
        The label set in class order (default: the sorted distinct gold labels, which must be >= 2).
    verbalizers : mapping or sequence of str, optional
        The word(s) put in the prompt for each label (default: ``str(label)``).
    model_name, task, split : optional
        Written in the ``model``, ``task`` and ``split`` columns.
    settings
        :class:`ZeroShotConfig` fields by name (``template=...``, ``seed=1``); they override ``config``'s.

    Returns
    -------
    pandas.DataFrame
        Rows ``accuracy`` and ``macro_f1`` with ``ci_low``/``ci_high``, plus ``split``, ``scoring``,
        ``n_classes`` and ``majority_rate`` (accuracy of always predicting the most frequent gold label).
    """
    return zero_shot_with_predictions(model, tokenizer, texts, labels, config, label_names=label_names,
                                      verbalizers=verbalizers, model_name=model_name, task=task, split=split,
                                      progress=progress, **settings)[0]


def zero_shot_with_predictions(model: Any, tokenizer: Any, texts: Sequence[str], labels: Sequence[Any],
                               config: ZeroShotConfig | None = None, *, label_names: Sequence[Any] | None = None,
                               verbalizers: Mapping[Any, str] | Sequence[str] | None = None,
                               model_name: str | None = None, task: str = "task", split: str = "test",
                               progress: bool = True, **settings: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`zero_shot_classify`'s table and one row per example: ``text_index``, ``label`` and ``pred``
    (class indices in ``label_names`` order) and ``correct`` (1 if ``pred == label``, else 0)."""
    cfg = ZeroShotConfig.resolve(config, settings)
    texts = _check_texts(texts, "texts")
    if len(labels) != len(texts):
        raise GotdInputError(f"{len(texts)} texts but {len(labels)} labels; give one label per text")
    label_names, words = _label_setup(labels, label_names, verbalizers)
    y_true = _label_indices(labels, label_names)
    model, tokenizer, name = _model_and_tokenizer(model, tokenizer)
    scores = zero_shot_scores(model, tokenizer, texts, label_names, verbalizers=words, template=cfg.template,
                              scoring=cfg.scoring, max_length=cfg.max_length, batch_size=cfg.batch_size,
                              progress=progress)
    y_pred = np.argmin(scores, axis=1)
    rows = classification_metrics(y_true, y_pred, len(label_names), n_bootstrap=cfg.n_bootstrap,
                                  confidence=cfg.confidence, seed=cfg.seed)
    majority = float(np.bincount(y_true, minlength=len(label_names)).max() / len(y_true))
    for row in rows:
        row.update(model=_model_name(model, model_name or name), task=task, split=split, scoring=cfg.scoring,
                   n_classes=len(label_names), majority_rate=majority)
    per_example = pd.DataFrame({"text_index": np.arange(len(texts), dtype=np.int64), "label": y_true,
                                "pred": y_pred.astype(np.int64), "correct": (y_pred == y_true).astype(np.int64)})
    return _table(rows), per_example
