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
# # 06 · Real LM: paired differences between methods over the same texts and seeds
#
# The testbed's statistics (`05c_testbed_compare`) on the real-LM run (`gotd run demo-smollm2`). Each
# seed's `03_evaluate` folder holds the per-text scores of the base model and of every warmed-up model on
# one shared sample of the task's test texts: summed NLL and tokens of each perplexity text, 0/1
# correctness of each zero-shot example. For each method: its mean over seeds and, against GOT-D and
# against the base model, the mean paired difference with a 95% interval from the two-level bootstrap
# (seeds and texts resampled with replacement, one draw of texts shared by every seed and both models; a
# t-interval over seeds is in the table too). `gotd run` puts the sentences, the figure and the tables on the
# report's first screen.
#
# **What this shows:** whether GOT-D's selection moved SmolLM2 on this task more than each baseline's did,
# under one short warm-up recipe, beyond what the finite test sample and the seeds allow. **What it does
# not show:** a ranking of selection methods in general: the pool is small and unlike the paper's, the
# warm-up is a few steps, and the model is an instruction-tuned stand-in for the paper's base models.

# %% tags=["parameters"]
run_dir: str = "reports/interactive/06_compare_real"  # folder for the verdict, tables and the figure
smoke: bool = False  # recorded only
evaluate_dirs: dict = {"0": "reports/interactive/03_evaluate"}  # run folders of 03_evaluate, one per seed (nested mappings allowed)
n_boot: int = 2000  # bootstrap replicates
seed: int = 0  # seed of the bootstrap

# %%
import pandas as pd
from IPython.display import Image, display

from gotd.paths import flatten_dirs, resolve_path
from gotd.runner.rundir import RunDir, declared_parameters
from gotd.stages import compare_evaluations

NOTEBOOK = "06_compare_real"
run = RunDir(run_dir, NOTEBOOK, declared_parameters(NOTEBOOK, globals()))
verdict = compare_evaluations([resolve_path(d) for d in flatten_dirs(evaluate_dirs)], run.path,
                               n_boot=n_boot, seed=seed)
for sentence in verdict["sentences"] + verdict["secondary_sentences"]:
    print(sentence, end="\n\n")

# %%
display(Image(filename=str(run.path / "figures" / "headline.png")))

# %% [markdown]
# ## Paired differences
#
# `diff` = value(method) − value(vs) on the same texts and seeds; for perplexity a positive difference to
# GOT-D means GOT-D is lower (better), a negative difference to `base` means warming up helped; for
# zero-shot accuracy a negative difference to GOT-D means GOT-D is more accurate.

# %%
paired = pd.read_csv(run.path / "paired.csv")
display(paired.round(4))

# %% [markdown]
# ## Results
#
# `results.csv`: every model's mean over seeds per task and metric, with its two-level bootstrap interval.

# %%
levels = pd.read_csv(run.path / "levels.csv")
for r in levels.itertuples():
    run.add_result(task=r.scenario, method=r.method, budget=int(r.budget), seed=None, model="",
                   metric=r.metric, value=float(r.mean), ci_low=r.ci_low, ci_high=r.ci_high, n_seeds=r.n_seeds)
run.write_results()
