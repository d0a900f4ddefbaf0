# %% [markdown]
# # 05c · Testbed: does GOT-D's selection help more than the baselines?
#
# Paired statistics over the same test texts and seeds. For each method and budget: its mean over seeds
# and, against GOT-D and against the un-warmed model, the mean paired difference with a 95% interval
# from a two-level bootstrap (seeds and test texts resampled with replacement, one draw of texts shared by
# every seed and both methods; a t-interval over seeds is in the table too). The verdict sentences are
# written from those numbers. `gotd run` puts them, the figure and the tables on the report's first screen.
#
# **What this shows:** whether, in a setting where GOT-D's premise holds by construction, its selection
# lowers target perplexity more than each baseline, at which budgets, and at what cost on pool text.
# **What it does not show:** that the same holds for a large pre-trained model whose pre-training data is
# unknown, for long training, or for other encoders, recipes or pools; a tiny model trained for minutes is
# a stand-in.

# %% tags=["parameters"]
run_dir: str = "reports/interactive/05c_testbed_compare"  # folder for the verdict, tables and the figure
smoke: bool = False  # recorded only
prepared_dirs: dict = {"task": "reports/interactive/05a_testbed_prepare"}  # run folders of 05a (nested mappings allowed)
warmup_dirs: dict = {"task": {"0": "reports/interactive/05b_testbed_warmup"}}  # run folders of 05b (nested mappings allowed)
n_boot: int = 2000  # bootstrap replicates
seed: int = 0  # seed of the bootstrap
torch_threads: int = 0  # torch CPU threads, 0 for torch's default (accepted so one --set serves every stage)

# %%
import pandas as pd
from IPython.display import Image, display

from gotd import testbed
from gotd.paths import resolve_path
from gotd.runner.rundir import RunDir

NOTEBOOK = "05c_testbed_compare"
run = RunDir(run_dir, NOTEBOOK, {"prepared_dirs": prepared_dirs, "warmup_dirs": warmup_dirs, "n_boot": n_boot,
                                 "seed": seed})
verdict = testbed.compare([resolve_path(d) for d in testbed.flatten_dirs(prepared_dirs)],
                          [resolve_path(d) for d in testbed.flatten_dirs(warmup_dirs)],
                          run.path, n_boot=n_boot, seed=seed)
for sentence in verdict["sentences"]:
    print(sentence, end="\n\n")
if verdict["skipped_methods"]:
    print("not run:", verdict["skipped_methods"])

# %%
display(Image(filename=str(run.path / "figures" / "headline.png")))

# %% [markdown]
# ## Paired differences on the target's held-out texts
#
# `diff` = value(method) − value(vs); for perplexity a positive difference to GOT-D means GOT-D is lower
# (better), a negative difference to `base` means warming up helped.

# %%
paired = pd.read_csv(run.path / "paired.csv")
display(paired[paired["split"] == "test"].round(3))

# %% [markdown]
# ## What warming up costs: perplexity on held-out pool text

# %%
display(paired[(paired["split"] == "pool_heldout") & (paired["vs"] == "base")].round(3))

# %% [markdown]
# ## Selection make-up (share of each domain, mean over seeds)

# %%
display(pd.read_csv(run.path / "makeup.csv", index_col=[0, 1, 2]))

# %% [markdown]
# ## Results
#
# `results.csv`: every method's mean over seeds per scenario, split, metric and budget (the tables above in
# tidy form).

# %%
levels = pd.read_csv(run.path / "levels.csv")
for r in levels.itertuples():
    run.add_result(task=r.scenario, method=r.method, budget=int(r.budget), seed=None, model="testbed-lm",
                   metric=f"{r.metric}_{r.split}", value=float(r.mean), ci_low=r.ci_low, ci_high=r.ci_high, n_seeds=r.n_seeds)
run.write_results()
