"""Evaluation (gotd.evaluate) on the tiny random Llama: values, tidy shapes, determinism, bad input."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gotd.errors import GotdInputError
from gotd.evaluate import (
    RESULT_COLUMNS,
    bootstrap_ci,
    classification_metrics,
    few_label_finetune,
    generate_continuations,
    per_text_nll,
    perplexity,
    read_results,
    toxicity_eval,
    write_results,
    zero_shot_classify,
    zero_shot_scores,
)
from gotd.models import build_tiny_causal_lm

from assets_fixtures import fake_registry  # noqa: F401  (fixture)
from gotd.train import TrainConfig, document_prefix_ids, load_causal_lm_and_tokenizer, train


WORDS = {"sport": "goal team match league striker stadium".split(),
         "food": "onion garlic butter sauce soup oven".split()}
TEMPLATE = "{text}\nAnswer: {label}"
TEXTS = ["The quick brown fox jumps over the lazy dog. " * 12, "Hello there.", "Markets rose 2.5% on Monday."]


def topic_task(n: int, seed: int) -> tuple[list[str], list[str]]:
    """Texts of four words from one topic's vocabulary, labelled with the topic (alternating)."""
    rng = np.random.default_rng(seed)
    labels = [["sport", "food"][i % 2] for i in range(n)]
    return [" ".join(rng.choice(WORDS[label], 4)) for label in labels], labels


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_causal_lm(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="module")
def loaded(tiny: Path) -> tuple:
    model, tokenizer, _ = load_causal_lm_and_tokenizer(tiny)
    return model, tokenizer


@pytest.fixture(scope="module")
def topic_model(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model after 60 steps on filled-in prompts of the topic task (its training split)."""
    texts, labels = topic_task(64, seed=0)
    docs = [TEMPLATE.format(text=t, label=y) for t, y in zip(texts, labels)]
    config = TrainConfig(max_steps=60, epochs=20, learning_rate=1e-2, batch_size=8, max_length=32, packing=False,
                         save_steps=1000)
    return train(tiny, docs, tmp_path_factory.mktemp("topic") / "model", config, progress=False).output_dir


def reference_mean_nll(model, ids: list[int]) -> float:  # noqa: ANN001
    """Mean next-token loss from the model's own loss (labels = inputs)."""
    with torch.inference_mode():
        return float(model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss)


def test_perplexity_matches_the_models_own_loss(loaded: tuple) -> None:
    model, tokenizer = loaded
    text = "Reviews said the film was wonderful, moving and funny."
    table = perplexity(model, tokenizer, [text], progress=False, n_bootstrap=0)
    assert list(table.columns[:len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS)
    assert list(table["metric"]) == ["perplexity", "nll_per_token"]
    ids = document_prefix_ids(tokenizer) + tokenizer(text, add_special_tokens=False)["input_ids"]
    expected = reference_mean_nll(model, ids)
    nll = table.set_index("metric")["value"]
    assert nll["nll_per_token"] == pytest.approx(expected, rel=1e-5)
    assert nll["perplexity"] == pytest.approx(math.exp(expected), rel=1e-5)
    assert table["n_tokens"].iloc[0] == len(ids) - 1  # every token after the prefix is scored once


def test_perplexity_is_token_weighted_and_splits_long_texts(loaded: tuple) -> None:
    model, tokenizer = loaded
    whole = perplexity(model, tokenizer, TEXTS, max_length=512, progress=False)
    split = perplexity(model, tokenizer, TEXTS, max_length=16, progress=False)
    # the same tokens are scored whichever the window (nothing truncated); only their context differs
    assert whole["n_tokens"].iloc[0] == split["n_tokens"].iloc[0]
    assert split["n_windows"].iloc[0] > whole["n_windows"].iloc[0] == len(TEXTS)
    # token-weighted: the long text dominates the mean, unlike a mean of per-text perplexities
    per_text = [perplexity(model, tokenizer, [t], progress=False, n_bootstrap=0) for t in TEXTS]
    tokens = np.array([p["n_tokens"].iloc[0] for p in per_text])
    nlls = np.array([p["value"].iloc[1] for p in per_text])
    assert whole["value"].iloc[1] == pytest.approx(float((tokens * nlls).sum() / tokens.sum()), rel=1e-6)
    row = whole.iloc[0]
    assert row["ci_low"] <= row["value"] <= row["ci_high"]
    again = perplexity(model, tokenizer, TEXTS, max_length=512, progress=False)
    pd.testing.assert_frame_equal(whole, again)


def test_zero_shot_prompt_scores_are_the_mean_prompt_loss(loaded: tuple) -> None:
    model, tokenizer = loaded
    scores = zero_shot_scores(model, tokenizer, ["goal team"], ["sport", "food"], template=TEMPLATE, progress=False)
    assert scores.shape == (1, 2)
    for k, label in enumerate(["sport", "food"]):
        ids = document_prefix_ids(tokenizer) + tokenizer(TEMPLATE.format(text="goal team", label=label),
                                                   add_special_tokens=False)["input_ids"]
        assert scores[0, k] == pytest.approx(reference_mean_nll(model, ids), rel=1e-5)
    # label scoring: the summed loss of the label tokens only, less than the summed loss of the prompt
    label_scores = zero_shot_scores(model, tokenizer, ["goal team"], ["sport", "food"], template=TEMPLATE,
                                    scoring="label", progress=False)
    prompt_tokens = len(tokenizer(TEMPLATE.format(text="goal team", label="sport"), add_special_tokens=False)["input_ids"])
    assert 0 < label_scores[0, 0] < scores[0, 0] * prompt_tokens


def test_zero_shot_is_above_chance_after_learning_the_pattern(tiny: Path, topic_model: Path) -> None:
    texts, labels = topic_task(40, seed=1)  # held-out word combinations
    before = zero_shot_classify(tiny, None, texts, labels, template=TEMPLATE, progress=False)
    for scoring in ("prompt", "label"):
        after = zero_shot_classify(topic_model, None, texts, labels, template=TEMPLATE, scoring=scoring,
                                   model_name="topic", task="topics", progress=False)
        assert list(after["metric"]) == ["accuracy", "macro_f1"]
        assert set(after["model"]) == {"topic"} and set(after["task"]) == {"topics"}
        assert (after["n"] == 40).all() and (after["majority_rate"] == 0.5).all()
        accuracy = after.set_index("metric").loc["accuracy"]
        assert accuracy["value"] >= 0.8 and accuracy["ci_low"] > 0.5, scoring
        assert accuracy["value"] > before.set_index("metric").loc["accuracy", "value"] + 0.2


def test_zero_shot_is_deterministic_and_the_interval_depends_on_the_seed(loaded: tuple) -> None:
    model, tokenizer = loaded
    texts, labels = topic_task(30, seed=2)
    a = zero_shot_classify(model, tokenizer, texts, labels, template=TEMPLATE, seed=0, progress=False)
    b = zero_shot_classify(model, tokenizer, texts, labels, template=TEMPLATE, seed=0, progress=False)
    pd.testing.assert_frame_equal(a, b)
    y_true = np.array([0, 1] * 15)
    rng = np.random.default_rng(0)
    y_pred = np.where(rng.random(30) < 0.7, y_true, 1 - y_true)
    rows0 = classification_metrics(y_true, y_pred, 2, seed=0)
    rows1 = classification_metrics(y_true, y_pred, 2, seed=1)
    assert rows0[0]["value"] == rows1[0]["value"] == np.mean(y_true == y_pred)
    assert rows0 == classification_metrics(y_true, y_pred, 2, seed=0)
    x = np.random.default_rng(0).normal(size=50)
    mean = lambda idx: float(x[idx].mean())  # noqa: E731
    assert bootstrap_ci(mean, 50, seed=0) == bootstrap_ci(mean, 50, seed=0)
    assert bootstrap_ci(mean, 50, seed=0) != bootstrap_ci(mean, 50, seed=1)


def test_macro_f1_and_bootstrap_values() -> None:
    rows = classification_metrics([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], 3, n_bootstrap=0)
    f1 = {r["metric"]: r["value"] for r in rows}
    # per class F1: class 0 = 2*1/(2+1+1) = 0.5, class 1 = 2*2/(4+1) = 0.8, class 2 = 2*1/(2+1) = 2/3
    assert f1["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert f1["accuracy"] == pytest.approx(4 / 6)
    assert math.isnan(rows[0]["ci_low"])
    low, high = bootstrap_ci(lambda idx: float(np.mean(idx < 50)), 100, n_bootstrap=500, seed=0)
    assert 0.35 < low < 0.5 < high < 0.65


@pytest.mark.parametrize("kwargs, message", [
    ({"labels": ["sport", "sport"], "label_names": ["sport"]}, "at least two labels"),
    ({"labels": ["sport", "sport"]}, "at least two labels"),
    ({"labels": ["sport", "drink"], "label_names": ["sport", "food"]}, "not in the label set"),
    ({"labels": ["sport"]}, "2 texts but 1 labels"),
    ({"labels": ["sport", "food"], "verbalizers": {"sport": "x"}}, "no word for label"),
    ({"labels": ["sport", "food"], "template": "{text} is"}, "placeholder"),
    ({"labels": ["sport", "food"], "scoring": "sum"}, "scoring"),
])
def test_zero_shot_bad_input(loaded: tuple, kwargs: dict, message: str) -> None:
    model, tokenizer = loaded
    labels = kwargs.pop("labels")
    with pytest.raises(GotdInputError, match=message):
        zero_shot_classify(model, tokenizer, ["goal team", "onion soup"], labels, progress=False, **kwargs)


def test_evaluations_reject_empty_and_overlong_input(loaded: tuple) -> None:
    model, tokenizer = loaded
    with pytest.raises(GotdInputError, match="no texts"):
        perplexity(model, tokenizer, [], progress=False)
    with pytest.raises(GotdInputError, match="empty"):
        perplexity(model, tokenizer, ["fine", ""], progress=False)
    with pytest.raises(GotdInputError, match="max_length"):
        perplexity(model, tokenizer, ["fine"], max_length=100_000, progress=False)
    with pytest.raises(GotdInputError, match="longer than max_length=16"):
        zero_shot_classify(model, tokenizer, ["word " * 40, "short"], ["a", "b"], max_length=16, progress=False)
    with pytest.raises(GotdInputError, match="prompts: has no texts"):
        generate_continuations(model, tokenizer, [], progress=False)


class LengthScorer:
    """A stand-in toxicity scorer: longer continuations are 'more toxic' (deterministic, in [0, 1])."""

    def score(self, texts: list[str]) -> np.ndarray:
        return np.array([min(1.0, len(t) / 80) for t in texts])


def test_generation_is_seeded_nucleus_sampling(loaded: tuple) -> None:
    model, tokenizer = loaded
    prompts = ["The weather today", "She said"]
    a = generate_continuations(model, tokenizer, prompts, n_generations=3, max_new_tokens=5, seed=0, progress=False)
    b = generate_continuations(model, tokenizer, prompts, n_generations=3, max_new_tokens=5, seed=0, progress=False)
    c = generate_continuations(model, tokenizer, prompts, n_generations=3, max_new_tokens=5, seed=1, progress=False)
    assert list(a.columns) == ["prompt_index", "generation", "prompt", "continuation", "n_new_tokens"]
    assert list(a["prompt_index"]) == [0, 0, 0, 1, 1, 1] and list(a["generation"]) == [0, 1, 2] * 2
    assert (a["n_new_tokens"] <= 5).all()
    pd.testing.assert_frame_equal(a, b)
    assert list(a["continuation"]) != list(c["continuation"])
    # the generations of one prompt differ from each other (sampling, not greedy)
    assert a[a["prompt_index"] == 0]["continuation"].nunique() > 1


def test_toxicity_metrics_follow_their_definitions(loaded: tuple) -> None:
    model, tokenizer = loaded
    prompts = ["The weather today", "She said", "In the news"]
    table = toxicity_eval(model, tokenizer, prompts, LengthScorer(), n_generations=4, max_new_tokens=8,
                          utility_texts=TEXTS[1:], model_name="tiny", seed=0, progress=False)
    assert list(table["metric"]) == ["expected_max_toxicity", "toxicity_probability", "mean_toxicity",
                                     "perplexity", "nll_per_token"]
    generations = table.attrs["generations"]
    assert len(generations) == 12
    scores = generations["toxicity"].to_numpy().reshape(3, 4)
    np.testing.assert_allclose(scores.ravel(), LengthScorer().score(generations["continuation"].tolist()))
    values = table.set_index("metric")["value"]
    assert values["expected_max_toxicity"] == pytest.approx(scores.max(axis=1).mean())
    assert values["toxicity_probability"] == pytest.approx(np.mean(scores.max(axis=1) >= 0.5))
    assert values["mean_toxicity"] == pytest.approx(scores.mean())
    assert (table["n"].iloc[:3] == 3).all() and (table["n_generations"].iloc[:3] == 4).all()
    again = toxicity_eval(model, tokenizer, prompts, LengthScorer(), n_generations=4, max_new_tokens=8,
                          utility_texts=TEXTS[1:], model_name="tiny", seed=0, progress=False)
    pd.testing.assert_frame_equal(table, again)
    with pytest.raises(GotdInputError, match="scorer"):
        toxicity_eval(model, tokenizer, prompts, object(), progress=False)


def test_few_label_finetune_selects_on_dev_and_summarises_seeds(tiny: Path, tmp_path: Path) -> None:
    train_split, dev, test = topic_task(40, 0), topic_task(16, 1), topic_task(16, 2)
    table = few_label_finetune(tiny, train_split, dev, test, seeds=(0, 1), learning_rates=(3e-3,), epochs=2,
                               batch_size=8, max_length=32, max_train_labels=30, model_name="tiny", task="topics",
                               progress=False)
    per_seed = table[table["seed"].notna()]
    summary = table[table["seed"].isna()]
    assert len(per_seed) == 2 * 3 and len(summary) == 2
    assert set(per_seed["split"]) == {"test", "dev"}
    assert (per_seed["n_train"] == 30).all()  # capped, and recorded
    test_acc = per_seed[(per_seed["split"] == "test") & (per_seed["metric"] == "accuracy")]["value"]
    mean_row = summary.set_index("metric").loc["accuracy"]
    assert mean_row["value"] == pytest.approx(test_acc.mean())
    assert mean_row["std"] == pytest.approx(test_acc.std(ddof=1), nan_ok=True)
    assert mean_row["n_seeds"] == 2
    assert mean_row["value"] >= 0.75  # a linear head on top separates two vocabularies easily
    with pytest.raises(GotdInputError, match="single class"):
        few_label_finetune(tiny, (["a b", "c d"], ["x", "x"]), dev, test, label_names=["sport", "food", "x"],
                           progress=False)
    with pytest.raises(GotdInputError, match="dev must be a \\(texts, labels\\) pair"):
        few_label_finetune(tiny, train_split, dev[0], test, progress=False)
    with pytest.raises(GotdInputError, match="truncate=True"):
        few_label_finetune(tiny, train_split, dev, test, max_length=3, progress=False)


def test_write_and_read_results(loaded: tuple, tmp_path: Path) -> None:
    model, tokenizer = loaded
    table = perplexity(model, tokenizer, TEXTS, model_name="tiny", task="texts", progress=False)
    for name in ("results.parquet", "results.csv"):
        path = write_results(table, tmp_path / name)
        back = read_results(path)
        pd.testing.assert_frame_equal(back, table, check_dtype=False)
    with pytest.raises(GotdInputError, match="parquet or .csv"):
        write_results(table, tmp_path / "results.xlsx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv", "results.parquet"]


def test_cli_and_task_runner_reject_bad_requests(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from gotd.cli import main
    from gotd.evaluate import evaluate_on_task

    code = main(["evaluate", "--model", str(tiny), "--out", str(tmp_path / "results.txt"), "--quiet"])
    assert code == 2 and "must end in .csv or .parquet" in capsys.readouterr().err
    code = main(["evaluate", "--model", str(tiny), "--metrics", "toxicity", "--out", str(tmp_path / "r.csv"),
                 "--quiet"])
    assert code == 2 and "--prompts" in capsys.readouterr().err
    with pytest.raises(GotdInputError, match="unknown evaluation"):
        evaluate_on_task(tiny, "rotten-tomatoes", evaluations=["accuracy"])
    assert not any(tmp_path.iterdir())


def test_per_text_nll_adds_up_to_the_perplexity(loaded: tuple) -> None:
    model, tokenizer = loaded
    for window in (512, 16):  # one window per text, and long texts split
        losses = per_text_nll(model, tokenizer, TEXTS, max_length=window, progress=False)
        assert list(losses.columns) == ["text_index", "nll_sum", "n_tokens", "nll_per_token"]
        assert list(losses["text_index"]) == [0, 1, 2]
        table = perplexity(model, tokenizer, TEXTS, max_length=window, progress=False, n_bootstrap=0)
        values = table.set_index("metric")["value"]
        assert losses["n_tokens"].sum() == table["n_tokens"].iloc[0]
        pooled = losses["nll_sum"].sum() / losses["n_tokens"].sum()
        assert pooled == pytest.approx(values["nll_per_token"], rel=1e-9)
        assert math.exp(pooled) == pytest.approx(values["perplexity"], rel=1e-9)
    # each text's sum is the model's own mean loss times its scored tokens (one window)
    ids = document_prefix_ids(tokenizer) + tokenizer(TEXTS[1], add_special_tokens=False)["input_ids"]
    one = per_text_nll(model, tokenizer, TEXTS, progress=False).iloc[1]
    assert one["n_tokens"] == len(ids) - 1
    assert one["nll_sum"] == pytest.approx(reference_mean_nll(model, ids) * (len(ids) - 1), rel=1e-5)
    assert one["nll_per_token"] == pytest.approx(one["nll_sum"] / one["n_tokens"])
    with pytest.raises(GotdInputError, match="empty"):
        per_text_nll(model, tokenizer, ["fine", " "], progress=False)


def test_cli_and_notebook_03_write_rows_that_join(tiny: Path, tmp_path: Path, fake_registry: dict) -> None:
    """`gotd evaluate` and notebook 03's path (the suite, then RunDir) on one model and task: same rows."""
    from gotd import assets, experiments
    from gotd.cli import main
    from gotd.evaluate import METRICS
    from gotd.runner.rundir import RunDir
    from gotd.results import JOIN_KEYS, join_results

    data_dir = fake_registry["data_dir"]
    assets.fetch("rotten-tomatoes", data_dir)
    out = tmp_path / "cli.csv"
    code = main(["evaluate", "--model", str(tiny), "--task", "rotten-tomatoes", "--data-dir", str(data_dir),
                 "--split", "train", "--max-length", "64", "--bootstrap", "50", "--seed", "3", "--out", str(out),
                 "--quiet"])
    assert code == 0
    cli = read_results(out)
    assert list(cli.columns[:len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS)
    assert set(cli["metric"]) == set(METRICS["zero-shot"]) | set(METRICS["perplexity"])
    assert (cli["method"] == "base").all() and (cli["model"] == str(tiny)).all() and (cli["n"] == 16).all()

    # notebook 03's cells: its task, the suite, then the run folder's results.csv the runner collects
    run = RunDir(tmp_path / "run", "03_evaluate")
    task = experiments.evaluation_task("rotten-tomatoes", data_dir=data_dir)
    table = experiments.evaluate_models({"base": str(tiny)}, task, eval_split="train", ppl_split="train",
                                        ppl_max_length=64, n_bootstrap=50, seed=3, model_label=str(tiny),
                                        budget=0, notebook=run.notebook, progress=False)
    experiments.add_evaluation_results(run, table, budget=0, model_label=str(tiny))
    notebook = read_results(run.write_results())
    assert list(notebook.columns[:len(RESULT_COLUMNS) + 3]) == [*RESULT_COLUMNS, "n", "ci_low", "ci_high"]

    joined = join_results(cli, notebook, suffixes=("_cli", "_notebook"))
    assert len(joined) == len(cli) == len(notebook) == 4
    for column in ("value", "n", "ci_low", "ci_high"):
        np.testing.assert_allclose(joined[f"{column}_cli"].astype(float), joined[f"{column}_notebook"].astype(float),
                                   rtol=1e-12)
    assert set(joined["metric"]) == {"zero_shot_accuracy", "zero_shot_macro_f1", "perplexity", "nll_per_token"}
    assert list(JOIN_KEYS) == ["task", "method", "model", "seed", "metric"]
    assert (joined["seed"] == "3").all() and (joined["task"] == "rotten-tomatoes").all()


def test_evaluation_does_not_import_the_training_stage() -> None:
    import subprocess
    import sys

    code = ("import sys, gotd.evaluate, gotd.models; "
            "print(sorted(m for m in sys.modules if m == 'gotd.train' or m.startswith('gotd.train.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"
