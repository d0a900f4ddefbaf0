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
# # 03 · Evaluate the base model and every warmed-up model
#
# The base causal LM and each model `02_prefinetune` warmed up on one method's selection are measured the
# same way on the same examples:
#
# - **zero-shot** classification on the task's `eval_split`: each label's verbalised prompt
#   (`Review: <text>\nSentiment: positive|negative` for Rotten Tomatoes) is scored by the LM's mean loss
#   per token (OpenICL's perplexity inference, as the paper) and the lowest wins; accuracy and macro-F1
#   with 95% bootstrap intervals over examples;
# - **perplexity** on the held-out `ppl_split` texts of the task (nats per token, token-weighted);
# - optionally **few-label fine-tuning** of a classification head (epoch and learning rate chosen on
#   `dev`, `test` reported once, several seeds) and **toxicity** of sampled continuations.
#
# Zero-shot and perplexity make no choice on the data, so there is nothing to tune on `dev`; the test
# split is read once per model.
#
# **What this shows:** how each warm-up moved the model on the task, next to the base model, with the
# uncertainty from the number of examples. **What it does not show:** a ranking of selection methods in
# general. One run per method is one training seed; differences inside the intervals, or smaller than the
# spread over seeds (`gotd run ... --set grid.seed=[0,1,2]`), are not evidence. The default model is
# SmolLM2-135M-Instruct dequantised from Q4_1 (an instruction-tuned stand-in, not the paper's base
# models), the offline pool is small and unlike the paper's, and the demo's warm-up is a few CPU steps.

# %% tags=["parameters"]
run_dir: str = "reports/interactive/03_evaluate"  # folder for results.csv and figures/
smoke: bool = False  # tiny random causal LM and the templated toy task: seconds, for tests
target: str = "rotten-tomatoes"  # built-in task with labels and train/dev/test splits
data_dir: str = "data"  # where built-in data sets are fetched to
model_dirs: dict = {}  # method -> checkpoint folder of 02_prefinetune (its run folder's models/ is accepted)
base_model: str = "smollm2-135m"  # the model before warm-up (registry name or folder); "" to leave it out
budget: int = 0  # budget of the selections the models were trained on (recorded with the results)
seed: int = 0  # seed of the example sample, the bootstrap, sampling and fine-tuning
sample_seed: int = -1  # seed of the example sample alone; -1 for seed (one value over seeds pairs their texts)
evaluations: list = ["zero-shot", "perplexity"]  # any of zero-shot, perplexity, finetune, toxicity
eval_split: str = "test"  # split scored zero-shot
scoring: str = "prompt"  # zero-shot: mean loss over the whole prompt (OpenICL, the paper) or "label" (label loss)
ppl_split: str = "test"  # held-out split whose texts perplexity is measured on
max_examples: int = 0  # zero-shot examples, a seeded sample of eval_split; 0 for all
max_ppl_texts: int = 0  # perplexity texts, a seeded sample of ppl_split; 0 for all
batch_size: int = 8  # prompts per forward pass
ppl_max_length: int = 256  # perplexity window in tokens
n_bootstrap: int = 1000  # bootstrap resamples for the intervals
finetune_max_labels: int = 1000  # few-label fine-tuning: cap on training labels per seed (paper: 5000)
finetune_seeds: list = [0, 1, 2]  # few-label fine-tuning: one run per seed
finetune_epochs: int = 3  # few-label fine-tuning: epochs (the best on dev is kept)
finetune_learning_rates: list = [2e-5]  # few-label fine-tuning: learning rates tried, chosen on dev
toxicity_prompts: str = ""  # file of prompts to continue (text column); smoke uses toy review openings
toxicity_generations: int = 25  # continuations per prompt (nucleus sampling p 0.9, 20 new tokens)
max_prompts: int = 0  # toxicity prompts, a seeded sample; 0 for all
device: str = ""  # cpu or cuda, empty for the GPU when there is one

# %%
import pandas as pd
from IPython.display import display

from gotd.evaluate import EvalConfig, evaluate_models
from gotd.stages import evaluate as evaluation
from gotd.stages.prefinetune import SMOKE_MODEL
from gotd.runner.rundir import RunDir, declared_parameters

NOTEBOOK = "03_evaluate"
run = RunDir(run_dir, NOTEBOOK, declared_parameters(NOTEBOOK, globals()), device=device or None)
base = SMOKE_MODEL if (smoke and base_model) else base_model
models = evaluation.models_to_evaluate(base, model_dirs)
needs_task = bool(set(evaluations) - {"toxicity"})
draw = seed if sample_seed < 0 else sample_seed  # seed of the examples (and of the toy task in smoke mode)
task = evaluation.evaluation_task(target, smoke=smoke, data_dir=data_dir, seed=draw) if needs_task else None
model_label = base or "-"
display(pd.Series({m: str(p) for m, p in models.items()}, name="model").to_frame())
if task is not None:
    display(pd.DataFrame({s: {"rows": len(f), **f["label"].value_counts().to_dict()} for s, f in task.splits.items()}))

# %% [markdown]
# ## 1. Measure every model
#
# The same seeded sample of examples for every model (`max_examples`, `max_ppl_texts`; the `n` and
# `n_total` columns say how many of how many). Progress bars per model and evaluation. This is the suite
# `gotd evaluate` runs too (`gotd.evaluate.evaluate_models`): the same metric names
# (`zero_shot_accuracy`, `perplexity`, `finetune_accuracy_seed_mean`, ...) in the same columns, so a
# `gotd evaluate` file joins this run's `results.csv` on task, method, model, seed and metric.
#
# The per-text scores behind the rows go into the run folder too: `per_text_nll.parquet` (summed NLL and
# scored tokens of every perplexity text, per model) and `per_text_zero_shot.parquet` (0/1 correctness of
# every zero-shot example, per model), each text with its position in the sample and a content hash.
# Runs at several seeds that share `sample_seed` score the same texts, so `06_compare_real` can pair them.

# %%
toxicity = None
if "toxicity" in evaluations:
    prompts = evaluation.toxicity_prompts(toxicity_prompts, smoke=smoke, task=task, max_prompts=max_prompts, seed=seed)
    toxicity = {"prompts": prompts, "scorer": "profanity-check", "n_generations": toxicity_generations}
finetune = {"max_train_labels": finetune_max_labels, "seeds": finetune_seeds, "epochs": finetune_epochs,
            "learning_rates": finetune_learning_rates}
config = EvalConfig(evaluations=evaluations, eval_split=eval_split, ppl_split=ppl_split, max_examples=max_examples,
                    max_ppl_texts=max_ppl_texts, seed=seed, sample_seed=draw, batch_size=batch_size,
                    ppl_max_length=ppl_max_length, scoring=scoring, n_bootstrap=n_bootstrap, finetune=finetune,
                    toxicity=toxicity)
table = evaluate_models(models, task, config, model_label=model_label, budget=budget, notebook=NOTEBOOK,
                        device=device or None, per_text_dir=run.path)
evaluation.add_evaluation_results(run, table, budget=budget, model_label=model_label)
print(run.write_results())

# %% [markdown]
# ## 2. Results table
#
# One row per metric, one column per model: the value and its 95% bootstrap interval over examples
# (few-label fine-tuning: the test value of each seed and, with `seed_aggregate`, the mean over seeds).
# Zero-shot rows also carry the majority-class rate, the accuracy of always answering the most frequent
# label: an accuracy near it means the prompt scores carry little signal.

# %%
evaluation.results_table(table)

# %% [markdown]
# ## 3. Figure
#
# Each model's value with its 95% interval over examples (one training seed per method): overlapping
# intervals mean the examples cannot tell those models apart.

# %%
single = table[table["evaluation"] != "finetune"]
shown = [m for m in ("zero_shot_accuracy", "zero_shot_macro_f1", "perplexity", "expected_max_toxicity", "toxicity_probability")
         if m in set(single["metric"])]
fig = evaluation.interval_figure(single, shown, title=f"{single['task'].iloc[0]}: base vs warmed-up "
                                  f"({model_label}, budget {budget})") if shown else None
if fig is not None:
    run.save_figure(fig, "metrics")
fig
