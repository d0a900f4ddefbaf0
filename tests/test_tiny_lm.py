"""A tiny Llama from scratch: the one BPE trainer, wrapped packing, the plain loop (seeded, resumed), the
cached pre-training, and per-text NLL against a direct computation."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gotd.errors import GotdInputError
from gotd.data import texts_fingerprint
from gotd.evaluate import per_text_nll
from gotd.models import TinyLlamaSize, encode_after_bos, new_tiny_llama, train_bpe_tokenizer
from gotd.train import (LoopRecipe, batch_order, full_blocks, load_pretrained, pack_token_blocks, pretrain_from_scratch,
                        train_loop)

SPECIAL = {"bos_token": "<bos>", "pad_token": "<pad>"}

TEXTS = [f"The {w} sat on the mat number {i} and looked at the {v}." for i, (w, v) in
         enumerate(zip(["cat", "dog", "bird", "fox"] * 30, ["moon", "sun", "sea", "hill", "tree"] * 24))]
SIZE = TinyLlamaSize(vocab_size=300, hidden_size=16, layers=1, heads=2, intermediate_size=32, block_size=16)
RECIPE = LoopRecipe(epochs=1.0, batch_size=4)


def test_wrapped_packing_keeps_every_token_in_full_blocks() -> None:
    blocks = full_blocks([[1, 2, 3], [4, 5]], 4)
    assert blocks.tolist() == [[1, 2, 3, 4], [5, 1, 2, 3]]
    short, _ = pack_token_blocks([[1, 2, 3], [4, 5]], 4, separator_id=None)
    assert short == [[1, 2, 3, 4], [5]]                       # the Trainer's tail: shorter, padded later
    with pytest.raises(GotdInputError):
        full_blocks([[]], 4)
    with pytest.raises(GotdInputError, match="tail"):
        pack_token_blocks([[1]], 4, separator_id=None, tail="pad")


def test_batch_order_is_seeded_and_covers_epochs() -> None:
    a = batch_order(10, LoopRecipe(epochs=2, batch_size=4), 0)
    b = batch_order(10, LoopRecipe(epochs=2, batch_size=4), 0)
    assert len(a) == 5 and all((x == y).all() for x, y in zip(a, b))
    first_epoch = np.concatenate(a)[:10]
    assert sorted(first_epoch.tolist()) == list(range(10))


def test_text_nll_matches_a_direct_forward_pass() -> None:
    tok = train_bpe_tokenizer(TEXTS, SIZE.vocab_size, special_tokens=SPECIAL)
    model = new_tiny_llama(SIZE, len(tok), 0).eval()
    texts = [TEXTS[0], TEXTS[1] + " " + TEXTS[2] + " " + TEXTS[3]]   # the second is longer than one window
    frame = per_text_nll(model, tok, texts, max_length=SIZE.block_size, progress=False)
    nll, n = frame["nll_sum"].to_numpy(), frame["n_tokens"].to_numpy()
    for i, text in enumerate(texts):
        ids = encode_after_bos(tok, [text])[0]
        assert n[i] == len(ids) - 1                                   # every token after <bos> once
        total, step = 0.0, SIZE.block_size - 1
        with torch.no_grad():
            for s in range(0, len(ids) - 1, step):
                w = torch.tensor([ids[s:s + SIZE.block_size]])
                if w.shape[1] < 2:
                    continue
                logits = model(input_ids=w).logits[0, :-1]
                total += float(torch.nn.functional.cross_entropy(logits, w[0, 1:], reduction="sum"))
        assert nll[i] == pytest.approx(total, rel=1e-5)


def test_pretrain_is_cached_with_a_manifest_and_lowers_the_loss(tmp_path) -> None:
    folder = pretrain_from_scratch(TEXTS, tmp_path, size=SIZE, recipe=LoopRecipe(epochs=3.0, batch_size=4), seed=0,
                          progress=False)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["pool_sha256"] == texts_fingerprint(TEXTS) and manifest["seed"] == 0
    assert {"torch", "transformers", "tokenizers"} <= set(manifest["versions"])
    assert manifest["training"]["final_loss"] < manifest["training"]["first_loss"]
    mtime = (folder / "manifest.json").stat().st_mtime
    again = pretrain_from_scratch(TEXTS, tmp_path, size=SIZE, recipe=LoopRecipe(epochs=3.0, batch_size=4), seed=0,
                         progress=False)
    assert again == folder and (folder / "manifest.json").stat().st_mtime == mtime
    other = pretrain_from_scratch(TEXTS[:-1], tmp_path, size=SIZE, recipe=RECIPE, seed=0, progress=False)
    assert other != folder
    model, tok, _ = load_pretrained(folder)
    assert model.config.hidden_size == SIZE.hidden_size and tok.bos_token == "<bos>"


def test_training_resumes_from_a_checkpoint_to_the_same_weights(tmp_path) -> None:
    tok = train_bpe_tokenizer(TEXTS, SIZE.vocab_size, special_tokens=SPECIAL)
    blocks = full_blocks(encode_after_bos(tok, TEXTS), SIZE.block_size)
    recipe = LoopRecipe(epochs=1.0, batch_size=4)
    full = new_tiny_llama(SIZE, len(tok), 0)
    train_loop(full, blocks, recipe, 0, progress=False)
    # interrupted run: train with checkpoints, keep the one written half way, then resume from it
    ckpt = tmp_path / "ckpt.pt"
    steps = len(batch_order(len(blocks), recipe, 0))
    half = new_tiny_llama(SIZE, len(tok), 0)
    cut = LoopRecipe(epochs=recipe.epochs, batch_size=recipe.batch_size)
    train_loop(half, blocks, cut, 0, checkpoint=ckpt, checkpoint_every=steps // 2, progress=False)
    assert ckpt.is_file()
    resumed = new_tiny_llama(SIZE, len(tok), 0)
    stats = train_loop(resumed, blocks, recipe, 0, checkpoint=ckpt, progress=False)
    assert stats["resumed_at"] == steps // 2
    for p, q in zip(full.parameters(), resumed.parameters()):
        assert torch.allclose(p, q, atol=1e-5)


def test_a_shipped_model_of_the_same_key_is_used_in_place_and_versions_are_recorded_not_keyed(tmp_path) -> None:
    shipped, cache = tmp_path / "shipped", tmp_path / "cache"
    trained = pretrain_from_scratch(TEXTS, shipped, size=SIZE, recipe=LoopRecipe(epochs=2, batch_size=4), seed=0,
                                    progress=False)
    manifest = json.loads((trained / "manifest.json").read_text())
    manifest["versions"]["torch"] = "0.0-another-build"            # trained under other library versions
    (trained / "manifest.json").write_text(json.dumps(manifest))
    # 2 and 2.0 epochs are one recipe: the key is the same and nothing is trained in the cache
    used = pretrain_from_scratch(TEXTS, cache, size=SIZE, recipe=LoopRecipe(epochs=2.0, batch_size=4), seed=0,
                                 progress=False, shipped=shipped)
    assert used == trained and not cache.exists()
    # another recipe is not in the shipped folder: it is trained into the cache, the shipped folder untouched
    before = sorted(p.name for p in shipped.iterdir())
    other = pretrain_from_scratch(TEXTS, cache, size=SIZE, recipe=LoopRecipe(epochs=1, batch_size=4), seed=0,
                                  progress=False, shipped=shipped)
    assert other.parent == cache and sorted(p.name for p in shipped.iterdir()) == before
