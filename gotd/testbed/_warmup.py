"""One seed of a scenario, composed of the kit's stages: select, warm up, score.

Every method gets the same pool, the same target, the same encoder embeddings and the same warm-up recipe
(:class:`gotd.train.LoopRecipe`): :func:`gotd.stages.select_all` selects with every method at every budget,
each selection is saved with its sidecar like any other (:func:`gotd.selection.save_selection`),
:func:`gotd.stages.warm_up_copy` warms a copy of the pre-trained LM up on it (the plain engine), and
:func:`gotd.stages.score_per_text` scores it per text (the one per-text schema). The seed varies the
selection where the method is random, the warm-up's batch order and the few labels the classification head
sees. Scores are kept per text, so that the compare stage can pair them.
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

from gotd.evaluate import few_label_sample, mean_hidden_states, probe
from gotd.selection import save_selection
from gotd.stages import score_per_text, select_all, warm_up_copy
from gotd.testbed._scenarios import Scenario
from gotd.train import LoopRecipe, load_pretrained


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
                tag: dict[str, Any]) -> pd.DataFrame:
    """Per-text NLL of ``model`` on the target's test texts and on the held-out pool text."""
    return score_per_text(model, tokenizer, {"test": scenario.test, "pool_heldout": scenario.pool_heldout},
                          block_size=block_size, tag=tag)


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
             per_class: int = 16, selections_dir: str | Path | None = None, progress: bool = True) -> SeedResult:
    """Select, warm up and score for every method x budget at one seed (see the module docstring).

    With ``selections_dir`` every selection is saved there as ``<method>-<budget>.jsonl`` with its sidecar.
    """
    base, tokenizer, manifest = load_pretrained(lm_folder)
    block = int(manifest["size"]["block_size"])
    nll_frames, correct_frames, makeup, rows = [], [], [], []
    skipped = {m: "not available in this install of gotd.selectors" for m in methods if not available(m)}
    runnable = [m for m in methods if m not in skipped]
    timings = {"select_cpu_s": 0.0, "warmup_cpu_s": 0.0, "score_cpu_s": 0.0}
    base_probe = probe_model(base, tokenizer, scenario, block, per_class, seed)
    if base_probe is not None:
        correct_frames.append(pd.DataFrame({"scenario": scenario.name, "method": "base", "budget": 0, "seed": seed,
                                            "split": "test", "correct": base_probe["test_correct"],
                                            "text_index": np.arange(len(base_probe["test_correct"]))}))
        rows.append({"method": "base", "budget": 0, "metric": "few_label_accuracy",
                     "value": base_probe["test_accuracy"], "C": base_probe["C"]})
    c0 = time.process_time()
    selections = select_all(scenario.pool, scenario.target, methods=runnable, budgets=budgets, seed=seed,
                            embeddings=(pool_emb, target_emb), progress=False) if runnable else {}
    timings["select_cpu_s"] += time.process_time() - c0
    bar = tqdm(list(selections.items()), desc=f"{scenario.name} seed {seed}: warm up, score", disable=not progress)
    for (method, budget), sel in bar:
        if selections_dir is not None:
            save_selection(sel, Path(selections_dir) / f"{method}-{budget}.jsonl", records=scenario.pool,
                           extra={"scenario": scenario.name, "inputs": {"pool_rows": len(scenario.pool),
                                                                        "target_rows": len(scenario.target)}})
        picked = scenario.pool.iloc[sel.indices]
        makeup.append(picked["domain"].value_counts().rename_axis("domain").reset_index(name="count").assign(
            scenario=scenario.name, method=method, budget=budget, seed=seed))
        c0 = time.process_time()
        model, stats = warm_up_copy(base, tokenizer, picked["text"].tolist(), recipe, seed, block_size=block)
        timings["warmup_cpu_s"] += time.process_time() - c0
        c0 = time.process_time()
        tag = {"scenario": scenario.name, "method": method, "budget": int(budget), "seed": seed}
        nll_frames.append(score_model(model, tokenizer, scenario, block, tag))
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
