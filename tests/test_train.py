"""Pre-fine-tuning (gotd.train) on the tiny random Llama: loss goes down, records, resume, atomic output."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gotd._io import file_sha256
from gotd.errors import GotdInputError
from gotd.models import build_tiny_causal_lm
from gotd.selection import Selection, save_selection
from gotd.train import (
    PRESETS,
    RECORD_NAME,
    TrainConfig,
    load_training_texts,
    pack_token_blocks,
    preset,
    read_train_record,
    train,
)


REPETITIVE = ["the cat sat on the mat and the dog sat on the log. " * 6 for _ in range(12)]
FAST = TrainConfig(max_steps=6, epochs=3, learning_rate=3e-3, batch_size=4, max_length=32, save_steps=3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_causal_lm(tmp_path_factory.mktemp("models") / "tiny")


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def test_pack_token_blocks_drops_nothing() -> None:
    ids = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10], [11]]
    blocks, stats = pack_token_blocks(ids, 4, separator_id=0)
    stream = [1, 2, 3, 0, 4, 5, 6, 7, 8, 9, 10, 0, 11, 0]
    assert [t for b in blocks for t in b] == stream
    assert [len(b) for b in blocks] == [4, 4, 4, 2]
    assert stats == {"n_tokens": 14, "n_blocks": 4, "n_texts_split": 1, "last_block_tokens": 2}
    # without packing every text starts a block; the long one continues in the next block
    blocks, stats = pack_token_blocks(ids, 4, separator_id=0, packing=False)
    assert blocks == [[1, 2, 3, 0], [4, 5, 6, 7], [8, 9, 10, 0], [11, 0]]
    assert stats["n_texts_split"] == 1 and stats["n_tokens"] == 14


def test_document_tokens_prefer_the_pretraining_separator(tiny: Path) -> None:
    from transformers import AutoTokenizer

    from gotd.train import document_prefix_ids, document_separator_id

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    endoftext = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert document_separator_id(tokenizer) == endoftext
    assert document_prefix_ids(tokenizer) == [endoftext]  # not the bos <|startoftext|>


def test_presets_follow_the_paper() -> None:
    detox = PRESETS["detox"]
    assert (detox.epochs, detox.learning_rate, detox.adam_beta1, detox.adam_beta2, detox.weight_decay) == \
        (3.0, 2e-5, 0.9, 0.95, 0.1)
    zero = PRESETS["zero-shot"]
    assert (zero.epochs, zero.learning_rate) == (1.0, 1e-5)
    assert PRESETS["short"].max_steps is not None
    with pytest.raises(GotdInputError, match="'demo' is now called 'short'"):
        preset("demo")
    assert preset("detox", seed=3).seed == 3
    with pytest.raises(GotdInputError, match="unknown training preset"):
        preset("fast")
    with pytest.raises(GotdInputError, match="no field"):
        preset("short", lr=1.0)


@pytest.mark.parametrize("changes, message", [
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"batch_size": 0}, "batch_size"),
    ({"max_length": 1}, "max_length"),
    ({"adam_beta2": 1.0}, "adam_beta2"),
    ({"precision": "int8"}, "precision"),
    ({"warmup_ratio": 1.5}, "warmup_ratio"),
])
def test_bad_config_is_rejected(changes: dict, message: str) -> None:
    with pytest.raises(GotdInputError, match=message):
        TrainConfig(**changes)


def test_few_steps_lower_the_loss_and_record_is_complete(tiny: Path, tmp_path: Path) -> None:
    config = TrainConfig(max_steps=15, epochs=5, learning_rate=3e-3, batch_size=4, max_length=32, save_steps=5,
                         warmup_ratio=0.1)
    result = train(tiny, REPETITIVE, tmp_path / "out", config, progress=False)
    curve = result.curve
    assert list(curve["step"]) == list(range(1, 16))
    # a repetitive text is easy: the loss of a random model (~log 512 = 6.2) must fall a lot
    assert curve["loss"].iloc[0] > 5.5
    assert curve["loss"].iloc[-3:].mean() < curve["loss"].iloc[0] - 2.0
    # warm-up then linear decay: the peak learning rate is reached after ceil(0.1 * 15) = 2 steps
    assert result.record["warmup_steps"] == 2
    assert curve["learning_rate"].max() == pytest.approx(3e-3)

    out = result.output_dir
    record = read_train_record(out)
    assert record == json.loads((out / RECORD_NAME).read_text())
    for key in ("model", "data", "tokens", "config", "seed", "precision", "steps", "curve", "seconds", "versions",
                "device", "train_loss"):
        assert key in record, key
    assert record["steps"] == 15 and record["seed"] == 0 and record["precision"] == "fp32"
    assert record["config"]["learning_rate"] == 3e-3
    assert record["data"]["n_texts"] == len(REPETITIVE) and record["data"]["sha256"] is None
    assert record["tokens"]["n_texts_split"] == len(REPETITIVE)  # every text is longer than a 32-token block
    # one full epoch (the last batch of it short), then the rest of the 15 steps at 4 blocks each
    n_blocks, per_epoch = record["tokens"]["n_blocks"], record["steps_per_epoch"]
    assert per_epoch == -(-n_blocks // 4) < 15
    assert record["tokens"]["blocks_trained"] == n_blocks + (15 - per_epoch) * 4
    assert record["versions"]["transformers"]
    assert record["base_model"]["location"] == os.fspath(tiny) and record["base_model"]["kind"] == "tiny-random"

    # a normal checkpoint; no checkpoints or temporary folders left behind
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out)
    AutoTokenizer.from_pretrained(out)
    assert not any(torch.equal(weights(out)[k], v) for k, v in weights(tiny).items() if k in weights(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert model.config.vocab_size > 0


def test_selection_file_is_hashed(tiny: Path, tmp_path: Path) -> None:
    records = pd.DataFrame({"id": [f"p{i}" for i in range(20)],
                            "text": [f"candidate text number {i} about films and actors" for i in range(20)]})
    selection = Selection(indices=np.arange(10)[::-1], scores=np.linspace(-1, 0, 10), method="random",
                          params={"budget": 10}, n_pool=20)
    path = save_selection(selection, tmp_path / "selected.jsonl", records=records)
    texts, data = load_training_texts(path)
    assert texts == [records["text"][i] for i in range(9, -1, -1)]  # in rank order
    assert data["sha256"] == file_sha256(path) and data["selection"]["method"] == "random"
    result = train(tiny, path, tmp_path / "out", FAST.replace(max_steps=2), progress=False)
    assert result.record["data"]["sha256"] == file_sha256(path)
    assert result.record["data"]["source"] == os.fspath(path)


def test_resume_reproduces_an_uninterrupted_run(tiny: Path, tmp_path: Path) -> None:
    from transformers import TrainerCallback

    texts = [f"number {i} the cat sat on the mat and looked at the dog. " * 4 for i in range(20)]
    straight = train(tiny, texts, tmp_path / "straight", FAST, progress=False)

    class Crash(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003
            if state.global_step == 3:
                raise RuntimeError("simulated crash after the step-3 checkpoint")

    with pytest.raises(RuntimeError, match="simulated crash"):
        train(tiny, texts, tmp_path / "resumed", FAST, progress=False, callbacks=[Crash()])
    assert not (tmp_path / "resumed").exists()  # nothing half-written
    assert (tmp_path / "resumed.checkpoints" / "checkpoint-3").is_dir()

    resumed = train(tiny, texts, tmp_path / "resumed", FAST, progress=False, resume_from_checkpoint=True)
    assert resumed.record["resumed_from"].endswith("checkpoint-3")
    assert resumed.record["steps"] == 6
    assert [c["step"] for c in resumed.record["curve"]] == list(range(1, 7))
    a, b = weights(straight.output_dir), weights(resumed.output_dir)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
    assert not (tmp_path / "resumed.checkpoints").exists()


def test_resume_refuses_a_checkpoint_from_other_data(tiny: Path, tmp_path: Path) -> None:
    train(tiny, REPETITIVE, tmp_path / "a", FAST.replace(max_steps=3), progress=False, keep_checkpoints=True)
    assert (tmp_path / "a.checkpoints" / "checkpoint-3").is_dir()
    with pytest.raises(GotdInputError, match="different texts_sha256"):
        train(tiny, ["other text entirely, " * 10], tmp_path / "b", FAST.replace(max_steps=3), progress=False,
              resume_from_checkpoint=tmp_path / "a.checkpoints" / "checkpoint-3")
    with pytest.raises(GotdInputError, match="holds no checkpoint"):
        train(tiny, REPETITIVE, tmp_path / "c", FAST, progress=False, resume_from_checkpoint=True)
    # a fresh start must not silently mix with the checkpoints an unfinished run left behind
    (tmp_path / "a").rename(tmp_path / "a.done")
    with pytest.raises(GotdInputError, match="earlier, unfinished run"):
        train(tiny, REPETITIVE, tmp_path / "a", FAST.replace(max_steps=3), progress=False)


def test_lora_saves_a_merged_plain_checkpoint(tiny: Path, tmp_path: Path) -> None:
    config = FAST.replace(lora=True, lora_r=4, learning_rate=1e-2, max_steps=4)
    result = train(tiny, REPETITIVE, tmp_path / "lora", config, progress=False)
    assert result.record["lora"] == {"merged": True, "r": 4, "alpha": 16}
    after, before = weights(result.output_dir), weights(tiny)
    assert not any("lora" in k for k in after)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    # peft's default for Llama adapts the query and value projections only
    assert changed and all(("q_proj" in k or "v_proj" in k) for k in changed)


def test_bad_input_errors(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(GotdInputError, match="empty"):
        train(tiny, [], tmp_path / "x", FAST, progress=False)
    with pytest.raises(GotdInputError, match="empty"):
        train(tiny, ["fine", "   "], tmp_path / "x", FAST, progress=False)
    with pytest.raises(GotdInputError, match="does not exist"):
        train(tiny, tmp_path / "missing.jsonl", tmp_path / "x", FAST, progress=False)
    (tmp_path / "exists").mkdir()
    with pytest.raises(GotdInputError, match="already exists"):
        train(tiny, REPETITIVE, tmp_path / "exists", FAST, progress=False)
    with pytest.raises(GotdInputError, match="fp16"):
        train(tiny, REPETITIVE, tmp_path / "y", FAST.replace(precision="fp16"), progress=False, device="cpu")


def test_cli_train_writes_a_checkpoint_and_overrides_the_preset(tiny: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    from gotd.cli import main

    data = tmp_path / "selected.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in REPETITIVE), encoding="utf-8")
    out = tmp_path / "model"
    code = main(["train", "--selection", str(data), "--model", str(tiny), "--preset", "short", "--out", str(out),
                 "--max-steps", "3", "--lr", "1e-3", "--max-length", "32", "--quiet"])
    assert code == 0
    record = read_train_record(out)
    assert record["steps"] == 3 and record["config"]["learning_rate"] == 1e-3
    assert record["config"]["warmup_ratio"] == PRESETS["short"].warmup_ratio  # the rest from the preset
    assert record["data"]["sha256"] == file_sha256(data)
    assert "pre-fine-tuned" in capsys.readouterr().out
    # a second run with other settings into the same folder is refused with a one-line error naming the fix
    code = main(["train", "--selection", str(data), "--model", str(tiny), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "already exists" in err and "--overwrite" in err
    # the same run again reuses the finished output (the rule the notebooks follow too)
    stamp = (out / RECORD_NAME).stat().st_mtime_ns
    code = main(["train", "--selection", str(data), "--model", str(tiny), "--preset", "short", "--out", str(out),
                 "--max-steps", "3", "--lr", "1e-3", "--max-length", "32", "--quiet"])
    assert code == 0 and (out / RECORD_NAME).stat().st_mtime_ns == stamp


def test_an_existing_output_is_reused_only_for_the_same_run(tiny: Path, tmp_path: Path) -> None:
    """One rule for gotd train and the notebooks: reuse a complete output of the same model, data and
    settings; refuse anything else (naming overwrite); overwrite=True trains again."""
    from gotd import experiments

    out = tmp_path / "model"
    first = train(tiny, REPETITIVE, out, FAST, progress=False)
    stamp = (out / RECORD_NAME).stat().st_mtime_ns
    again = train(tiny, REPETITIVE, out, FAST, progress=False)
    assert again.record == first.record and (out / RECORD_NAME).stat().st_mtime_ns == stamp  # not retrained
    with pytest.raises(GotdInputError, match=r"already exists with another run.*learning_rate.*overwrite=True"):
        train(tiny, REPETITIVE, out, FAST.replace(learning_rate=1e-3), progress=False)
    with pytest.raises(GotdInputError, match=r"another run \(data: .*overwrite"):
        train(tiny, REPETITIVE[:6], out, FAST, progress=False)
    # the notebook path follows the same rule: the same texts (from a file now) are reused, and another
    # run is refused instead of silently replacing this one
    assert experiments.prefinetune(str(tiny), _texts_file(tmp_path), out, FAST, progress=False).record == first.record
    with pytest.raises(GotdInputError, match="settings differ in seed.*overwrite"):
        experiments.prefinetune(str(tiny), _texts_file(tmp_path), out, FAST.replace(seed=1), progress=False)
    assert (out / RECORD_NAME).stat().st_mtime_ns == stamp
    redone = train(tiny, REPETITIVE, out, FAST.replace(learning_rate=1e-3), overwrite=True, progress=False)
    assert redone.record["config"]["learning_rate"] == 1e-3 and read_train_record(out) == redone.record
    unfinished = tmp_path / "unfinished"
    (unfinished / "sub").mkdir(parents=True)
    with pytest.raises(GotdInputError, match="unfinished .*was not written by gotd .*no gotd_train.json"):
        train(tiny, REPETITIVE, unfinished, FAST, progress=False)


def _texts_file(folder: Path) -> Path:
    path = folder / "texts.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in REPETITIVE), encoding="utf-8")
    return path
