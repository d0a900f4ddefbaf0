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
# # 05a · Testbed: one shared pool, the targets, and a model pre-trained on the pool to a plateau
#
# GOT-D assumes that the candidate pool stands for the model's pre-training data: a light warm-up then
# moves the model toward a mixture of pre-training data and the selection, and the selection that brings
# that mixture closest to the target should help most. A real model's pre-training data is unknown; this
# testbed pre-trains a tiny Llama (tokenizer and model) from scratch on the pool, so that **the pool is its
# pre-training distribution**, and measures whether pre-training reached a plateau on held-out pool text
# (curve, with unigram and bigram reference perplexities). `05b_testbed_warmup` selects, fills a token
# budget, warms up lightly, scores and fine-tunes; `05c_testbed_compare` checks the gates and compares.
#
# The defaults are the main job's certified instrument (`gotd/configs/demo.yaml`, tuned on the controls in
# `docs/testbed-pilot.md`); its pre-trained LM ships in `data/testbed-lm/`, so with these defaults this
# notebook takes seconds plus the embedding (other sizes or recipes pre-train a new LM into the cache).
#
# Scenarios share one pool (one embedding pass, one pre-training): `task` (Rotten Tomatoes as target: the
# paper's Tables 3-4, few labels after pre-fine-tuning) and `partial` (the target is half Wikipedia, half
# tweets; tweets are 2% of the pool: the paper's Fig. 3 cats-and-dogs case).
#
# **What this shows:** what the pool and target are made of (every subsample is seeded and recorded) and
# whether the tiny LM learnt its pool. **What it does not show:** anything about a large pre-trained
# model; the tiny LM is a stand-in whose pre-training data we know.

# %% tags=["parameters"]
run_dir: str = "reports/interactive/05a_testbed_prepare"  # folder for results.csv, figures/ and the stage's files
smoke: bool = False  # toy corpus, tiny sizes and a tiny model: seconds, for tests
scenario: str = "task"  # task (a built-in task vs the shared pool) or partial (a rare target domain)
task: str = "rotten-tomatoes"  # the built-in task of the task scenario
data_dir: str = "data"  # where built-in data sets are fetched to
cache_dir: str = "data/cache"  # embeddings and pre-trained testbed models are cached here
shipped_lm_dir: str = "data/testbed-lm"  # pre-trained testbed LMs shipped with the project, searched first
n_pool: int = 3000  # pool chunks drawn from the built-in pool (seeded; recorded; shared by both scenarios)
n_target: int = 1000  # target reservoir: each seed draws its target sample from these texts
n_test: int = 600  # held-out target texts of the partial scenario (also sizes the shared pool's draw)
n_heldout: int = 300  # held-out pool texts (pre-training curve, and what warming up costs)
n_dev: int = 1200  # dev texts of the task (the pilot's evaluation split)
n_task_test: int = 1200  # test texts of the task (accuracy and target NLL); 0: n_test (n_test also sizes the pool's draw)
chunk_chars: int = 400  # pool documents are cut into chunks of at most this many characters
encoder: str = "minilm"  # sentence encoder for the embedding selectors
geometry: str = "cosine"  # embedding geometry of every embedding method: cosine (unit vectors) or euclidean
embedding: str = "encoder"  # embedding space: encoder (the sentence encoder) or lm (the tiny LM's hidden states)
max_length: int = 128  # encoder token limit (chunks of 400 characters fit)
vocab_size: int = 1024  # BPE vocabulary of the testbed LM, trained on the pool
hidden_size: int = 64  # width of the tiny Llama
layers: int = 1  # decoder layers
block_size: int = 128  # training and scoring window in tokens
pretrain_epochs: float = 24.0  # passes over the pool in pre-training
pretrain_lr: float = 0.02  # peak learning rate of pre-training (cosine down to pretrain_final_ratio of it)
pretrain_final_ratio: float = 0.01  # final learning rate of pre-training / its peak (also the warm-ups' rate)
pretrain_hold: float = 0.2  # share of the pre-training steps, at the end, held at the final learning rate
pretrain_batch_size: int = 16  # blocks per pre-training step (also the warm-up's)
evaluate_every: int = 100  # pre-training steps between held-out pool NLL measurements (the plateau curve)
seed: int = 0  # seed of the subsample, the tokenizer data order and the initialisation
torch_threads: int = 0  # torch CPU threads, 0 for torch's default

# %%
import json

import pandas as pd
import torch
from IPython.display import Image, display

from gotd import testbed
from gotd.models import TinyLlamaSize
from gotd.train import LoopRecipe
from gotd.paths import resolve_path
from gotd.runner.rundir import RunDir, declared_parameters

NOTEBOOK = "05a_testbed_prepare"
if torch_threads:
    torch.set_num_threads(torch_threads)
run = RunDir(run_dir, NOTEBOOK, declared_parameters(NOTEBOOK, globals(),
                                                   leave_out=("data_dir", "cache_dir", "shipped_lm_dir",
                                                              "torch_threads")))
size = TinyLlamaSize(vocab_size=vocab_size, hidden_size=hidden_size, layers=layers, heads=max(1, hidden_size // 32),
                     intermediate_size=int(hidden_size * 2.75) // 8 * 8, block_size=block_size)
recipe = LoopRecipe(epochs=pretrain_epochs, lr=pretrain_lr, batch_size=pretrain_batch_size,
                    final_lr_ratio=pretrain_final_ratio, hold_fraction=pretrain_hold)
sizes = {"n_pool": n_pool, "n_target": n_target, "n_test": n_test, "n_heldout": n_heldout, "chunk_chars": chunk_chars}
if scenario == "task":
    sizes.update(n_dev=n_dev, task=task, n_task_test=n_task_test or n_test)
if smoke:
    sizes, size, recipe = testbed.smoke_settings(scenario)
    evaluate_every = 5
    print("smoke: toy corpus, tiny sizes and model", sizes, size)

# %% [markdown]
# ## 1. Build the scenario, embed, pre-train with a held-out learning curve
#
# A finished pre-training with the same pool, held-out texts, sizes, recipe, seed and library versions is
# reused from the cache (the second scenario reuses the first's: they share the pool); an interrupted one
# resumes from its checkpoint.

# %%
record = testbed.prepare(scenario, run.path, data_dir=str(resolve_path(data_dir)),
                         cache_dir=str(resolve_path(cache_dir)), sizes=sizes,
                         lm=testbed.TestbedLM(size, recipe, evaluate_every, str(resolve_path(shipped_lm_dir))),
                         encoder=encoder, max_length=max_length, geometry=geometry, embedding=embedding, seed=seed,
                         smoke=smoke)
report = record["report"]
print(json.dumps({k: v for k, v in report.items() if "make_up" not in k}, indent=1))

# %% [markdown]
# ## 2. What the pool and the target are made of

# %%
makeups = {k: pd.Series(v) for k, v in report.items() if k.endswith("make_up")}
display(pd.DataFrame(makeups).fillna(0).astype(int))

# %% [markdown]
# ## 3. Did the LM learn its pool?
#
# Held-out pool perplexity during pre-training against tokens seen, with the unigram and bigram reference
# perplexities of the same held-out tokens. The plateau gate (`05c`) reads this curve.

# %%
man = record["lm_manifest"]
print(f"LM: {record['lm_source']} ({record['lm_folder']}), trained with {man.get('versions')}")
curve = pd.DataFrame(man["training"].get("curve") or [])
print(f"{man['parameters']:,} parameters, {man['pool_tokens']:,} pool tokens, {man['training']['steps']} steps "
      f"({man['pool_tokens'] * pretrain_epochs / max(1, man['parameters']):.1f} tokens per parameter), "
      f"training loss {man['training']['first_loss']:.2f} -> {man['training']['final_loss']:.2f}")
print("references:", man.get("references"))
(run.path / "figures").mkdir(exist_ok=True)
testbed.curve_figure([record]).savefig(run.path / "figures" / "pretraining_curve.png", dpi=100)
display(Image(filename=str(run.path / "figures" / "pretraining_curve.png")))
display(curve)
timings = json.loads((run.path / "timings.json").read_text())
display(pd.DataFrame(timings["steps"]).T)

# %% [markdown]
# ## Results
#
# `results.csv`: the final held-out pool perplexity, the n-gram references, and the CPU and wall seconds of
# every step of this stage.

# %%
if not curve.empty:
    run.add_result(task=scenario, method="base", budget=None, seed=seed, model="testbed-lm",
                   metric="heldout_pool_perplexity", value=float(torch.tensor(curve["heldout_nll"].iloc[-1]).exp()))
for name, value in (man.get("references") or {}).items():
    if name.endswith("_ppl"):
        run.add_result(task=scenario, method=name.replace("_ppl", ""), budget=None, seed=seed, model="n-gram",
                       metric="heldout_pool_perplexity", value=float(value))
run.add_result(task=scenario, method="base", budget=None, seed=seed, model="testbed-lm", metric="pretrain_final_loss",
               value=man["training"]["final_loss"])
for step, t in timings["steps"].items():
    for k in ("wall_s", "cpu_s"):
        run.add_result(task=scenario, method="-", budget=None, seed=seed, model="-", metric=f"time_{step}_{k}",
                       value=t[k])
run.write_results()
