"""The testbed's three steps, as the notebooks call them, each a thin composition of the kit's stages.

``prepare`` (per scenario; notebook ``05a``)
    build the scenario's texts (the testbed's own part), embed pool and target once with the encoder,
    pre-train the tiny LM on the pool (:func:`gotd.train.pretrain_from_scratch`, cached), score the
    un-warmed model per text (:func:`gotd.stages.score_per_text`);
``warm up`` (per scenario x seed; notebook ``05b``)
    every method x budget: select (saved with sidecars), warm up, score (:func:`gotd.testbed._warmup.run_seed`);
``compare`` (once; notebook ``05c``)
    the compare stage (:mod:`gotd.stages.compare`) on the per-text scores, with the scenarios' labels and
    the selection make-up.

Each stage writes its files into its run folder and its CPU and wall time with the load average into
``timings.json`` (CPU time is this process's, all threads), the run record of what it cost.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gotd._io import atomic_path, write_json_atomic
from gotd.errors import GotdInputError
from gotd.models import TinyLlamaSize
from gotd.paths import flatten_dirs  # noqa: F401  (the notebooks' name for it here)
from gotd.stages import (INTERVAL_NOTE, compare_scores, headline_figure, methods_in_order, verdict_sentences,
                         write_comparison)
from gotd.testbed._figures import makeup_table
from gotd.testbed._warmup import SeedResult, run_seed, score_model
from gotd.train import LoopRecipe, load_pretrained, pretrain_from_scratch
from gotd.testbed._scenarios import Scenario, build_scenario, load_scenario, save_scenario

LABELS = {"task": "Task (Rotten Tomatoes vs the built-in pool)",
          "partial": "Partial coverage (target half Wikipedia, half tweets; tweets 2% of the pool)"}
SHORT_LABELS = {"task": "task scenario", "partial": "partial-coverage scenario"}
SMOKE_LABELS = {"task": "Task (toy film reviews vs the toy pool)",
                "partial": "Partial coverage (toy: target half politics, half film; film 2% of the pool)"}


class StageClock:
    """Collects wall and CPU seconds and the 1-minute load average of named steps."""

    def __init__(self) -> None:
        self.steps: dict[str, dict[str, float]] = {}

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        w, c, load0 = time.perf_counter(), time.process_time(), os.getloadavg()[0]
        try:
            yield
        finally:
            self.steps[name] = {"wall_s": round(time.perf_counter() - w, 2), "cpu_s": round(time.process_time() - c, 2),
                                "load_1min_start": round(load0, 2), "load_1min_end": round(os.getloadavg()[0], 2)}

    def write(self, folder: Path, extra: dict[str, Any] | None = None) -> Path:
        total = {"wall_s": round(sum(s["wall_s"] for s in self.steps.values()), 2),
                 "cpu_s": round(sum(s["cpu_s"] for s in self.steps.values()), 2)}
        env = {k: os.environ.get(k) for k in ("GOTD_CPU_BF16", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA",
                                               "MKL_ENABLE_INSTRUCTIONS")}
        return write_json_atomic(folder / "timings.json", {"steps": self.steps, "total": total, "cpu_env": env,
                                                           "cpu_count": os.cpu_count(), **(extra or {})})


def smoke_tables(seed: int = 0) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """The toy pool (chunked to one row per document) and the toy film-review task, for smoke runs."""
    from gotd.toy import toy_text_pool, toy_text_task

    pool = toy_text_pool(900, shares={"politics": 0.4, "sport": 0.25, "science": 0.2, "film": 0.15}, seed=seed)
    pool = pool.assign(doc_id=pool["id"])
    task = toy_text_task(240, seed=seed)
    return pool, {s: task[task["split"] == s].reset_index(drop=True) for s in ("train", "dev", "test")}


def prepare(scenario: str, out_dir: str | Path, *, data_dir: str = "data", cache_dir: str = "data/cache",
            sizes: dict[str, int] | None = None, lm_size: TinyLlamaSize = TinyLlamaSize(),
            recipe: LoopRecipe = LoopRecipe(), encoder: str = "minilm", max_length: int = 128,
            seed: int = 0, smoke: bool = False, progress: bool = True) -> dict[str, Any]:
    """Stage 1 for one scenario; returns the record written to ``<out_dir>/prepared.json``."""
    from gotd.embed import Encoder

    out = Path(out_dir)
    clock = StageClock()
    sizes = dict(sizes or {})
    with clock.step("build_scenario"):
        extra: dict[str, Any] = {}
        if smoke:
            pool, splits = smoke_tables(seed)
            extra = {"pool": pool}
            if scenario == "task":
                extra["task_splits"] = splits
            else:
                extra.update(common=("politics", "sport", "science"), target_common="politics", rare="film")
        scen = build_scenario(scenario, data_dir, seed=seed, **sizes, **extra)
        save_scenario(scen, out / "scenario")
    with clock.step("embed"):
        enc = Encoder(encoder, max_length=max_length)
        pool_emb = enc.encode(scen.pool["text"].tolist(), cache_dir=Path(cache_dir) / "embeddings", progress=progress)
        target_emb = enc.encode(scen.target["text"].tolist(), cache_dir=Path(cache_dir) / "embeddings",
                                progress=progress)
        np.save(out / "pool_embeddings.npy", pool_emb)
        np.save(out / "target_embeddings.npy", target_emb)
    with clock.step("pretrain"):
        lm_folder = pretrain_from_scratch(scen.pool["text"].tolist(), Path(cache_dir) / "testbed-lm", size=lm_size,
                                           recipe=recipe, seed=seed, progress=progress)
    with clock.step("score_base"):
        model, tok, manifest = load_pretrained(lm_folder)
        tag = {"scenario": scenario, "method": "base", "budget": 0, "seed": 0}
        base = score_model(model, tok, scen, lm_size.block_size, tag)
        with atomic_path(out / "nll_base.parquet") as tmp:
            base.to_parquet(tmp, index=False)
    record = {"scenario": scenario, "lm_folder": str(lm_folder), "lm_manifest": manifest, "encoder": enc.settings(),
              "report": scen.report, "n_pool": len(scen.pool), "smoke": smoke}
    write_json_atomic(out / "prepared.json", record)
    clock.write(out, {"stage": "prepare", "scenario": scenario})
    return record


def warm_up(prepared_dir: str | Path, out_dir: str | Path, *, methods: Sequence[str], budgets: Sequence[int],
            seed: int, recipe: LoopRecipe, per_class: int = 16, progress: bool = True) -> SeedResult:
    """Stage 2 for one scenario and seed; writes ``nll.parquet``, ``correct.parquet``, ``makeup.parquet`` and
    every selection with its sidecar under ``selections/``."""
    prep = Path(prepared_dir)
    if not (prep / "prepared.json").is_file():
        raise GotdInputError(f"{prep} holds no prepared.json: run the testbed's prepare stage first")
    meta = json.loads((prep / "prepared.json").read_text(encoding="utf-8"))
    n_pool = int(meta["n_pool"])
    too_big = [b for b in budgets if not 0 < int(b) <= n_pool]
    if too_big:
        raise GotdInputError(f"budgets {too_big} are not in 1..{n_pool} (the pool's size); fix grid.budget")
    clock = StageClock()
    scen: Scenario = load_scenario(prep / "scenario")
    with clock.step("select_warmup_score"):
        res = run_seed(scen, meta["lm_folder"], np.load(prep / "pool_embeddings.npy"),
                               np.load(prep / "target_embeddings.npy"), methods=methods, budgets=budgets, seed=seed,
                               recipe=recipe, per_class=per_class, selections_dir=Path(out_dir) / "selections",
                               progress=progress)
    out = Path(out_dir)
    for stem, frame in (("nll", res.nll), ("correct", res.correct), ("makeup", res.makeup)):
        with atomic_path(out / f"{stem}.parquet") as tmp:
            frame.to_parquet(tmp, index=False)
    write_json_atomic(out / "warmup.json", {"skipped": res.skipped, "recipe": asdict(recipe), "seed": seed,
                                            "methods": list(methods), "budgets": list(budgets),
                                            "prepared_dir": str(prep)})
    clock.write(out, {"stage": "warm_up", "scenario": meta["scenario"], "seed": seed, "cpu_by_part": res.timings})
    return res


def _read_all(dirs: Sequence[str | Path], stem: str) -> pd.DataFrame:
    frames = [pd.read_parquet(Path(d) / f"{stem}.parquet") for d in dirs if (Path(d) / f"{stem}.parquet").is_file()]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def compare(prepared_dirs: Sequence[str | Path], warmup_dirs: Sequence[str | Path], out_dir: str | Path, *,
            n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Stage 3: paired statistics, verdict, figure, make-up; writes ``testbed/`` files into ``out_dir``.

    Files: ``paired.csv`` (every difference), ``levels.csv`` (every mean with its interval), ``makeup.csv``,
    ``verdict.json`` (the sentences, skipped methods, pool sizes) and ``figures/headline.png``.
    """
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    clock = StageClock()
    with clock.step("statistics"):
        preps = [json.loads((Path(d) / "prepared.json").read_text(encoding="utf-8")) for d in prepared_dirs]
        pool_sizes = {p["scenario"]: int(p["n_pool"]) for p in preps}
        labels = SMOKE_LABELS if any(p.get("smoke") for p in preps) else LABELS
        nll = pd.concat([_read_all(prepared_dirs, "nll_base"), _read_all(warmup_dirs, "nll")], ignore_index=True)
        paired, levels = compare_scores(nll, metric="perplexity", kind="perplexity", num="nll_sum", den="n_tokens",
                                        n_boot=n_boot, seed=seed)
        correct = _read_all(warmup_dirs, "correct")
        acc = not correct.empty
        if acc:
            pairs, level = compare_scores(correct, metric="few_label_accuracy", kind="accuracy", num="correct",
                                          n_boot=n_boot, seed=seed)
            paired = pd.concat([paired, pairs], ignore_index=True)
            levels = pd.concat([levels, level], ignore_index=True)
        prim = paired[paired["metric"] == "perplexity"]
        order = list(pool_sizes)
        sentences = verdict_sentences(prim, pool_sizes=pool_sizes, labels=labels, order=order)
        secondary = []
        if acc:
            secondary = verdict_sentences(paired[paired["metric"] == "few_label_accuracy"], labels=labels,
                                                  pool_sizes=pool_sizes, metric_name="few-label test accuracy",
                                                  lower_is_better=False, order=order)
    with clock.step("figures"):
        fig = headline_figure(levels[levels["metric"] == "perplexity"], prim, pool_sizes=pool_sizes,
                                       labels=SHORT_LABELS, order=order)
        makeup = makeup_table(_read_all(warmup_dirs, "makeup"))
        secondary = rare_share_sentences(makeup, preps, labels) + secondary
    skipped: dict[str, str] = {}
    seeds = set()
    for d in warmup_dirs:
        w = json.loads((Path(d) / "warmup.json").read_text(encoding="utf-8"))
        skipped.update(w["skipped"])
        seeds.add(w["seed"])
    with atomic_path(out / "makeup.csv") as tmp:
        makeup.to_csv(tmp)
    record = {"sentences": sentences, "secondary_sentences": secondary,
              "reading": "Numbers are GOT-D's advantage over the named method (for perplexity: the method's minus "
                         "GOT-D's, so positive = GOT-D lower), with the 95% interval in brackets.",
              "skipped_methods": skipped, "pool_sizes": pool_sizes, "labels": labels,
              "seeds": sorted(seeds), "n_boot": n_boot,
              "interval": INTERVAL_NOTE, "timings": _collect_timings([*prepared_dirs, *warmup_dirs])}
    write_comparison(out, paired, levels, fig, record)
    clock.write(out, {"stage": "compare"})
    return record


def _collect_timings(dirs: Sequence[str | Path]) -> list[dict[str, Any]]:
    rows = []
    for d in dirs:
        p = Path(d) / "timings.json"
        if p.is_file():
            t = json.loads(p.read_text(encoding="utf-8"))
            rows.append({"folder": Path(d).name, **t["total"], "steps": t["steps"]})
    return rows


def smoke_settings(scenario: str) -> tuple[dict[str, int], TinyLlamaSize, LoopRecipe]:
    """Sizes, model and pre-training recipe of a smoke run (toy corpus: seconds, numbers are not findings)."""
    sizes = {"n_pool": 400, "n_target": 40, "n_test": 30, "n_heldout": 30}
    if scenario == "task":
        sizes["n_dev"] = 30
    size = TinyLlamaSize(vocab_size=512, hidden_size=32, layers=1, heads=2, intermediate_size=64, block_size=64)
    return sizes, size, LoopRecipe(epochs=1.0, batch_size=8)


def rare_share_sentences(makeup: pd.DataFrame, preps: Sequence[dict[str, Any]], labels: dict[str, str]) -> list[str]:
    """For a partial-coverage scenario: the rare domain's share of each method's selection per budget."""
    out = []
    for prep in preps:
        rare = prep.get("report", {}).get("rare")
        scen = prep["scenario"]
        if not rare or makeup.empty or rare not in makeup.columns or scen not in makeup.index.get_level_values(0):
            continue
        share = makeup.loc[scen, rare]
        parts = []
        for budget in sorted(set(share.index.get_level_values("budget"))):
            by_method = share.loc[budget]
            methods = methods_in_order(list(by_method.index))
            parts.append(f"at {budget} chunks " + ", ".join(f"{m} {100 * by_method[m]:.0f}%" for m in methods))
        pool_share = 100 * prep["report"].get("rare_share", float("nan"))
        out.append(f"{labels.get(scen, scen)}: share of {rare} in each selection (the pool has {pool_share:.0f}%, "
                   f"the target 50%): " + "; ".join(parts) + ".")
    return out
