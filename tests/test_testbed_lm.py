"""The testbed's tiny LM: tokenizer, packing, per-text NLL against a direct computation, cache and resume."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gotd.errors import GotdInputError
from gotd.testbed import _lm

TEXTS = [f"The {w} sat on the mat number {i} and looked at the {v}." for i, (w, v) in
         enumerate(zip(["cat", "dog", "bird", "fox"] * 30, ["moon", "sun", "sea", "hill", "tree"] * 24))]
SIZE = _lm.LMSize(vocab_size=300, hidden_size=16, layers=1, heads=2, intermediate_size=32, block_size=16)
RECIPE = _lm.TrainRecipe(epochs=1.0, batch_size=4)


def test_pack_blocks_keeps_every_token() -> None:
    blocks = _lm.pack_blocks([[1, 2, 3], [4, 5]], 4)
    assert blocks.tolist() == [[1, 2, 3, 4], [5, 1, 2, 3]]
    with pytest.raises(GotdInputError):
        _lm.pack_blocks([[]], 4)


def test_batch_order_is_seeded_and_covers_epochs() -> None:
    a = _lm.batch_order(10, _lm.TrainRecipe(epochs=2, batch_size=4), 0)
    b = _lm.batch_order(10, _lm.TrainRecipe(epochs=2, batch_size=4), 0)
    assert len(a) == 5 and all((x == y).all() for x, y in zip(a, b))
    first_epoch = np.concatenate(a)[:10]
    assert sorted(first_epoch.tolist()) == list(range(10))


def test_text_nll_matches_a_direct_forward_pass() -> None:
    tok = _lm.train_tokenizer(TEXTS, SIZE.vocab_size)
    model = _lm.new_model(SIZE, len(tok), 0).eval()
    texts = [TEXTS[0], TEXTS[1] + " " + TEXTS[2] + " " + TEXTS[3]]   # the second is longer than one window
    nll, n = _lm.text_nll(model, tok, texts, block_size=SIZE.block_size)
    for i, text in enumerate(texts):
        ids = _lm.encode_texts(tok, [text])[0]
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
    folder = _lm.pretrain(TEXTS, tmp_path, size=SIZE, recipe=_lm.TrainRecipe(epochs=3.0, batch_size=4), seed=0,
                          progress=False)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["pool_sha256"] == _lm.texts_sha256(TEXTS) and manifest["seed"] == 0
    assert {"torch", "transformers", "tokenizers"} <= set(manifest["versions"])
    assert manifest["training"]["final_loss"] < manifest["training"]["first_loss"]
    mtime = (folder / "manifest.json").stat().st_mtime
    again = _lm.pretrain(TEXTS, tmp_path, size=SIZE, recipe=_lm.TrainRecipe(epochs=3.0, batch_size=4), seed=0,
                         progress=False)
    assert again == folder and (folder / "manifest.json").stat().st_mtime == mtime
    other = _lm.pretrain(TEXTS[:-1], tmp_path, size=SIZE, recipe=RECIPE, seed=0, progress=False)
    assert other != folder
    model, tok, _ = _lm.load_lm(folder)
    assert model.config.hidden_size == SIZE.hidden_size and tok.bos_token == _lm.BOS


def test_training_resumes_from_a_checkpoint_to_the_same_weights(tmp_path) -> None:
    tok = _lm.train_tokenizer(TEXTS, SIZE.vocab_size)
    blocks = _lm.pack_blocks(_lm.encode_texts(tok, TEXTS), SIZE.block_size)
    recipe = _lm.TrainRecipe(epochs=1.0, batch_size=4)
    full = _lm.new_model(SIZE, len(tok), 0)
    _lm.train_steps(full, blocks, recipe, 0, progress=False)
    # interrupted run: train with checkpoints, keep the one written half way, then resume from it
    ckpt = tmp_path / "ckpt.pt"
    steps = len(_lm.batch_order(len(blocks), recipe, 0))
    half = _lm.new_model(SIZE, len(tok), 0)
    cut = _lm.TrainRecipe(epochs=recipe.epochs, batch_size=recipe.batch_size)
    _lm.train_steps(half, blocks, cut, 0, checkpoint=ckpt, checkpoint_every=steps // 2, progress=False)
    assert ckpt.is_file()
    resumed = _lm.new_model(SIZE, len(tok), 0)
    stats = _lm.train_steps(resumed, blocks, recipe, 0, checkpoint=ckpt, progress=False)
    assert stats["resumed_at"] == steps // 2
    for p, q in zip(full.parameters(), resumed.parameters()):
        assert torch.allclose(p, q, atol=1e-5)
