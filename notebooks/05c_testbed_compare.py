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
# # 05c · Testbed: is the instrument certified, and does GOT-D's selection help more than the baselines?
#
# First the gates, from the run's own numbers: pre-training reached a plateau and beat the bigram
# reference; the null control (random pool chunks) moves neither target nor pool NLL beyond its interval;
# the positive control (the target's own texts) lowers target NLL; after fine-tuning on labels the
# pre-trained model beats a randomly initialised one. A scenario with a failed gate ranks nothing.
# Then the primary comparisons named in the config before the run, each a paired difference over the same
# texts and seeds with the wider of the two-level bootstrap and the t-interval over seeds, called with
# Holm-adjusted p-values. The verdict sentences are written from those numbers; `gotd run` puts them, the
# gates and the figure on the report's first screen.
#
# **What this shows:** whether, in a setting where the pool is the model's pre-training distribution and
# the controls behave, GOT-D's selection helps more than each baseline under an equal token budget.
# **What it does not show:** that the same holds for a large pre-trained model whose pre-training data is
# unknown, for long training, or for other encoders, recipes or pools; a tiny model trained for minutes is
# a stand-in. Detoxification, zero-shot evaluation and large models are out of scope at this size.

# %% tags=["parameters"]
run_dir: str = "reports/interactive/05c_testbed_compare"  # folder for the verdict, tables and the figure
smoke: bool = False  # recorded only
prepared_dirs: dict = {"task": "reports/interactive/05a_testbed_prepare"}  # run folders of 05a (nested mappings allowed)
warmup_dirs: dict = {"task": {"0": "reports/interactive/05b_testbed_warmup"}}  # run folders of 05b (nested mappings allowed)
primary: list = ["task:accuracy:gotd:random"]  # primary comparisons scenario:metric:method:vs, Holm-corrected
primary_metric: dict = {"task": "accuracy", "partial": "target_nll"}  # the headline metric of each scenario
null_margin: float = 0.01  # the null gate also passes when the interval lies within +- this (nats/token)
plateau_tol: float = 0.02  # the plateau gate: most the held-out pool NLL may fall over the last fifth (nats/token)
n_boot: int = 2000  # bootstrap replicates
seed: int = 0  # seed of the bootstrap
torch_threads: int = 0  # torch CPU threads, 0 for torch's default (accepted so one --set serves every stage)

# %%
import pandas as pd
from IPython.display import Image, display

from gotd import testbed
from gotd.paths import resolve_path
from gotd.runner.rundir import RunDir, declared_parameters

NOTEBOOK = "05c_testbed_compare"
run = RunDir(run_dir, NOTEBOOK, declared_parameters(NOTEBOOK, globals(), leave_out=("smoke", "torch_threads")))
verdict = testbed.compare([resolve_path(d) for d in testbed.flatten_dirs(prepared_dirs)],
                          [resolve_path(d) for d in testbed.flatten_dirs(warmup_dirs)],
                          run.path, primary=primary, primary_metric=primary_metric, null_margin=null_margin,
                          plateau_tol=plateau_tol, n_boot=n_boot, seed=seed)
display(pd.read_csv(run.path / "gates.csv")[["scenario", "gate", "passed", "detail"]])
for sentence in verdict["sentences"]:
    print(sentence, end="\n\n")
if verdict["skipped_methods"]:
    print("not run:", verdict["skipped_methods"])

# %%
display(Image(filename=str(run.path / "figures" / "headline.png")))

# %% [markdown]
# ## Primary comparisons (named before the run; Holm-corrected)

# %%
display(pd.read_csv(run.path / "primary.csv").round(4))

# %% [markdown]
# ## Every paired difference
#
# `diff` = value(method) − value(vs), on the same texts and seeds; NLLs in nats/token (lower is better),
# accuracy as a fraction; `wide_low`/`wide_high` is the interval the verdict uses.

# %%
paired = pd.read_csv(run.path / "paired.csv")
display(paired[paired["vs"] == "base"].round(4))

# %% [markdown]
# ## Pre-training curve, OT(mixture, target) against the outcome, top picks, selection make-up

# %%
for name in ("pretraining_curve", "ot_vs_outcome"):
    path = run.path / "figures" / f"{name}.png"
    if path.is_file():
        display(Image(filename=str(path)))
for sentence in verdict["secondary_sentences"]:
    print(sentence, end="\n\n")
display(pd.read_csv(run.path / "picks.csv"))
display(pd.read_csv(run.path / "makeup.csv", index_col=[0, 1, 2]))

# %% [markdown]
# ## Results
#
# `results.csv`: every method's mean over seeds per scenario, metric and budget (the tables above in tidy
# form).

# %%
levels = pd.read_csv(run.path / "levels.csv")
for r in levels.itertuples():
    run.add_result(task=r.scenario, method=r.method, budget=int(r.budget), seed=None, model="testbed-lm",
                   metric=r.metric, value=float(r.mean), ci_low=r.ci_low, ci_high=r.ci_high, n_seeds=r.n_seeds)
run.write_results()
