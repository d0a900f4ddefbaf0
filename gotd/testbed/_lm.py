"""The testbed's language model: a byte-level BPE tokenizer and a tiny Llama trained from scratch on the pool.

The pool is, by construction, the model's pre-training distribution (the premise of GOT-D that a real
pre-trained model never lets us check). Everything is seeded; :func:`pretrain` caches the result under a
key that covers the pool's content hash, the sizes, the recipe, the seed and the library versions, writes a
manifest, and resumes an interrupted run from its last checkpoint.

Training packs texts into one token stream (each text preceded by the ``<bos>`` token) cut into blocks of
``block_size`` tokens; an epoch visits every block once in a seeded order. The loss is the mean next-token
cross-entropy in nats per token.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from gotd._io import package_versions, write_json_atomic
from gotd.errors import GotdInputError

BOS, PAD = "<bos>", "<pad>"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class LMSize:
    """Tokenizer and model sizes (a Llama: RMSNorm, rotary positions, SwiGLU MLP)."""

    vocab_size: int = 2048          # BPE vocabulary trained on the pool (incl. 256 byte tokens)
    hidden_size: int = 128          # model width
    layers: int = 2                 # decoder layers
    heads: int = 4                  # attention heads
    intermediate_size: int = 352    # SwiGLU width
    block_size: int = 128           # training and scoring window in tokens


@dataclass(frozen=True)
class TrainRecipe:
    """One optimisation recipe (AdamW, linear warm-up then cosine decay to ``final_lr_ratio``)."""

    epochs: float = 2.0             # passes over the packed blocks (fractions allowed)
    batch_size: int = 16            # blocks per step
    lr: float = 3e-3                # peak learning rate
    warmup_fraction: float = 0.05   # of the steps
    final_lr_ratio: float = 0.1     # lr at the end / peak
    weight_decay: float = 0.1
    grad_clip: float = 1.0


def texts_sha256(texts: Sequence[str]) -> str:
    """SHA-256 of the texts in order (each UTF-8 encoded, NUL-separated)."""
    digest = hashlib.sha256()
    for t in texts:
        digest.update(t.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> Any:
    """A byte-level BPE tokenizer trained on ``texts`` (deterministic), as a transformers fast tokenizer."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(list(texts), vocab_size=vocab_size, min_frequency=2, special_tokens=[BOS, PAD],
                            show_progress=False)
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token=BOS, pad_token=PAD)


def new_model(size: LMSize, vocab_size: int, seed: int) -> torch.nn.Module:
    """A freshly initialised ``LlamaForCausalLM`` (seeded)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab_size, hidden_size=size.hidden_size, intermediate_size=size.intermediate_size,
                         num_hidden_layers=size.layers, num_attention_heads=size.heads,
                         num_key_value_heads=size.heads, max_position_embeddings=size.block_size,
                         tie_word_embeddings=True, bos_token_id=0, eos_token_id=0, pad_token_id=1)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).float()


def encode_texts(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text with the ``<bos>`` id in front."""
    bos = tokenizer.bos_token_id
    return [[bos, *ids] for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def pack_blocks(sequences: Sequence[Sequence[int]], block_size: int) -> torch.Tensor:
    """Concatenate the sequences and cut the stream into ``(n_blocks, block_size)`` (the tail is kept, padded
    to a full block with the first tokens of the stream so that no text is dropped)."""
    stream = [t for s in sequences for t in s]
    if not stream:
        raise GotdInputError("no tokens to train on: the texts are empty")
    n_blocks = math.ceil(len(stream) / block_size)
    pad = n_blocks * block_size - len(stream)
    stream = stream + (stream * (pad // len(stream) + 1))[:pad]
    return torch.tensor(stream, dtype=torch.long).view(n_blocks, block_size)


def _lr_at(step: int, total: int, recipe: TrainRecipe) -> float:
    warm = max(1, int(round(recipe.warmup_fraction * total)))
    if step < warm:
        return recipe.lr * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    floor = recipe.final_lr_ratio
    return recipe.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def batch_order(n_blocks: int, recipe: TrainRecipe, seed: int) -> list[np.ndarray]:
    """The block indices of every step: seeded permutations per epoch, cut into batches."""
    rng = np.random.default_rng(seed)
    total = max(1, math.ceil(recipe.epochs * n_blocks / recipe.batch_size))
    order = np.concatenate([rng.permutation(n_blocks) for _ in range(math.ceil(recipe.epochs) + 1)])
    return [order[i * recipe.batch_size:(i + 1) * recipe.batch_size] for i in range(total)]


def train_steps(model: torch.nn.Module, blocks: torch.Tensor, recipe: TrainRecipe, seed: int, *,
                checkpoint: Path | None = None, checkpoint_every: int = 100, progress: bool = True,
                desc: str = "training") -> dict[str, Any]:
    """Train ``model`` in place on ``blocks`` with ``recipe``; return losses and timings.

    With ``checkpoint`` the model, optimizer and step are saved there every ``checkpoint_every`` steps and an
    existing checkpoint is resumed (the step order is a function of the seed, so a resumed run is the same).
    """
    steps = batch_order(len(blocks), recipe, seed)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay,
                            betas=(0.9, 0.95))
    start_step, losses = 0, []
    if checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start_step, losses = state["step"], state["losses"]
    torch.manual_seed(seed + 1)
    model.train()
    t0, c0 = time.perf_counter(), time.process_time()
    bar = tqdm(total=len(steps), initial=start_step, desc=desc, disable=not progress, leave=False)
    for step in range(start_step, len(steps)):
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, len(steps), recipe)
        batch = blocks[torch.as_tensor(steps[step])]
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        opt.step()
        losses.append(float(loss.detach()))
        bar.update(1)
        if checkpoint is not None and (step + 1) % checkpoint_every == 0 and step + 1 < len(steps):
            tmp = checkpoint.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step + 1,
                        "losses": losses}, tmp)
            tmp.replace(checkpoint)
    bar.close()
    model.eval()
    return {"steps": len(steps), "resumed_at": start_step, "final_loss": losses[-1] if losses else float("nan"),
            "first_loss": losses[0] if losses else float("nan"), "wall_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0, "tokens": len(steps) * recipe.batch_size * blocks.shape[1]}


def text_nll(model: torch.nn.Module, tokenizer: Any, texts: Sequence[str], *, block_size: int,
             batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Summed next-token NLL (nats) and number of predicted tokens of every text (nothing truncated).

    Each text gets ``<bos>`` in front and is scored in windows of ``block_size`` tokens that overlap by
    one, so every token after ``<bos>`` is predicted exactly once: :func:`gotd.evaluate.per_text_nll`, the
    windows of :func:`gotd.evaluate.perplexity` (the testbed's vocabulary has no ``<|endoftext|>``, so the
    document-start token there is ``<bos>``).
    """
    from gotd.evaluate import per_text_nll

    frame = per_text_nll(model, tokenizer, texts, max_length=block_size, batch_size=batch_size, progress=False)
    return frame["nll_sum"].to_numpy(), frame["n_tokens"].to_numpy()


def mean_hidden_states(model: torch.nn.Module, tokenizer: Any, texts: Sequence[str], *, block_size: int,
                       batch_size: int = 64) -> np.ndarray:
    """Features for a classification head: the last layer's hidden states averaged over each text's tokens
    (its first ``block_size`` tokens; longer texts are rare in the testbed's tasks and counted by the caller)."""
    seqs = [ids[:block_size] for ids in encode_texts(tokenizer, texts)]
    out = np.zeros((len(seqs), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for lo in range(0, len(seqs), batch_size):
            chunk = seqs[lo:lo + batch_size]
            width = max(map(len, chunk))
            ids = torch.full((len(chunk), width), int(tokenizer.pad_token_id))
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for r, s in enumerate(chunk):
                ids[r, :len(s)], mask[r, :len(s)] = torch.tensor(s), 1
            hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
            pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
            out[lo:lo + len(chunk)] = pooled.float().numpy()
    return out


def pretrain(texts: Sequence[str], cache_dir: str | Path, *, size: LMSize = LMSize(),
             recipe: TrainRecipe = TrainRecipe(), seed: int = 0, progress: bool = True) -> Path:
    """Train (or reuse) the tokenizer and tiny Llama on ``texts``; return the model folder.

    The folder ``<cache_dir>/<key>/`` holds ``model/`` (``save_pretrained``, with the tokenizer) and
    ``manifest.json`` (pool hash and size, sizes, recipe, seed, versions, loss and times). The key is the
    SHA-256 of all of those inputs, so a changed pool or recipe trains a new model. An interrupted run resumes
    from ``partial/checkpoint.pt``.
    """
    if not texts:
        raise GotdInputError("pretrain got no texts; pass the pool's texts")
    pool_hash = texts_sha256(texts)
    versions = {k: v for k, v in package_versions(("torch", "transformers", "tokenizers")).items()}
    inputs = {"pool_sha256": pool_hash, "n_texts": len(texts), "size": asdict(size), "recipe": asdict(recipe),
              "seed": seed, "versions": versions}
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(cache_dir) / key
    if (folder / MANIFEST).is_file() and (folder / "model" / "config.json").is_file():
        return folder
    partial = folder / "partial"
    partial.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.perf_counter(), time.process_time()
    tokenizer = train_tokenizer(texts, size.vocab_size)
    blocks = pack_blocks(encode_texts(tokenizer, texts), size.block_size)
    tok_s = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}
    model = new_model(size, len(tokenizer), seed)
    stats = train_steps(model, blocks, recipe, seed, checkpoint=partial / "checkpoint.pt", progress=progress,
                        desc="pre-training the testbed LM")
    staging = folder / "model.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(folder / "model", ignore_errors=True)
    staging.replace(folder / "model")
    n_params = sum(p.numel() for p in model.parameters())
    write_json_atomic(folder / MANIFEST, {**inputs, "key": key, "parameters": n_params, "blocks": len(blocks),
                                          "pool_tokens": int(blocks.numel()), "tokenizer": tok_s, "training": stats})
    shutil.rmtree(partial, ignore_errors=True)
    return folder


def load_lm(folder: str | Path) -> tuple[torch.nn.Module, Any, dict[str, Any]]:
    """The model, tokenizer and manifest of a :func:`pretrain` folder (model in eval mode, fp32)."""
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise GotdInputError(f"{folder} is not a pre-trained testbed model (no {MANIFEST}); run pretrain first")
    model = AutoModelForCausalLM.from_pretrained(folder / "model", dtype=torch.float32).eval()
    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder / "model")
    return model, tokenizer, json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
