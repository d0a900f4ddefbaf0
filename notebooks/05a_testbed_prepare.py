# %% [markdown]
# # 05a · Testbed: the pool, the target, and a model pre-trained on the pool
#
# GOT-D assumes that the candidate pool stands for the model's pre-training data: light warm-up then moves
# the model toward a mixture of pre-training data and the selection, and the selection that brings that
# mixture closest to the target should help most. A real model's pre-training data is unknown; this
# testbed makes the premise true by construction. This notebook builds one scenario's texts, embeds the
# pool and the target with the encoder, and pre-trains a tiny Llama (tokenizer and model) from scratch
# on the pool, so that **the pool is exactly its pre-training distribution**. `05b_testbed_warmup`
# selects, warms up and scores; `05c_testbed_compare` does the paired statistics.
#
# Scenarios: `task` (a real built-in task's train split as target against the built-in pool) and
# `partial` (the target is half Wikipedia, half tweets; tweets are 2% of the pool: the cats-and-dogs case).
#
# **What this shows:** what the pool and target are made of (every subsample is seeded and recorded) and
# how well the tiny LM fits its pre-training data. **What it does not show:** anything about a large
# pre-trained model; the tiny LM is a stand-in whose pre-training data we know.

# %% tags=["parameters"]
run_dir: str = "reports/interactive/05a_testbed_prepare"  # folder for results.csv, figures/ and the stage's files
smoke: bool = False  # toy corpus, tiny sizes and a tiny model: seconds, for tests
scenario: str = "task"  # task (a built-in task vs the built-in pool) or partial (a rare target domain)
task: str = "rotten-tomatoes"  # the built-in task of the task scenario
data_dir: str = "data"  # where built-in data sets are fetched to
cache_dir: str = "data/cache"  # embeddings and pre-trained testbed models are cached here
n_pool: int = 4000  # pool chunks drawn from the built-in pool (seeded; recorded)
n_target: int = 500  # target texts (selection target)
n_test: int = 300  # held-out target texts for perplexity (and the classification test)
n_heldout: int = 200  # held-out pool texts (what warming up costs)
n_dev: int = 200  # dev texts for the classification head's choices (task scenario)
chunk_chars: int = 400  # pool documents are cut into chunks of at most this many characters
encoder: str = "minilm"  # sentence encoder for the embedding selectors
max_length: int = 128  # encoder token limit (chunks of 400 characters fit)
vocab_size: int = 2048  # BPE vocabulary of the testbed LM, trained on the pool
hidden_size: int = 128  # width of the tiny Llama
layers: int = 2  # decoder layers
block_size: int = 128  # training and scoring window in tokens
pretrain_epochs: float = 2.0  # passes over the pool in pre-training
pretrain_lr: float = 3e-3  # peak learning rate of pre-training
seed: int = 0  # seed of the subsample, the tokenizer data order and the initialisation
torch_threads: int = 0  # torch CPU threads, 0 for torch's default

# %%
import json

import pandas as pd
import torch
from IPython.display import display

from gotd import testbed
from gotd.models import TinyLlamaSize
from gotd.train import LoopRecipe
from gotd.paths import resolve_path
from gotd.runner.rundir import RunDir

NOTEBOOK = "05a_testbed_prepare"
if torch_threads:
    torch.set_num_threads(torch_threads)
params = {k: v for k, v in dict(globals()).items() if k in {
    "smoke", "scenario", "task", "n_pool", "n_target", "n_test", "n_heldout", "n_dev", "chunk_chars", "encoder",
    "max_length", "vocab_size", "hidden_size", "layers", "block_size", "pretrain_epochs", "pretrain_lr", "seed"}}
run = RunDir(run_dir, NOTEBOOK, params)
size = TinyLlamaSize(vocab_size=vocab_size, hidden_size=hidden_size, layers=layers, heads=max(1, hidden_size // 32),
                     intermediate_size=int(hidden_size * 2.75) // 8 * 8, block_size=block_size)
recipe = LoopRecipe(epochs=pretrain_epochs, lr=pretrain_lr)
sizes = {"n_pool": n_pool, "n_target": n_target, "n_test": n_test, "n_heldout": n_heldout, "chunk_chars": chunk_chars}
if scenario == "task":
    sizes.update(n_dev=n_dev, task=task)
if smoke:
    sizes, size, recipe = testbed.smoke_settings(scenario)
    print("smoke: toy corpus, tiny sizes and model", sizes, size)

# %% [markdown]
# ## 1. Build the scenario, embed, pre-train, score the un-warmed model
#
# A finished pre-training with the same pool, sizes, recipe, seed and library versions is reused from the
# cache; an interrupted one resumes from its checkpoint.

# %%
record = testbed.prepare(scenario, run.path, data_dir=str(resolve_path(data_dir)),
                         cache_dir=str(resolve_path(cache_dir)), sizes=sizes, lm_size=size, recipe=recipe,
                         encoder=encoder, max_length=max_length, seed=seed, smoke=smoke)
report = record["report"]
print(json.dumps({k: v for k, v in report.items() if "make_up" not in k}, indent=1))

# %% [markdown]
# ## 2. What the pool and the target are made of

# %%
makeups = {k: pd.Series(v) for k, v in report.items() if k.endswith("make_up")}
display(pd.DataFrame(makeups).fillna(0).astype(int))

# %% [markdown]
# ## 3. The pre-trained model
#
# Loss in nats per token on the pool (first and last training step) and the un-warmed model's perplexity
# on the target's held-out texts and on held-out pool text.

# %%
man = record["lm_manifest"]
base = pd.read_parquet(run.path / "nll_base.parquet")
ppl = base.groupby("split").apply(lambda g: float(torch.tensor(g["nll_sum"].sum() / g["n_tokens"].sum()).exp()))
print(f"{man['parameters']:,} parameters, {man['pool_tokens']:,} pool tokens, {man['training']['steps']} steps, "
      f"loss {man['training']['first_loss']:.2f} -> {man['training']['final_loss']:.2f}")
display(ppl.rename("perplexity").to_frame())
timings = json.loads((run.path / "timings.json").read_text())
display(pd.DataFrame(timings["steps"]).T)

# %% [markdown]
# ## Results
#
# `results.csv`: the un-warmed model's perplexity per split, the pre-training's final loss, and the CPU and
# wall seconds of every step of this stage.

# %%
for split, value in ppl.items():
    run.add_result(task=scenario, method="base", budget=None, seed=seed, model="testbed-lm", metric=f"perplexity_{split}",
                   value=value)
run.add_result(task=scenario, method="base", budget=None, seed=seed, model="testbed-lm", metric="pretrain_final_loss",
               value=man["training"]["final_loss"])
for step, t in timings["steps"].items():
    for k in ("wall_s", "cpu_s"):
        run.add_result(task=scenario, method="-", budget=None, seed=seed, model="-", metric=f"time_{step}_{k}",
                       value=t[k])
run.write_results()
