"""The testbed's three steps, as the notebooks call them, each a thin composition of the kit's stages.

``prepare`` (per scenario; notebook ``05a``)
    build the scenario's texts (the testbed's own part; both scenarios share one pool, so the embedding
    and pre-training caches serve the second), embed pool and target reservoir once with the encoder in
    the recorded geometry, pre-train the tiny LM on the pool with its held-out learning curve and n-gram
    references (:func:`gotd.train.pretrain_from_scratch`, cached);
``warm up`` (per scenario x seed; notebook ``05b``)
    every method and control at every token budget: draw, select (saved with sidecars), fill the budget,
    warm up lightly, score, fine-tune on labels (:func:`gotd.testbed._warmup.run_seed`);
``compare`` (once; notebook ``05c``)
    the compare stage's paired statistics (:mod:`gotd.stages.compare`) on every metric, the gates
    (:mod:`gotd.testbed._gates`), the named primary comparisons with Holm's correction, the verdict and
    the figures.

Each stage writes its files into its run folder and its CPU and wall time with the load average into
``timings.json`` (CPU time is this process's, all threads), the run record of what it cost.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gotd._io import atomic_path, write_json_atomic
from gotd.errors import GotdInputError
from gotd.models import TinyLlamaSize
from gotd.paths import flatten_dirs  # noqa: F401  (the notebooks' name for it here)
from gotd.stages import INTERVAL_NOTE, compare_scores, methods_in_order, write_comparison
from gotd.testbed._figures import makeup_table
from gotd.evaluate import ClassifierRecipe
from gotd.testbed._warmup import DownstreamSpec, SeedResult, run_seed
from gotd.train import LoopRecipe, light_recipe, pretrain_from_scratch
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


@dataclass(frozen=True)
class TestbedLM:
    """The testbed's LM: its ``size``, pre-training ``recipe``, the held-out curve's spacing ``evaluate_every``
    (steps; 0: no curve) and ``shipped_dir``, a folder of finished pre-trainings searched before the cache
    (:func:`gotd.train.pretrain_from_scratch`)."""

    __test__ = False   # not a pytest class, whatever its name

    size: TinyLlamaSize = TinyLlamaSize()
    recipe: LoopRecipe = LoopRecipe()
    evaluate_every: int = 0
    shipped_dir: str | None = None


GEOMETRIES = {"cosine": True, "euclidean": False}
"""Embedding geometry -> whether embeddings are L2-normalised. With unit vectors the squared Euclidean cost of
GOT-D, matching and TSDS is ``2 - 2 cos``, the geometry kNN uses: one geometry for every embedding method."""


def prepare(scenario: str, out_dir: str | Path, *, data_dir: str = "data", cache_dir: str = "data/cache",
            sizes: dict[str, Any] | None = None, lm: TestbedLM = TestbedLM(), encoder: str = "minilm",
            max_length: int = 128, geometry: str = "cosine", embedding: str = "encoder", seed: int = 0,
            smoke: bool = False, progress: bool = True) -> dict[str, Any]:
    """Stage 1 for one scenario; returns the record written to ``<out_dir>/prepared.json``.

    ``lm.evaluate_every`` > 0 records the pre-training's held-out pool NLL every that many steps (the plateau
    gate reads it); the manifest's ``references`` hold the unigram and bigram perplexities. ``embedding``
    is ``encoder`` (the sentence encoder ``encoder``) or ``lm`` (the pre-trained tiny LM's own last hidden
    states averaged over each text's tokens, :func:`gotd.evaluate.mean_hidden_states`: an embedding space
    the model itself defines); either is L2-normalised when ``geometry`` is ``cosine``. ``lm.shipped_dir``
    is searched for a finished pre-training of the same key before the cache (the project ships the main
    job's LM in ``data/testbed-lm``; :func:`gotd.train.pretrain_from_scratch`); the record says which was used.
    """
    if embedding not in ("encoder", "lm"):
        raise GotdInputError(f"embedding={embedding!r} must be 'encoder' or 'lm'")
    from gotd.embed import Encoder

    if geometry not in GEOMETRIES:
        raise GotdInputError(f"geometry={geometry!r} must be one of {sorted(GEOMETRIES)}")
    out = Path(out_dir)
    clock = StageClock()
    sizes = dict(sizes or {})
    with clock.step("build_scenario"):
        extra: dict[str, Any] = {}
        if smoke:
            pool, splits = smoke_tables(seed)
            extra = {"pool": pool, "common": ("politics", "sport", "science"), "target_common": "politics",
                     "rare": "film"}
            if scenario == "task":
                extra["task_splits"] = splits
        scen = build_scenario(scenario, data_dir, seed=seed, **sizes, **extra)
        save_scenario(scen, out / "scenario")
    with clock.step("pretrain"):
        lm_folder = pretrain_from_scratch(scen.pool["text"].tolist(), Path(cache_dir) / "testbed-lm", size=lm.size,
                                          recipe=lm.recipe, seed=seed, progress=progress,
                                          heldout=scen.pool_heldout["text"].tolist(),
                                          evaluate_every=lm.evaluate_every, shipped=lm.shipped_dir)
        manifest = json.loads((Path(lm_folder) / "manifest.json").read_text(encoding="utf-8"))
    with clock.step("embed"):
        if embedding == "encoder":
            enc = Encoder(encoder, max_length=max_length, normalize=GEOMETRIES[geometry])
            embed = lambda texts: enc.encode(texts, cache_dir=Path(cache_dir) / "embeddings",  # noqa: E731
                                             progress=progress)
            settings = enc.settings()
        else:
            from gotd.evaluate import mean_hidden_states
            from gotd.train import load_pretrained

            tiny, tok, _ = load_pretrained(lm_folder)

            def embed(texts: list[str]) -> np.ndarray:
                x = mean_hidden_states(tiny, tok, texts, block_size=lm.size.block_size)
                return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12) if GEOMETRIES[geometry] else x
            settings = {"model": "testbed-lm", "pooling": "mean of last hidden states", "lm_folder": str(lm_folder),
                        "normalize": GEOMETRIES[geometry]}
        np.save(out / "pool_embeddings.npy", embed(scen.pool["text"].tolist()))
        np.save(out / "target_embeddings.npy", embed(scen.target["text"].tolist()))
    lm_source = ("shipped with the project" if lm.shipped_dir and Path(lm_folder).parent == Path(lm.shipped_dir)
                 else "pre-trained in this cache")
    record = {"scenario": scenario, "lm_folder": str(lm_folder), "lm_source": lm_source, "lm_manifest": manifest,
              "encoder": settings,
              "geometry": geometry, "embedding": embedding, "report": scen.report, "n_pool": len(scen.pool),
              "smoke": smoke,
              "pretrain_recipe": asdict(lm.recipe)}
    write_json_atomic(out / "prepared.json", record)
    clock.write(out, {"stage": "prepare", "scenario": scenario})
    return record


def warm_up(prepared_dir: str | Path, out_dir: str | Path, *, methods: Sequence[str], budgets: Sequence[int],
            seed: int, n_target: int, warmup_epochs: float = 1.0, n_labels: int = 0,
            classifier: ClassifierRecipe | None = None, eval_split: str = "test",
            method_options: dict[str, dict[str, Any]] | None = None, progress: bool = True) -> SeedResult:
    """Stage 2 for one scenario and seed (:func:`gotd.testbed._warmup.run_seed`).

    The warm-up recipe is :func:`gotd.train.light_recipe` of the pre-training recipe (its final learning
    rate, constant, its batch size, ``warmup_epochs`` passes over the budget), continuing the pre-training's
    AdamW state. Token budgets must be multiples of one step's tokens (batch size x block size), so that
    every method trains on exactly the budget. Writes ``nll.parquet``, ``downstream.parquet``,
    ``makeup.parquet``, ``exposure.csv``, ``picks.json``, ``warmup.json`` and every selection with its
    sidecar under ``selections/``.
    """
    prep = Path(prepared_dir)
    if not (prep / "prepared.json").is_file():
        raise GotdInputError(f"{prep} holds no prepared.json: run the testbed's prepare stage first")
    meta = json.loads((prep / "prepared.json").read_text(encoding="utf-8"))
    recipe = light_recipe(LoopRecipe(**meta["pretrain_recipe"]), epochs=warmup_epochs)
    step_tokens = recipe.batch_size * int(meta["lm_manifest"]["size"]["block_size"])
    bad = [b for b in budgets if int(b) < step_tokens or int(b) % step_tokens]
    if bad:
        raise GotdInputError(f"token budgets {bad} are not positive multiples of one step's {step_tokens} tokens "
                             "(batch size x block size); fix grid.budget")
    downstream = DownstreamSpec(n_labels, classifier, eval_split)
    clock = StageClock()
    scen: Scenario = load_scenario(prep / "scenario")
    with clock.step("select_warmup_score"):
        res = run_seed(scen, meta["lm_folder"], np.load(prep / "pool_embeddings.npy"),
                       np.load(prep / "target_embeddings.npy"), methods=methods, budgets=[int(b) for b in budgets],
                       seed=seed, recipe=recipe, n_target=n_target, downstream=downstream,
                       method_options=method_options,
                       selections_dir=Path(out_dir) / "selections", progress=progress)
    out = Path(out_dir)
    for stem, frame in (("nll", res.nll), ("downstream", res.downstream), ("makeup", res.makeup)):
        with atomic_path(out / f"{stem}.parquet") as tmp:
            frame.to_parquet(tmp, index=False)
    with atomic_path(out / "exposure.csv") as tmp:
        res.exposure.to_csv(tmp, index=False)
    write_json_atomic(out / "picks.json", res.picks.to_dict(orient="records"))
    write_json_atomic(out / "warmup.json", {"skipped": res.skipped, "recipe": asdict(recipe), "seed": seed,
                                            "methods": list(methods), "budgets": [int(b) for b in budgets],
                                            "n_target": n_target, "n_labels": n_labels, "eval_split": eval_split,
                                            "classifier": asdict(classifier) if classifier else None,
                                            "method_options": method_options or {}, "prepared_dir": str(prep)})
    clock.write(out, {"stage": "warm_up", "scenario": meta["scenario"], "seed": seed, "cpu_by_part": res.timings})
    return res


def _read_all(dirs: Sequence[str | Path], stem: str) -> pd.DataFrame:
    frames = [pd.read_parquet(Path(d) / f"{stem}.parquet") for d in dirs if (Path(d) / f"{stem}.parquet").is_file()]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


METRIC_LABELS = {
    "accuracy": "accuracy after fine-tuning on the labels (points)",
    "label_nll": "true-label cross-entropy after fine-tuning (nats/text)",
    "target_nll": "target NLL, token-weighted (nats/token)",
    "target_nll_text": "target NLL, text-weighted (nats/token per text)",
    "pool_nll": "held-out pool NLL (nats/token)",
}


def per_text_metrics(nll: pd.DataFrame, downstream: pd.DataFrame, *, n_boot: int, seed: int
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Paired differences and levels of every metric of the testbed, each row tagged with ``metric``.

    ``target_nll`` (test split, token-weighted), ``target_nll_text`` (mean over texts of each text's NLL
    per token), ``target_nll@<domain>`` (token-weighted, one per domain of the test texts when there are
    several), ``pool_nll`` (held-out pool text), and with labels ``accuracy`` and ``label_nll``. Every
    paired row also has the wider interval (``wide_low``/``wide_high``) and the t-test ``p_value``.
    """
    paired, levels = [], []

    def add(table: pd.DataFrame, metric: str, kind: str, num: str, den: str | None) -> None:
        if table.empty:
            return
        pairs, level = compare_scores(table, metric=metric, kind=kind, num=num, den=den, n_boot=n_boot, seed=seed)
        paired.append(pairs)
        levels.append(level)
    test = nll[nll["split"] == "test"]
    add(test.assign(split="test"), "target_nll", "nll", "nll_sum", "n_tokens")
    add(test.assign(per_token=test["nll_sum"] / test["n_tokens"].clip(lower=1)), "target_nll_text", "nll",
        "per_token", None)
    domains = sorted(set(test["domain"]))
    if len(domains) > 1:
        for dom in domains:
            add(test[test["domain"] == dom], f"target_nll@{dom}", "nll", "nll_sum", "n_tokens")
    held = nll[nll["split"] == "pool_heldout"]
    add(held.assign(split="test"), "pool_nll", "nll", "nll_sum", "n_tokens")
    if not downstream.empty:
        d = downstream.assign(split="test")
        add(d, "accuracy", "accuracy", "correct", None)
        add(d, "label_nll", "nll", "true_label_nll", None)
    return pd.concat(paired, ignore_index=True), pd.concat(levels, ignore_index=True)


def compare(prepared_dirs: Sequence[str | Path], warmup_dirs: Sequence[str | Path], out_dir: str | Path, *,
            primary: Sequence[str] = (), primary_metric: dict[str, str] | None = None, null_margin: float = 0.01,
            plateau_tol: float = 0.02, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Stage 3: gates, paired statistics of every metric, the primary comparisons, verdict and figures.

    ``primary`` names the primary comparisons (``scenario:metric:method:vs``, fixed in the config before the
    run; Holm-corrected together); ``primary_metric`` maps each scenario to the metric of its headline.
    Files: ``paired.csv`` (every difference, with ``wide_low``/``wide_high`` and ``p_value``), ``levels.csv``,
    ``primary.csv``, ``gates.csv``, ``exposure.csv``, ``picks.csv``, ``ot_outcome.csv``, ``makeup.csv``,
    ``figures/`` (headline, pre-training curve, OT vs outcome) and ``verdict.json``.
    """
    from gotd.testbed._figures import curve_figure, effect_figure, ot_outcome_figure, ot_outcome_table
    from gotd.testbed._gates import GATE_ORDER, control_gates, plateau_gate, primary_table

    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    clock = StageClock()
    primary_metric = dict(primary_metric or {})
    with clock.step("statistics"):
        preps = [json.loads((Path(d) / "prepared.json").read_text(encoding="utf-8")) for d in prepared_dirs]
        smoke = any(p.get("smoke") for p in preps)
        labels = SMOKE_LABELS if smoke else LABELS
        order = [p["scenario"] for p in preps]
        nll = _read_all(warmup_dirs, "nll")
        downstream = _read_all(warmup_dirs, "downstream")
        if nll.empty:
            raise GotdInputError("no per-text scores found in the warm-up folders; run the warm-up stage first")
        paired, levels = per_text_metrics(nll, downstream, n_boot=n_boot, seed=seed)
        gates = []
        for prep in preps:
            scen = prep["scenario"]
            man = prep["lm_manifest"]
            g = [plateau_gate(man["training"].get("curve", []), man.get("references", {}), tol=plateau_tol)]
            has_labels = not downstream.empty and scen in set(downstream["scenario"])
            g += control_gates(paired, scen, null_margin=null_margin, has_labels=has_labels)
            gates += [{"scenario": scen, **x} for x in g]
        gate_frame = pd.DataFrame(gates)
        passed = {s: bool(gate_frame[gate_frame["scenario"] == s]["passed"].all()) for s in order}
        prim = primary_table(paired, list(primary))
        exposure = pd.concat([pd.read_csv(Path(d) / "exposure.csv") for d in warmup_dirs
                              if (Path(d) / "exposure.csv").is_file()], ignore_index=True)
        sentences = verdict_from(prim, gate_frame, passed, paired, labels, order, exposure)
    with clock.step("figures"):
        figures = {"headline": effect_figure(paired, levels, primary_metric, passed, labels=SHORT_LABELS,
                                             order=order),
                   "pretraining_curve": curve_figure(preps)}
        picks = pd.DataFrame([r for d in warmup_dirs if (Path(d) / "picks.json").is_file()
                              for r in json.loads((Path(d) / "picks.json").read_text(encoding="utf-8"))])
        ot_table = ot_outcome_table(prepared_dirs, warmup_dirs, paired=None, nll=nll)
        if not ot_table.empty:
            figures["ot_vs_outcome"] = ot_outcome_figure(ot_table)
        makeup = makeup_table(_read_all(warmup_dirs, "makeup"))
        secondary = rare_share_sentences(makeup, preps, labels)
    skipped: dict[str, str] = {}
    seeds = set()
    for d in warmup_dirs:
        w = json.loads((Path(d) / "warmup.json").read_text(encoding="utf-8"))
        skipped.update(w["skipped"])
        seeds.add(w["seed"])
    for name, frame in (("primary", prim), ("gates", gate_frame), ("exposure", exposure),
                        ("ot_outcome", ot_table)):
        with atomic_path(out / f"{name}.csv") as tmp:
            frame.to_csv(tmp, index=False)
    with atomic_path(out / "picks.csv") as tmp:
        picks_flat(picks).to_csv(tmp, index=False)
    with atomic_path(out / "makeup.csv") as tmp:
        makeup.to_csv(tmp)
    for name in ("pretraining_curve", "ot_vs_outcome"):
        if name in figures:
            with atomic_path(out / "figures" / f"{name}.png") as tmp:
                figures[name].savefig(tmp, format="png", dpi=100)
    spearman = ot_rank_correlation(ot_table)
    if spearman:
        secondary.append(spearman)
    record = {"sentences": sentences, "secondary_sentences": secondary,
              "gates": gates, "gate_order": list(GATE_ORDER), "scenarios_certified": passed,
              "primary": list(primary), "primary_metric": primary_metric, "null_margin": null_margin,
              "plateau_tol": plateau_tol,
              "reading": "Effects: accuracy in percentage points, NLL in nats per token (nats per text for the "
                         "true-label cross-entropy); intervals in brackets are the wider of the two-level "
                         "bootstrap and the t-interval over seeds (95%); calls on the primary comparisons use "
                         "Holm-adjusted p-values over the comparisons named in the config.",
              "skipped_methods": skipped, "labels": labels, "seeds": sorted(seeds), "n_boot": n_boot,
              "pool_sizes": {p["scenario"]: int(p["n_pool"]) for p in preps},
              "interval": INTERVAL_NOTE + "; the verdict uses the wider of the two",
              "extra_figures": [f"figures/{n}.png" for n in ("pretraining_curve", "ot_vs_outcome") if n in figures],
              "tables": {"primary.csv": "Primary comparisons (named before the run; Holm-corrected)",
                         "gates.csv": "Gates", "exposure.csv": "Exposure: tokens, blocks and steps of every warm-up",
                         "picks.csv": "Each method's top picks", "ot_outcome.csv":
                         "OT(selection, target) and the change in target NLL, per cell"},
              "timings": _collect_timings([*prepared_dirs, *warmup_dirs])}
    write_comparison(out, paired, levels, figures["headline"], record)
    clock.write(out, {"stage": "compare"})
    return record


def _pm(x: float, scale: float = 1.0, digits: int = 3) -> str:
    return f"{scale * x:+.{digits}f}"


def verdict_from(prim: pd.DataFrame, gates: pd.DataFrame, passed: dict[str, bool], paired: pd.DataFrame,
                 labels: dict[str, str], order: Sequence[str], exposure: pd.DataFrame) -> list[str]:
    """The first screen's sentences, written from the numbers: per scenario, the gates' outcome, then (only
    when every gate passed) each primary comparison with its effect, wider interval and Holm call."""
    out = []
    if not exposure.empty:
        per = exposure.groupby(["scenario", "budget"])[["tokens", "steps"]].nunique()
        equal = bool((per == 1).all().all())
        out.append("Exposure: every warm-up of a scenario and budget trained on "
                   + ("the same number of tokens and steps" if equal else "DIFFERENT numbers of tokens or steps")
                   + " (" + "; ".join(f"{s} {int(b)} tokens in {int(g['steps'].iloc[0])} steps"
                                      for (s, b), g in exposure.groupby(["scenario", "budget"])) + ").")
    for scen in order:
        label = labels.get(scen, scen)
        g = gates[gates["scenario"] == scen]
        failed = g[~g["passed"]]["gate"].tolist()
        if failed:
            out.append(f"{label}: the instrument cannot resolve the question here: gate(s) "
                       f"{', '.join(failed)} failed (see the gates below), so no method is ranked.")
            continue
        rows = prim[prim["scenario"] == scen] if not prim.empty else prim
        parts = []
        for _, r in rows.iterrows():
            scale, unit = (100.0, " points") if r["metric"] == "accuracy" else (1.0, "")
            if r["call"] == "not measured":
                parts.append(f"{r['method']} vs {r['vs']} on {r['metric']}: not measured")
                continue
            parts.append(f"{r['method']} vs {r['vs']} on {r['metric']}: {_pm(r['diff'], scale, 2 if scale > 1 else 4)}"
                         f"{unit} [{_pm(r['wide_low'], scale, 2 if scale > 1 else 4)}, "
                         f"{_pm(r['wide_high'], scale, 2 if scale > 1 else 4)}], Holm p={r['p_holm']:.3g}: "
                         f"{r['call']}")
        out.append(f"{label}: all gates passed. " + ("; ".join(parts) + "." if parts else
                                                     "No primary comparison was named for this scenario."))
    return out


def picks_flat(picks: pd.DataFrame) -> pd.DataFrame:
    """One row per (scenario, method, budget, seed 0 only) top pick, with the selection's summaries."""
    if picks.empty:
        return picks
    rows = []
    first_seed = picks["seed"].min()
    for _, r in picks[picks["seed"] == first_seed].iterrows():
        for t in r["top"]:
            rows.append({"scenario": r["scenario"], "method": r["method"], "budget": r["budget"],
                         "seed": r["seed"], "texts_in_budget": r["n_texts"],
                         "mean_tokens": round(r["mean_tokens"], 1),
                         "mean_nearest_target_distance": round(r["mean_nearest_target_distance"], 3),
                         "duplicate_texts": r["duplicate_texts"], **t})
    return pd.DataFrame(rows)


def ot_rank_correlation(table: pd.DataFrame) -> str:
    """A sentence: Spearman's rank correlation between OT(selection, target) and the change in target NLL."""
    if table.empty or len(table) < 3:
        return ""
    from scipy.stats import spearmanr

    parts = []
    for scen, g in table.groupby("scenario", sort=False):
        rho, p = spearmanr(g["ot_distance"], g["target_nll_change"])
        parts.append(f"{scen}: Spearman rho {rho:+.2f} (p={p:.2g}, {len(g)} cells)")
    return ("Does a selection's OT distance to the target predict its change in target NLL (GOT-D's own "
            "objective, tested)? " + "; ".join(parts) + ".")


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
        if prep.get("report", {}).get("scenario") != "partial":
            continue   # the task scenario's report keeps the shared pool's rare domain, but its target has none
        if not rare or makeup.empty or rare not in makeup.columns or scen not in makeup.index.get_level_values(0):
            continue
        share = makeup.loc[scen, rare]
        parts = []
        for budget in sorted(set(share.index.get_level_values("budget"))):
            by_method = share.loc[budget]
            methods = methods_in_order(list(by_method.index))
            parts.append(f"at {budget} tokens " + ", ".join(f"{m} {100 * by_method[m]:.0f}%" for m in methods))
        pool_share = 100 * prep["report"].get("rare_share", float("nan"))
        out.append(f"{labels.get(scen, scen)}: share of {rare} in each selection (the pool has {pool_share:.0f}%, "
                   f"the target 50%): " + "; ".join(parts) + ".")
    return out
