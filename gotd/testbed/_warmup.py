"""One seed of a scenario: select with every method at every budget, warm up the pre-trained LM, score it.

Every method gets the same pool, the same target, the same encoder embeddings and the same warm-up recipe
(:class:`gotd.train.LoopRecipe`); the seed varies the selection where the method is random, the
warm-up's batch order and the few labels the classification head sees. Scores are kept per text, so that
:mod:`gotd.testbed._stats` can pair them.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from gotd.evaluate import few_label_sample, mean_hidden_states, per_text_nll, probe
from gotd.models import encode_after_bos
from gotd.train import LoopRecipe, full_blocks, load_pretrained, train_loop
from gotd.testbed._scenarios import Scenario


def available(method: str) -> bool:
    """True when the installed kit has a selector of that name."""
    from gotd import selectors

    return method in selectors.available_methods()


@dataclass
class SeedResult:
    """Per-text scores, selection make-up, summary rows and skipped methods of one (scenario, seed)."""

    nll: pd.DataFrame
    correct: pd.DataFrame
    makeup: pd.DataFrame
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def score_model(model: Any, tokenizer: Any, scenario: Scenario, block_size: int,
                tag: dict[str, Any]) -> list[pd.DataFrame]:
    """Per-text NLL of ``model`` on the target's test texts and on the held-out pool text."""
    out = []
    for split, frame in (("test", scenario.test), ("pool_heldout", scenario.pool_heldout)):
        scores = per_text_nll(model, tokenizer, frame["text"].tolist(), max_length=block_size, batch_size=32,
                              progress=False)
        out.append(pd.DataFrame({**tag, "split": split, "text_index": np.arange(len(frame)),
                                 "nll": scores["nll_sum"].to_numpy(), "n_tokens": scores["n_tokens"].to_numpy(),
                                 "domain": frame["domain"].to_numpy()}))
    return out


def probe_model(model: Any, tokenizer: Any, scenario: Scenario, block_size: int, per_class: int,
                seed: int) -> dict[str, Any] | None:
    """The few-label head's dev and test result (None when the scenario has no labels)."""
    if not scenario.labelled:
        return None
    train = few_label_sample(scenario.labelled["train"], per_class, seed)
    feats = {k: mean_hidden_states(model, tokenizer, f["text"].tolist(), block_size=block_size)
             for k, f in (("train", train), ("dev", scenario.labelled["dev"]), ("test", scenario.labelled["test"]))}
    return probe(feats["train"], train["label"], feats["dev"], scenario.labelled["dev"]["label"],
                        feats["test"], scenario.labelled["test"]["label"], seed=seed)


def run_seed(scenario: Scenario, lm_folder: str, pool_emb: np.ndarray, target_emb: np.ndarray, *,
             methods: Sequence[str], budgets: Sequence[int], seed: int, recipe: LoopRecipe,
             per_class: int = 16, progress: bool = True) -> SeedResult:
    """Select, warm up and score for every method x budget at one seed (see the module docstring)."""
    base, tokenizer, manifest = load_pretrained(lm_folder)
    block = int(manifest["size"]["block_size"])
    texts = scenario.pool["text"].tolist()
    target_texts = scenario.target["text"].tolist()
    nll_frames, correct_frames, makeup, rows, skipped = [], [], [], [], {}
    timings = {"select_cpu_s": 0.0, "warmup_cpu_s": 0.0, "score_cpu_s": 0.0}
    base_probe = probe_model(base, tokenizer, scenario, block, per_class, seed)
    if base_probe is not None:
        correct_frames.append(pd.DataFrame({"scenario": scenario.name, "method": "base", "budget": 0, "seed": seed,
                                            "split": "test", "correct": base_probe["test_correct"],
                                            "text_index": np.arange(len(base_probe["test_correct"]))}))
        rows.append({"method": "base", "budget": 0, "metric": "few_label_accuracy",
                     "value": base_probe["test_accuracy"], "C": base_probe["C"]})
    from gotd.selectors import inputs_for, run_selector

    todo = [(m, b) for m in methods for b in budgets]
    bar = tqdm(todo, desc=f"{scenario.name} seed {seed}: select, warm up, score", disable=not progress)
    for method, budget in bar:
        if not available(method):
            skipped[method] = "not available in this install of gotd.selectors"
            continue
        pool_in, target_in = inputs_for(method, texts=(texts, target_texts), embeddings=(pool_emb, target_emb))
        c0 = time.process_time()
        sel = run_selector(pool_in, target_in, int(budget), method=method, seed=seed)
        timings["select_cpu_s"] += time.process_time() - c0
        picked = scenario.pool.iloc[sel.indices]
        makeup.append(picked["domain"].value_counts().rename_axis("domain").reset_index(name="count").assign(
            scenario=scenario.name, method=method, budget=budget, seed=seed))
        c0 = time.process_time()
        model = copy.deepcopy(base)
        blocks = full_blocks(encode_after_bos(tokenizer, picked["text"].tolist()), block)
        stats = train_loop(model, blocks, recipe, seed, progress=False)
        timings["warmup_cpu_s"] += time.process_time() - c0
        c0 = time.process_time()
        tag = {"scenario": scenario.name, "method": method, "budget": int(budget), "seed": seed}
        nll_frames.extend(score_model(model, tokenizer, scenario, block, tag))
        res = probe_model(model, tokenizer, scenario, block, per_class, seed)
        timings["score_cpu_s"] += time.process_time() - c0
        rows.append({"method": method, "budget": budget, "metric": "warmup_steps", "value": stats["steps"]})
        rows.append({"method": method, "budget": budget, "metric": "warmup_final_loss", "value": stats["final_loss"]})
        if res is not None:
            correct_frames.append(pd.DataFrame({**tag, "split": "test", "correct": res["test_correct"],
                                                "text_index": np.arange(len(res["test_correct"]))}))
            rows.append({"method": method, "budget": budget, "metric": "few_label_accuracy",
                         "value": res["test_accuracy"], "C": res["C"]})
    nll = pd.concat(nll_frames, ignore_index=True) if nll_frames else pd.DataFrame()
    correct = pd.concat(correct_frames, ignore_index=True) if correct_frames else pd.DataFrame()
    mk = pd.concat(makeup, ignore_index=True) if makeup else pd.DataFrame()
    return SeedResult(nll, correct, mk, rows, skipped, timings)
