"""One seed of a scenario, composed of the kit's stages: draw, select, fill the token budget, warm up, score.

At each seed the target sample (``n_target`` texts of the scenario's reservoir), the labels of the
downstream fine-tuning and the warm-up's batch order are drawn afresh. Every method ranks the same pool for
the same target sample with the same embeddings (:func:`gotd.stages.select_all`); each ranking fills the
same token budget in its own order (:func:`gotd.train.fill_token_budget`), so tokens, blocks and optimizer
steps are equal across methods and recorded. The warm-up is light (:func:`gotd.stages.warm_up_copy` with
the pre-training's final AdamW state at its final learning rate, one epoch; :func:`gotd.train.light_recipe`).

Controls run beside the methods, under the same budget and recipe:

``none``      the pre-trained model, not warmed up (the reference of every change);
``random``    random pool chunks: the pre-training distribution itself, the null control (it is also the
              random-selection baseline);
``oracle``    the target sample's own unlabelled texts in a seeded order: the positive control (TAPT);
``scratch``   (downstream only) a randomly initialised model of the same size, fine-tuned like the others:
              the pre-trained model must beat it.

Every model is scored per text: NLL of the target's test texts and of the held-out pool text
(:func:`gotd.stages.score_per_text`) and, where the scenario has labels, the fine-tuned classifier's
correctness and true-label cross-entropy on the evaluation split (:func:`gotd.evaluate.finetune_classifier`).
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from gotd.errors import GotdInputError
from gotd.evaluate import BASE_METHOD, ClassifierRecipe, finetune_classifier
from gotd.selection import save_selection
from gotd.stages import score_per_text, select_all, warm_up_copy
from gotd.testbed._scenarios import Scenario
from gotd.train import LoopRecipe, fill_token_budget, load_optimizer_state, load_pretrained

CONTROLS = ("random", "oracle")
"""Warm-ups on control data run at every seed (``none`` and ``scratch`` need no warm-up)."""

SCRATCH = "scratch"
"""The randomly initialised model of the downstream gate."""


def available(method: str) -> bool:
    """True when the installed kit has a selector of that name."""
    from gotd import selectors

    return method in selectors.available_methods()


@dataclass(frozen=True)
class DownstreamSpec:
    """The downstream score of a seed: fine-tune on ``n_labels`` labelled texts with ``classifier``, read on
    ``eval_split`` (``dev`` in a pilot, so the test split is never used to tune the instrument; ``test``
    otherwise). ``n_labels = 0`` or no ``classifier``: no downstream score."""

    n_labels: int = 0
    classifier: ClassifierRecipe | None = None
    eval_split: str = "test"

    def __post_init__(self) -> None:
        if self.eval_split not in ("dev", "test"):
            raise GotdInputError(f"eval_split={self.eval_split!r} must be 'dev' (a pilot) or 'test'")


@dataclass
class SeedResult:
    """Per-text scores, exposure, top picks and skipped methods of one (scenario, seed)."""

    nll: pd.DataFrame
    downstream: pd.DataFrame
    makeup: pd.DataFrame
    exposure: pd.DataFrame
    picks: pd.DataFrame
    skipped: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def score_model(model: Any, tokenizer: Any, scenario: Scenario, block_size: int,
                tag: dict[str, Any]) -> pd.DataFrame:
    """Per-text NLL of ``model`` on the target's test texts and on the held-out pool text."""
    return score_per_text(model, tokenizer, {"test": scenario.test, "pool_heldout": scenario.pool_heldout},
                          block_size=block_size, tag=tag)


def labelled_sample(train: pd.DataFrame, n_labels: int, seed: int) -> pd.DataFrame:
    """``n_labels`` labelled texts drawn at random with ``seed`` (class shares as they come)."""
    if n_labels > len(train):
        raise GotdInputError(f"n_labels={n_labels} but only {len(train)} labelled training texts exist")
    return train.sample(n=n_labels, random_state=seed).reset_index(drop=True)


def target_sample(scenario: Scenario, target_emb: np.ndarray, n_target: int, seed: int
                  ) -> tuple[pd.DataFrame, np.ndarray]:
    """The seed's target sample: ``n_target`` texts of the reservoir (and their embeddings), drawn with ``seed``."""
    if not 0 < n_target <= len(scenario.target):
        raise GotdInputError(f"n_target={n_target} must be in 1..{len(scenario.target)} (the target reservoir)")
    rows = np.sort(np.random.default_rng(seed).choice(len(scenario.target), n_target, replace=False))
    return scenario.target.iloc[rows].reset_index(drop=True), target_emb[rows]


def rank_depth(pool_tokens: np.ndarray, budget_tokens: int) -> int:
    """Chunks each method ranks: the fewest that fill ``budget_tokens`` even when every chunk is among the
    shortest (so any rank order fills the budget), at most the pool."""
    short_first = np.cumsum(np.sort(pool_tokens))
    return int(min(len(pool_tokens), np.searchsorted(short_first, budget_tokens) + 1))


def top_picks(pool: pd.DataFrame, order: Sequence[int], n_used: int, pool_tokens: np.ndarray,
              pool_emb: np.ndarray, target_emb: np.ndarray, k: int = 5) -> dict[str, Any]:
    """What a method trained on: its first ``k`` picks and summaries of the ``n_used`` texts that filled the budget.

    Distances are cosine distances (``1 - cos``) of a chunk's embedding to its nearest target text.
    """
    used = np.asarray(order[:n_used])
    unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)  # noqa: E731
    near = 1.0 - (unit(pool_emb[used]) @ unit(target_emb).T).max(axis=1)
    texts = pool["text"].iloc[used]
    return {"n_texts": int(n_used), "mean_tokens": float(pool_tokens[used].mean()),
            "mean_nearest_target_distance": float(near.mean()),
            "duplicate_texts": int(texts.duplicated().sum()),
            "top": [{"rank": i + 1, "tokens": int(pool_tokens[j]), "nearest_target_distance": float(near[i]),
                     "domain": str(pool["domain"].iloc[j]), "text": str(pool["text"].iloc[j])[:160]}
                    for i, j in enumerate(used[:k])]}


MIXTURE_SHARE = 0.5
"""Mass of the selection in the mixture whose OT distance to the target is recorded (the rest is the pool)."""


def sinkhorn(pool: np.ndarray, target: np.ndarray, **options: Any) -> Any:
    """:func:`gotd.ot.sinkhorn` with the kit's defaults (imported late: it loads torch)."""
    from gotd.ot import sinkhorn as solve

    return solve(pool, target, **options)


def mixture_ot(pool_emb: np.ndarray, sel_emb: np.ndarray, target_emb: np.ndarray, eps: float) -> float:
    """Entropic OT (dual value, cost units) between the mixture (pool, selection) and the target.

    The mixture puts ``1 - MIXTURE_SHARE`` of its mass uniformly on the pool and :data:`MIXTURE_SHARE` on the
    texts that filled the budget: the distribution a light warm-up moves the model toward, in GOT-D's
    reading. The value is :math:`\\langle a, f\\rangle + \\langle b, g\\rangle` at the solved potentials.
    """
    x = np.concatenate([pool_emb, sel_emb]).astype(np.float32)
    a = np.concatenate([np.full(len(pool_emb), (1 - MIXTURE_SHARE) / len(pool_emb)),
                        np.full(len(sel_emb), MIXTURE_SHARE / len(sel_emb))])
    b = np.full(len(target_emb), 1.0 / len(target_emb))
    res = sinkhorn(x, target_emb, a=a, b=b, eps=eps, allow_unconverged=True)
    return float(a @ res.f + b @ res.g)


def run_seed(scenario: Scenario, lm_folder: str, pool_emb: np.ndarray, target_emb: np.ndarray, *,
             methods: Sequence[str], budgets: Sequence[int], seed: int, recipe: LoopRecipe, n_target: int,
             downstream: DownstreamSpec = DownstreamSpec(), method_options: dict[str, dict[str, Any]] | None = None,
             selections_dir: str | Path | None = None, progress: bool = True) -> SeedResult:
    """Draw, select, fill each token budget, warm up and score every method and control at one seed.

    ``methods`` may hold selection methods and the controls of :data:`CONTROLS`; ``budgets`` are token
    budgets (multiples of the LM's block size). With ``selections_dir`` every selection is saved there as
    ``<method>-<budget>.jsonl`` with its sidecar. ``downstream`` says how the fine-tuned score is made and on
    which labelled split it is read (:class:`DownstreamSpec`).
    """
    n_labels, classifier, eval_split = downstream.n_labels, downstream.classifier, downstream.eval_split
    from gotd.models import encode_after_bos, new_tiny_llama
    from gotd.models import TinyLlamaSize

    base, tokenizer, manifest = load_pretrained(lm_folder)
    opt_state = load_optimizer_state(lm_folder)
    block = int(manifest["size"]["block_size"])
    skipped = {m: "not available in this install of gotd.selectors" for m in methods
               if m not in CONTROLS and not available(m)}
    selectors_run = [m for m in methods if m not in CONTROLS and m not in skipped]
    timings = {"select_cpu_s": 0.0, "warmup_cpu_s": 0.0, "score_cpu_s": 0.0, "finetune_cpu_s": 0.0}
    target, t_emb = target_sample(scenario, target_emb, n_target, seed)
    pool_ids = encode_after_bos(tokenizer, scenario.pool["text"].tolist())
    pool_tokens = np.array([len(x) for x in pool_ids])
    target_ids = encode_after_bos(tokenizer, target["text"].tolist())
    depth = rank_depth(pool_tokens, max(int(b) for b in budgets))

    c0 = time.process_time()
    selections = select_all(scenario.pool, target, methods=selectors_run, budgets=[depth], seed=seed,
                            embeddings=(pool_emb, t_emb), progress=False,
                            method_options=method_options) if selectors_run else {}
    timings["select_cpu_s"] += time.process_time() - c0
    orders: dict[str, np.ndarray] = {m: np.asarray(sel.indices) for (m, _), sel in selections.items()}
    if "random" in methods and "random" not in orders:
        orders["random"] = np.random.default_rng(seed).permutation(len(scenario.pool))

    labelled = scenario.labelled if (n_labels and classifier is not None and scenario.labelled) else {}
    labels_train = labelled_sample(labelled["train"], n_labels, seed) if labelled else None
    label_names = sorted(set(labelled["train"]["label"]), key=str) if labelled else None

    nll_frames, down_frames, makeup, exposure, picks = [], [], [], [], []

    def score_downstream(model: Any, tag: dict[str, Any]) -> None:
        if not labelled:
            return
        c1 = time.process_time()
        ev = labelled[eval_split]
        res = finetune_classifier(model, tokenizer, labels_train["text"].tolist(), labels_train["label"].tolist(),
                                  ev["text"].tolist(), ev["label"].tolist(), recipe=classifier, seed=seed,
                                  label_names=label_names)
        down_frames.append(pd.DataFrame({**tag, "split": eval_split, "text_index": np.arange(len(ev)),
                                         "correct": res["correct"], "true_label_nll": res["true_label_nll"],
                                         "one": 1.0}))
        timings["finetune_cpu_s"] += time.process_time() - c1

    base_tag = {"scenario": scenario.name, "method": BASE_METHOD, "budget": 0, "seed": seed}
    c0 = time.process_time()
    nll_frames.append(score_model(base, tokenizer, scenario, block, base_tag))
    timings["score_cpu_s"] += time.process_time() - c0
    score_downstream(base, base_tag)
    if labelled:
        size = TinyLlamaSize(**manifest["size"])
        score_downstream(new_tiny_llama(size, len(tokenizer), seed + 1000),
                   {**base_tag, "method": SCRATCH})

    ot_eps = float(sinkhorn(pool_emb, t_emb).diagnostics["eps"])   # one eps per seed: values comparable
    runs = [m for m in methods if m not in skipped]
    work = [(m, int(b)) for m in runs for b in budgets]
    for method, budget in tqdm(work, desc=f"{scenario.name} seed {seed}", disable=not progress):
        if method == "oracle":
            order = np.random.default_rng(seed).permutation(len(target))
            filled = fill_token_budget([target_ids[i] for i in order], budget, block)
            source = "target sample"
        else:
            order = orders[method]
            filled = fill_token_budget([pool_ids[i] for i in order], budget, block)
            source = "pool"
            picked = scenario.pool.iloc[order[:filled["n_texts"]]]
            makeup.append(picked["domain"].value_counts().rename_axis("domain").reset_index(name="count").assign(
                scenario=scenario.name, method=method, budget=budget, seed=seed))
            picks.append({"scenario": scenario.name, "method": method, "budget": budget, "seed": seed,
                          **top_picks(scenario.pool, order, filled["n_texts"], pool_tokens, pool_emb, t_emb)})
            if selections_dir is not None and method in orders and (method, depth) in selections:
                save_selection(selections[(method, depth)], Path(selections_dir) / f"{method}-{budget}.jsonl",
                               records=scenario.pool,
                               extra={"scenario": scenario.name, "token_budget": budget,
                                      "texts_filling_budget": filled["n_texts"],
                                      "inputs": {"pool_rows": len(scenario.pool), "target_rows": len(target)}})
        c0 = time.process_time()
        import torch

        model, stats = warm_up_copy(base, tokenizer, [], recipe, seed, block_size=block,
                                    blocks=torch.tensor(filled["blocks"], dtype=torch.long),
                                    optimizer_state=opt_state)
        timings["warmup_cpu_s"] += time.process_time() - c0
        used = order[:filled["n_texts"]]
        sel_emb = t_emb[used] if method == "oracle" else pool_emb[used]
        exposure.append({"scenario": scenario.name, "method": method, "budget": budget, "seed": seed,
                         "ot_mixture_target": mixture_ot(pool_emb, sel_emb, t_emb, ot_eps),
                         "source": source, "tokens": int(stats["tokens"]), "blocks": len(filled["blocks"]),
                         "steps": int(stats["steps"]), "texts": int(filled["n_texts"]),
                         "final_loss": float(stats["final_loss"]), "lr": float(stats["final_lr"])})
        tag = {"scenario": scenario.name, "method": method, "budget": budget, "seed": seed}
        c0 = time.process_time()
        nll_frames.append(score_model(model, tokenizer, scenario, block, tag))
        timings["score_cpu_s"] += time.process_time() - c0
        score_downstream(model, tag)
    cat = lambda xs: pd.concat(xs, ignore_index=True) if xs else pd.DataFrame()  # noqa: E731
    picks_frame = pd.DataFrame(picks)
    return SeedResult(cat(nll_frames), cat(down_frames), cat(makeup), pd.DataFrame(exposure), picks_frame,
                      skipped, timings)
