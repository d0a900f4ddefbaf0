# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
#   language_info:
#     name: python
# ---

# %% [markdown]
# # 04 · Ablations: what changes the GOT-D selection
#
# One knob at a time, against a reference solve (all candidates at once, the default `eps`, converged
# to a tight tolerance): the entropic regularisation `eps`, the solver tolerance, one global solve vs
# independent chunks vs a subsample scored by the c-transform, the budget, the pool size, the encoder
# settings, and calibration of the gradients.
#
# Each knob is judged by **top-k agreement** (share of the reference's k best candidates that the
# variant also selects, k a fraction of the pool) and Spearman correlation of the full rankings.
# **What this shows:** how stable the selection is, and which shortcuts change it.
# **What it does not show:** how much a changed selection changes a fine-tuned model. A different
# selection may train an equally good model; measuring that takes `02_prefinetune` and `03_evaluate`
# over a grid of these knobs (`gotd run`).

# %% tags=["parameters"]
run_dir: str = "reports/interactive/04_ablations"  # folder for results.csv and figures/
smoke: bool = False  # templated toy corpus instead of the built-in data, fewer settings: seconds, for tests
pool: str = "builtin"  # the built-in pool "builtin", or a file of candidate documents
pool_field: str = "text"  # text column of a pool file
domain_field: str = "domain"  # column naming each pool row's domain, empty if the pool has none
target: str = "rotten-tomatoes"  # a built-in task name or a file of target texts
target_field: str = "text"  # text column of a target file
target_split: str = "train"  # split of the task used as the target
data_dir: str = "data"  # where built-in data sets are fetched to
chunk_chars: int = 1000  # pool documents are cut and target texts packed to this many characters
encoder: str = "minilm"  # encoder model, minilm is the bundled all-MiniLM-L6-v2
max_length: int = 256  # token limit per text
eps_rel: float = 0.05  # reference entropic regularisation as a multiple of std of the cost
reference_tol: float = 0.0001  # tolerance of the reference solve
budget_fractions: list = [0.01, 0.05]  # selection sizes compared, as fractions of the pool
eps_rel_values: list = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]  # eps sweep, multiples of std of the cost
tol_values: list = [0.1, 0.03, 0.01, 0.001]  # solver tolerances compared with the reference
chunk_counts: list = [2, 10, 50]  # independent OT problems the pool is split into
subsample_fractions: list = [0.05, 0.1, 0.5]  # share of the pool in the solve before c-transform scoring
pool_fractions: list = [0.1, 0.25, 0.5, 1.0]  # sub-pool sizes for the pool-size effect
budgets: list = [50, 100, 200, 500, 1000]  # nested budgets for the domain make-up by budget
encoder_variants: list = ["mean", "mean+normalize", "cls"]  # pooling, plus +normalize for unit vectors
seeds: list = [0, 1, 2]  # seeds of the random splits and subsamples
cache_dir: str = ""  # embedding cache folder, empty for the default, none to disable

# %%
from functools import partial

import numpy as np
import pandas as pd
from IPython.display import display

from gotd import ablations, analysis, plots
from gotd.stages import inputs
from gotd.paths import resolve_path
from gotd.runner.rundir import RunDir, declared_parameters
from gotd.ot import ot_gradients_with_diagnostics
from gotd.stages.inputs import default_cache_dir, embed_frames

NOTEBOOK = "04_ablations"
parameters = declared_parameters(NOTEBOOK, globals())  # as given: smoke_knobs shrinks the lists next
(budget_fractions, eps_rel_values, tol_values, chunk_counts, subsample_fractions, pool_fractions, budgets,
 encoder_variants, seeds) = ablations.smoke_knobs(
    smoke, budget_fractions=budget_fractions, eps_rel_values=eps_rel_values, tol_values=tol_values,
    chunk_counts=chunk_counts, subsample_fractions=subsample_fractions, pool_fractions=pool_fractions,
    budgets=budgets, encoder_variants=encoder_variants, seeds=seeds)
cache = None if cache_dir.lower() == "none" else (resolve_path(cache_dir) if cache_dir else default_cache_dir())

# %%
pool_df = inputs.load_pool(pool, text_field=pool_field, chunk_chars=chunk_chars, data_dir=data_dir, smoke=smoke)
target_df = inputs.load_target(target, split=target_split, text_field=target_field, chunk_chars=chunk_chars,
                               data_dir=data_dir, smoke=smoke)
task = inputs.task_name(target, smoke=smoke)
domains = pool_df[domain_field] if domain_field and domain_field in pool_df.columns else None
enc = ablations.variant_encoder(encoder, encoder_variants[0], max_length=max_length)
run = RunDir(run_dir, NOTEBOOK, parameters, device=enc.device)
pool_emb, target_emb = embed_frames([pool_df, target_df], encoder=enc, cache_dir=cache)
n = len(pool_emb)
ks = {f: max(1, round(f * n)) for f in budget_fractions}
reference, ref_diag = ot_gradients_with_diagnostics(pool_emb, target_emb, eps_rel=eps_rel, tol=reference_tol)
print(f"pool {pool_emb.shape}, target {target_emb.shape} ({task}); reference solve: eps = {ref_diag['eps']:.4f}, "
      f"{ref_diag['iterations']} iterations, marginal error {ref_diag['marginal_error']:.1e}; top-k sizes {ks}")
# file each table in results.csv: one row per setting, budget fraction and metric
record = partial(ablations.record_table, run, task=task, model=enc.model_name)

# %% [markdown]
# ## 1. eps
#
# Smaller `eps` sharpens the transport (closer to exact OT) and needs more iterations; larger `eps`
# blurs it toward "distance to the target's centre". The reference is `eps_rel` above.

# %%
eps_table, _ = ablations.sweep_solver_option(pool_emb, target_emb, "eps_rel", eps_rel_values, reference=reference,
                                             budget_fractions=budget_fractions, tol=reference_tol, progress=True)
record(eps_table, "eps_rel", "value")
display(eps_table.round(4))
fig = plots.metric_lines(eps_table, "value", "topk_agreement", hue="budget_fraction", logx=True,
                         title="Agreement with the reference as eps changes", xlabel="eps / std(C)",
                         ylabel="top-k agreement with the reference")
run.save_figure(fig, "eps_agreement")
fig

# %% [markdown]
# ## 2. Solver tolerance
#
# Stopping early saves iterations; the question is whether it changes the top of the ranking.

# %%
tol_table, _ = ablations.sweep_solver_option(pool_emb, target_emb, "tol", tol_values, reference=reference,
                                             budget_fractions=budget_fractions, eps_rel=eps_rel)
record(tol_table, "tol", "value")
display(tol_table.round(5))
fig = plots.metric_lines(tol_table, "value", "topk_agreement", hue="budget_fraction", logx=True,
                         title="Agreement with the reference as the tolerance loosens",
                         xlabel="tol (L1 error of the target marginal)", ylabel="top-k agreement")
run.save_figure(fig, "tol_agreement")
fig

# %% [markdown]
# ## 3. One global solve vs independent chunks vs subsample + c-transform
#
# Splitting the pool into independent OT problems makes each chunk transport the *whole* target on its
# own, which changes the gradients; solving on a random subsample and scoring every candidate by the
# c-transform of the subsample's target potential keeps one problem. Seeds vary the split or subsample.

# %%
strategy_table = ablations.compare_strategies(pool_emb, target_emb, chunk_counts=chunk_counts,
                                              subsample_fractions=subsample_fractions,
                                              budget_fractions=budget_fractions, seeds=seeds, progress=True,
                                              eps_rel=eps_rel, tol=reference_tol)
strategy_table["variant"] = [s if s == "global" else f"{s} {v:g}" for s, v in
                             zip(strategy_table["strategy"], strategy_table["setting"].fillna(0))]
record(strategy_table[strategy_table["strategy"] != "global"], "strategy", "variant")
display(strategy_table.groupby(["variant", "budget_fraction"], sort=False)[["topk_agreement", "spearman", "seconds"]]
        .agg(["mean", "std"]).round(3))
tidy = strategy_table.assign(metric="topk_agreement", value=strategy_table["topk_agreement"])
fig = plots.results_points(tidy, "topk_agreement", x="variant", hue="budget_fraction",
                           title="Top-k agreement with one global solve (mean ± std over seeds)")
run.save_figure(fig, "strategy_agreement")
fig

# %% [markdown]
# ## 4. Budget
#
# Budgets are nested prefixes of one ranking, so a larger budget only adds candidates. The domain
# make-up shows what the extra candidates are.

# %%
budgets_in_pool = [b for b in budgets if b <= n]
if domains is not None and budgets_in_pool:
    order = np.argsort(reference, kind="stable")
    by_budget = analysis.domain_shares(domains, {f"top {b}": order[:b] for b in budgets_in_pool})
    for b in budgets_in_pool:
        for domain, share in by_budget.loc[f"top {b}"].items():
            run.add_result(task=task, method="gotd", budget=b, seed=None, model=enc.model_name,
                           metric=f"domain_share:{domain}", value=float(share), ablation="budget", setting=str(b))
    display(by_budget.round(3))
    fig = plots.domain_makeup(by_budget, title="Domain make-up of the GOT-D selection by budget")
    run.save_figure(fig, "budget_domains")
    display(fig)
else:
    print("budget ablation skipped: the pool has no domain column or every budget exceeds the pool")

# %% [markdown]
# ## 5. Pool size
#
# Solve on random sub-pools and compare with the full solve's ranking *of the same rows*: does the
# verdict on a candidate depend on which other candidates are in the pool? (It should, somewhat: a
# candidate is valuable when the pool lacks what it offers.)

# %%
size_tables = [ablations.pool_size_effect(pool_emb, target_emb, pool_fractions, reference=reference,
                                          budget_fraction=budget_fractions[-1], labels=domains, seed=s,
                                          eps_rel=eps_rel, tol=reference_tol).assign(seed=s) for s in seeds]
size_table = pd.concat(size_tables, ignore_index=True)
size_table["budget_fraction"] = budget_fractions[-1]
record(size_table, "pool_fraction", "pool_fraction")
display(size_table.round(3))
fig = plots.metric_lines(size_table, "pool_fraction", "topk_agreement",
                         title="Agreement with the full pool's ranking of the same rows",
                         xlabel="sub-pool size (fraction of the pool)", ylabel="top-k agreement")
run.save_figure(fig, "pool_size_agreement")
fig

# %% [markdown]
# ## 6. Encoder settings
#
# The same encoder with other pooling or with unit-length vectors. Only all-MiniLM-L6-v2 is available
# offline; with other encoders installed, add them here. (The paper's Table 17: MiniLM scored close to
# its task-fine-tuned DistilBERT.)

# %%
k_main = ks[budget_fractions[-1]]
variant_table, variant_selections = ablations.encoder_variants_table(
    pool_df["text"].tolist(), target_df["text"].tolist(), encoder_variants, model=encoder, reference=reference,
    ks=ks, k_main=k_main, base=(pool_emb, target_emb), max_length=max_length, cache_dir=cache, eps_rel=eps_rel,
    tol=reference_tol)
record(variant_table, "encoder", "variant")
display(variant_table.round(3))
fig = plots.overlap_heatmap(analysis.overlap_matrix(variant_selections),
                            title=f"Overlap of GOT-D selections (top {k_main}) across encoder settings")
run.save_figure(fig, "encoder_overlap")
if domains is not None:
    display(analysis.domain_shares(domains, variant_selections).round(3))
fig

# %% [markdown]
# ## 7. Calibration
#
# The calibrated gradient `f_j - mean_{i != j} f_i` is an increasing affine map of the raw potential: it
# changes no ranking (Spearman 1). It matters when scores are compared across problems, because raw
# potentials carry an arbitrary offset per problem.

# %%
half = np.random.default_rng(seeds[0]).permutation(n)[: n // 2]
calibration = ablations.calibration_check({"full pool": (pool_emb, target_emb), "half pool": (pool_emb[half], target_emb),
                                           "half target": (pool_emb, target_emb[::2])}, eps_rel=eps_rel,
                                          tol=reference_tol)
for row in calibration.itertuples():
    run.add_result(task=task, method="gotd", budget=None, seed=seeds[0], model=enc.model_name,
                   metric="spearman_raw_vs_calibrated", value=float(row.spearman_raw_vs_calibrated),
                   ablation="calibration", setting=row.problem)
calibration.round(4)

# %% [markdown]
# ## Results
#
# `results.csv`: one row per knob setting, budget fraction and metric (`topk_agreement`, `spearman`,
# `domain_share:*` by budget, `spearman_raw_vs_calibrated`), with the columns `ablation` and `setting`.

# %%
print(run.write_results())
run.results_frame().groupby(["ablation", "metric"])["value"].describe()[["count", "mean", "min", "max"]].round(3)
