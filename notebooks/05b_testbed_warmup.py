# %% [markdown]
# # 05b · Testbed: select, warm up and score, one seed
#
# Every method selects from the same pool for the same target at every budget; the tiny LM pre-trained on
# the pool (`05a_testbed_prepare`) is warmed up on each selection with **one recipe for all** and scored
# per text: perplexity on the target's held-out texts (primary), perplexity on held-out pool text (what
# warming up costs), and, where the target is a labelled task, few-label classification with a linear
# head on the warmed-up LM (regularisation chosen on dev, test scored once). The seed varies the
# selection where the method is random, the warm-up's batch order and the few labels.
#
# **What this shows:** one seed's numbers, kept per text for the paired statistics of
# `05c_testbed_compare`. **What it does not show:** a comparison; one seed is not evidence.

# %% tags=["parameters"]
run_dir: str = "reports/interactive/05b_testbed_warmup"  # folder for results.csv and the per-text scores
smoke: bool = False  # recorded only: the sizes come from the prepare stage
prepared_dir: str = "reports/interactive/05a_testbed_prepare"  # run folder of 05a_testbed_prepare
methods: list = ["gotd", "matching", "knn", "dsir", "tsds", "random"]  # selection methods (absent ones are reported)
budgets: list = [10, 40, 400]  # chunks selected, every method at every budget
seed: int = 0  # seed of the selection (random methods), the warm-up order and the few labels
warmup_epochs: float = 2.0  # passes over the selection
warmup_lr: float = 1e-3  # peak learning rate of the warm-up
warmup_batch_size: int = 8  # blocks per step
per_class: int = 16  # labelled texts per class for the few-label head
torch_threads: int = 0  # torch CPU threads, 0 for torch's default

# %%
import json

import pandas as pd
import torch
from IPython.display import display

from gotd import testbed
from gotd.train import LoopRecipe
from gotd.paths import resolve_path
from gotd.runner.rundir import RunDir

NOTEBOOK = "05b_testbed_warmup"
if torch_threads:
    torch.set_num_threads(torch_threads)
run = RunDir(run_dir, NOTEBOOK, {"prepared_dir": prepared_dir, "methods": methods, "budgets": budgets, "seed": seed,
                                 "warmup_epochs": warmup_epochs, "warmup_lr": warmup_lr,
                                 "warmup_batch_size": warmup_batch_size, "per_class": per_class})
recipe = LoopRecipe(epochs=warmup_epochs, lr=warmup_lr, batch_size=warmup_batch_size)
print(recipe)

# %%
res = testbed.warm_up(resolve_path(prepared_dir), run.path, methods=methods, budgets=[int(b) for b in budgets],
                      seed=seed, recipe=recipe, per_class=per_class)
if res.skipped:
    print("not run (reported in the comparison):", res.skipped)

# %% [markdown]
# ## This seed's perplexities
#
# Token-weighted perplexity (exp of the summed NLL over the summed tokens) per split, method and budget.

# %%
ppl = res.nll.groupby(["split", "method", "budget"]).apply(
    lambda g: float(torch.tensor(g["nll_sum"].sum() / g["n_tokens"].sum()).exp())).rename("perplexity")
display(ppl.unstack("budget").round(2))

# %% [markdown]
# ## Results
#
# `results.csv`: perplexity per split, few-label test accuracy, warm-up steps and final loss, per method and
# budget; `nll.parquet`, `correct.parquet` and `makeup.parquet` hold the per-text scores and the domains
# of every selection.

# %%
meta = json.loads((resolve_path(prepared_dir) / "prepared.json").read_text())
for (split, method, budget), value in ppl.items():
    run.add_result(task=meta["scenario"], method=method, budget=int(budget), seed=seed, model="testbed-lm",
                   metric=f"perplexity_{split}", value=value)
for row in res.rows:
    run.add_result(task=meta["scenario"], method=row["method"], budget=int(row["budget"]), seed=seed,
                   model="testbed-lm", metric=row["metric"], value=float(row["value"]))
run.write_results()
