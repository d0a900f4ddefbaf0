"""What an evaluation measures and how, as one object (:class:`EvalConfig`), the way ``TrainConfig`` holds a recipe."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gotd._params import ParameterObject


@dataclass(frozen=True)
class EvalConfig(ParameterObject):
    """The settings of :func:`gotd.evaluate.evaluate_models`, shared by every model it scores.

    Attributes
    ----------
    evaluations : sequence of str
        Which evaluations: ``zero-shot``, ``perplexity``, ``finetune``, ``toxicity``.
    eval_split, ppl_split : str
        The task split of zero-shot classification and of perplexity.
    max_examples, max_ppl_texts : int
        A seeded sample of that many examples / perplexity texts (0 = all).
    seed : int
        Seed of the bootstrap and of the fine-tuning; the samples too unless ``sample_seed`` is set.
    sample_seed : int, optional
        Seed of the samples alone, so that runs at different seeds score the very same texts.
    batch_size : int
        Texts per forward pass.
    ppl_max_length : int
        Perplexity window in tokens (longer texts are split, never cut).
    scoring : str
        Zero-shot scoring (:data:`gotd.evaluate.SCORINGS`).
    n_bootstrap : int
        Bootstrap replicates of the 95% intervals (0: none).
    finetune : mapping, optional
        Keywords of :func:`gotd.evaluate.few_label_finetune`.
    toxicity : mapping, optional
        ``prompts``, ``scorer`` and keywords of :func:`gotd.evaluate.toxicity_eval`.
    """

    evaluations: Sequence[str] = ("zero-shot", "perplexity")
    eval_split: str = "test"
    ppl_split: str = "test"
    max_examples: int = 0
    max_ppl_texts: int = 0
    seed: int = 0
    sample_seed: int | None = None
    batch_size: int = 8
    ppl_max_length: int = 256
    scoring: str = "prompt"
    n_bootstrap: int = 1000
    finetune: Mapping[str, Any] | None = None
    toxicity: Mapping[str, Any] | None = None

    @property
    def draw(self) -> int:
        """The seed of the example samples: ``sample_seed``, else ``seed``."""
        return self.seed if self.sample_seed is None else self.sample_seed
