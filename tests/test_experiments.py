"""Helpers of notebooks 02 and 03 (gotd.experiments) that need no model: checkpoints, samples, rows, names."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from gotd import experiments
from gotd.evaluate import metric_names
from gotd.errors import GotdInputError
from gotd.runner.rundir import RunDir


def _finished(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "gotd_train.json").write_text("{}")
    return folder


def test_resolve_checkpoint_accepts_the_folder_or_its_only_finished_child(tmp_path: Path) -> None:
    lm = _finished(tmp_path / "run" / "models" / "lm")
    assert experiments.resolve_checkpoint(lm) == lm
    assert experiments.resolve_checkpoint(tmp_path / "run" / "models") == lm
    (tmp_path / "run" / "models" / "lm.checkpoints").mkdir()  # unfinished work is not a checkpoint
    assert experiments.resolve_checkpoint(tmp_path / "run" / "models") == lm
    _finished(tmp_path / "run" / "models" / "other")
    with pytest.raises(GotdInputError, match="2 finished checkpoints"):
        experiments.resolve_checkpoint(tmp_path / "run" / "models")
    with pytest.raises(GotdInputError, match="does not exist"):
        experiments.resolve_checkpoint(tmp_path / "nowhere")


def test_seeded_subset_is_reproducible_ordered_and_never_silent_about_zero() -> None:
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(50)]})
    a = experiments.seeded_subset(frame, 10, seed=3)
    assert a.equals(experiments.seeded_subset(frame, 10, seed=3)) and len(a) == 10
    assert not a.equals(experiments.seeded_subset(frame, 10, seed=4))
    assert list(a["text"]) == sorted(a["text"], key=lambda t: int(t[1:]))  # original order kept
    assert len(experiments.seeded_subset(frame, 0, seed=0)) == 50 and len(experiments.seeded_subset(frame, 99, 0)) == 50
    with pytest.raises(GotdInputError):
        experiments.seeded_subset(frame, -1, seed=0)


def test_training_metrics_from_a_record() -> None:
    record = {"train_loss": 3.2, "steps": 10, "seconds": 42.0,
              "tokens": {"blocks_trained": 40, "block_size": 128, "n_blocks": 160, "n_tokens": 20000},
              "curve": [{"step": 1, "loss": 3.9}, {"step": 10, "loss": 2.9}]}
    metrics = experiments.training_metrics(record)
    assert metrics == {"train_loss": 3.2, "steps": 10.0, "tokens_seen": 5120.0, "data_share_seen": 0.25,
                       "n_tokens": 20000.0, "seconds": 42.0, "first_loss": 3.9, "final_loss": 2.9}


def test_training_config_smoke_settings_yield_to_overrides() -> None:
    config = experiments.training_config("short", {"max_steps": 2}, seed=5, smoke=True)
    assert config.max_steps == 2 and config.seed == 5 and config.max_length == experiments.SMOKE_TRAINING["max_length"]
    assert experiments.training_config("short").max_length == 128
    with pytest.raises(GotdInputError, match="no field"):
        experiments.training_config("short", {"max_step": 2})


def test_selection_info_reads_the_sidecar(tmp_path: Path) -> None:
    path = tmp_path / "gotd.jsonl"
    path.write_text('{"text": "a"}\n')
    assert experiments.selection_info(path)["method"] is None
    (tmp_path / "gotd.jsonl.json").write_text(json.dumps({"method": "gotd", "seed": 2, "params": {"budget": 7},
                                                          "extra": {"inputs": {"task": "rotten-tomatoes"}}}))
    assert experiments.selection_info(path) == {"method": "gotd", "budget": 7, "seed": 2, "task": "rotten-tomatoes"}


def test_evaluation_task_in_smoke_mode_has_three_labelled_splits() -> None:
    task = experiments.evaluation_task("rotten-tomatoes", smoke=True)
    assert task.name == "toy-film" and set(task.splits) == {"train", "dev", "test"}
    assert sum(len(f) for f in task.splits.values()) == 80
    assert set(task.split("test")["label"]) <= set(task.labels)
    with pytest.raises(GotdInputError, match="no split"):
        task.split("validation")
    with pytest.raises(GotdInputError, match="built-in task"):
        experiments.evaluation_task("some/file.jsonl")


def test_evaluate_models_rejects_bad_requests_before_loading_anything() -> None:
    task = experiments.evaluation_task("x", smoke=True)
    with pytest.raises(GotdInputError, match="unknown evaluation"):
        experiments.evaluate_models({"base": "tiny"}, task, evaluations=["zero_shot"])
    with pytest.raises(GotdInputError, match="no models"):
        experiments.evaluate_models({}, task)
    with pytest.raises(GotdInputError, match="need a task"):
        experiments.evaluate_models({"base": "tiny"}, None, evaluations=["perplexity"])
    with pytest.raises(GotdInputError, match="toxicity needs"):
        experiments.evaluate_models({"base": "tiny"}, task, evaluations=["toxicity"])


def test_metric_names_separate_evaluations_splits_and_seed_means() -> None:
    few = pd.DataFrame({"metric": ["accuracy", "accuracy", "accuracy"], "split": ["test", "dev", "test"],
                        "seed": pd.array([0, 0, pd.NA], dtype="Int64")})
    assert metric_names(few, "finetune") == ["finetune_accuracy", "finetune_dev_accuracy",
                                                           "finetune_accuracy_seed_mean"]
    zero = pd.DataFrame({"metric": ["accuracy", "macro_f1"]})
    assert metric_names(zero, "zero-shot") == ["zero_shot_accuracy", "zero_shot_macro_f1"]


def test_evaluation_rows_go_to_results_csv_under_the_base_model_label(tmp_path: Path) -> None:
    table = pd.DataFrame({"method": ["base", "gotd", "gotd"], "model": ["m", "/x/lm", "/x/lm"],
                          "task": ["t"] * 3, "metric": ["zero_shot_accuracy"] * 2 + ["finetune_accuracy_seed_mean"],
                          "value": [0.5, 0.6, 0.7], "seed": pd.array([0, 0, pd.NA], dtype="Int64"),
                          "n": [10, 10, 10], "ci_low": [0.2, 0.3, float("nan")], "ci_high": [0.8, 0.9, float("nan")]})
    run = RunDir(tmp_path / "run", "03_evaluate")
    assert experiments.add_evaluation_results(run, table, budget=20, model_label="smollm2-135m") == 3
    rows = pd.read_csv(run.write_results())
    assert (rows["model"] == "smollm2-135m").all() and (rows["budget"] == 20).all()
    assert list(rows["checkpoint"]) == ["m", "/x/lm", "/x/lm"]
    assert list(rows["seed_aggregate"]) == [False, False, True] and pd.isna(rows["seed"].iloc[2])
    pivot = experiments.results_table(table)
    assert list(pivot.columns) == ["base", "gotd"] and pivot.loc[("zero_shot_accuracy", 0, 10), "gotd"] == "0.6 [0.3, 0.9]"


def test_rows_are_filed_under_the_selection_a_checkpoint_was_trained_on(tmp_path: Path) -> None:
    from gotd.evaluate import describe_model

    warm = _finished(tmp_path / "warm")
    (warm / "gotd_train.json").write_text(json.dumps({"model": "smollm2-135m", "data": {
        "selection": {"method": "gotd", "budget": 20, "seed": 0}}}))
    assert describe_model(warm) == {"method": "gotd", "model": "smollm2-135m", "budget": 20}
    assert describe_model("tiny") == {"method": "base", "model": "tiny", "budget": None}
    plain = _finished(tmp_path / "plain")  # trained on a list of texts: no selection to name
    assert describe_model(plain)["method"] == "prefinetuned"


def test_toxicity_utility_perplexity_is_named_apart_from_the_perplexity_evaluation() -> None:
    tox = pd.DataFrame({"metric": ["expected_max_toxicity", "perplexity", "nll_per_token"]})
    assert metric_names(tox, "toxicity") == ["expected_max_toxicity", "utility_perplexity", "utility_nll_per_token"]
    assert metric_names(pd.DataFrame({"metric": ["perplexity"]}), "perplexity") == ["perplexity"]


def test_models_to_evaluate_puts_the_base_model_first(tmp_path: Path) -> None:
    lm = _finished(tmp_path / "run" / "models" / "lm")
    assert experiments.models_to_evaluate("tiny", {"gotd": tmp_path / "run" / "models"}) == {"base": "tiny", "gotd": lm}
    assert list(experiments.models_to_evaluate("", {"gotd": lm})) == ["gotd"]
    with pytest.raises(GotdInputError, match="nothing to evaluate"):
        experiments.models_to_evaluate("", {})


def test_evaluation_settings_are_one_object_and_keywords_override_it() -> None:
    from gotd.evaluate import EvalConfig

    config = EvalConfig(evaluations=("perplexity",), seed=2)
    assert config.replace(seed=3).seed == 3 and config.seed == 2
    assert config.draw == 2 and config.replace(sample_seed=7).draw == 7
    with pytest.raises(GotdInputError, match="EvalConfig has no field"):
        config.replace(max_examplez=3)
    with pytest.raises(GotdInputError, match="EvalConfig has no field"):
        experiments.evaluate_models({"base": "tiny"}, None, config, evaluations=["perplexity"], bogus=1)
