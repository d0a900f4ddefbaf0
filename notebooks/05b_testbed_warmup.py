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
# # 05b · Testbed: draw, select, fill a token budget, warm up lightly, score and fine-tune, one seed
#
# At this seed the target sample, the labels and the warm-up's batch order are drawn afresh. Every method
# ranks the same pool for the same target sample; each ranking fills **the same token budget** in its own
# order, so every warm-up trains on the same number of tokens and optimizer steps (recorded in
# `exposure.csv`). The warm-up is **light**: the pre-training's final AdamW state continued at its final
# learning rate, one epoch over the budget. Controls run beside the methods: no warm-up (`base`), random
# pool chunks (`random`, the null: the pre-training distribution itself), the target sample's own texts
# (`oracle`, the positive control) and, downstream, a randomly initialised model (`scratch`).
#
# Scores per text: target NLL on the test texts and NLL on held-out pool text; where the target is a
# labelled task, accuracy and true-label cross-entropy after fine-tuning the whole model plus a head on
# the labels (a fixed recipe, scored once on `eval_split`: `dev` in the pilot, `test` in the run).
#
# **What this shows:** one seed's numbers, kept per text for the paired statistics of
# `05c_testbed_compare`. **What it does not show:** a comparison; one seed is not evidence.

# %% tags=["parameters"]
run_dir: str = "reports/interactive/05b_testbed_warmup"  # folder for results.csv and the per-text scores
smoke: bool = False  # recorded only: the sizes come from the prepare stage
prepared_dir: str = "reports/interactive/05a_testbed_prepare"  # run folder of 05a_testbed_prepare
methods: list = ["gotd", "knn", "dsir", "random", "oracle"]  # selection methods and controls (random, oracle)
budgets: list = [24576]  # token budgets (multiples of batch size x block size), every method at every budget
seed: int = 0  # seed of the target sample, the selection (random methods), the warm-up order and the labels
n_target: int = 600  # target sample drawn from the reservoir at this seed
warmup_epochs: float = 1.0  # passes over the budget at the pre-training's final learning rate
n_labels: int = 4000  # labelled texts for the downstream fine-tuning, task scenario only (0: none)
clf_epochs: int = 2  # passes over the labels
clf_lr: float = 1e-3  # learning rate of the whole model and the head
clf_batch_size: int = 32  # labelled texts per step
clf_max_tokens: int = 48  # tokens per labelled text (longer ones are cut; counted)
eval_split: str = "test"  # labelled split the downstream score is read on: dev (pilot) or test
method_options: dict = {"dsir": {"min_length": 10}}  # options of single methods
torch_threads: int = 1  # torch CPU threads, 0 for torch's default

# %%
import json

import pandas as pd
import torch
from IPython.display import display

from gotd import testbed
from gotd.evaluate import ClassifierRecipe
from gotd.paths import resolve_path
from gotd.runner.rundir import RunDir, declared_parameters

NOTEBOOK = "05b_testbed_warmup"
if torch_threads:
    torch.set_num_threads(torch_threads)
run = RunDir(run_dir, NOTEBOOK, declared_parameters(NOTEBOOK, globals(), leave_out=("smoke", "torch_threads")))
classifier = ClassifierRecipe(epochs=clf_epochs, lr=clf_lr, batch_size=clf_batch_size, max_tokens=clf_max_tokens)
meta = json.loads((resolve_path(prepared_dir) / "prepared.json").read_text())
labels = n_labels if meta["scenario"] == "task" else 0

# %%
res = testbed.warm_up(resolve_path(prepared_dir), run.path, methods=methods, budgets=[int(b) for b in budgets],
                      seed=seed, n_target=n_target, warmup_epochs=warmup_epochs, n_labels=labels,
                      classifier=classifier, eval_split=eval_split, method_options=method_options)
if res.skipped:
    print("not run (reported in the comparison):", res.skipped)

# %% [markdown]
# ## Exposure: every warm-up's tokens, blocks and steps (equal by construction), and OT(mixture, target)

# %%
display(res.exposure)

# %% [markdown]
# ## This seed's NLLs (nats/token, token-weighted) and downstream accuracy

# %%
nll = res.nll.groupby(["split", "method", "budget"]).apply(
    lambda g: float(g["nll_sum"].sum() / g["n_tokens"].sum())).rename("nll")
display(nll.unstack("budget").round(4))
acc = (res.downstream.groupby(["method", "budget"])[["correct", "true_label_nll"]].mean()
       if not res.downstream.empty else pd.DataFrame())
display(acc)

# %% [markdown]
# ## Results
#
# `results.csv`: NLL per split, accuracy and true-label cross-entropy, per method and budget;
# `nll.parquet`, `downstream.parquet` and `makeup.parquet` hold the per-text scores and the domains of
# every selection, `exposure.csv` the tokens and steps, `picks.json` each method's top picks.

# %%
for (split, method, budget), value in nll.items():
    run.add_result(task=meta["scenario"], method=method, budget=int(budget), seed=seed, model="testbed-lm",
                   metric=f"nll_{split}", value=value)
for (method, budget), row in acc.iterrows():
    run.add_result(task=meta["scenario"], method=method, budget=int(budget), seed=seed, model="testbed-lm",
                   metric=f"accuracy_{eval_split}", value=float(row["correct"]))
    run.add_result(task=meta["scenario"], method=method, budget=int(budget), seed=seed, model="testbed-lm",
                   metric=f"true_label_nll_{eval_split}", value=float(row["true_label_nll"]))
run.write_results()
