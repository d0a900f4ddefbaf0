"""The real-LM comparison (gotd.stages.compare_evaluations) on hand-made per-text files of 03_evaluate runs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gotd.errors import GotdInputError
from gotd.evaluate import PER_TEXT_FILES, text_sha
from gotd.stages import compare_evaluations as compare_real

TEXTS = ["a good film", "dull", "fine acting, poor plot"]
TOKENS = np.array([4, 2, 7])
# nll_sum per (seed, method, text): hand-made numbers
NLL = {0: {"base": [8.0, 5.0, 20.0], "gotd": [6.0, 4.0, 15.0], "random": [7.0, 4.5, 18.0]},
       1: {"base": [8.0, 5.0, 20.0], "gotd": [6.5, 3.0, 14.0], "random": [7.5, 5.0, 16.0]}}
CORRECT = {0: {"base": [1, 0, 0], "gotd": [1, 1, 0], "random": [0, 1, 0]},
           1: {"base": [1, 0, 0], "gotd": [1, 1, 1], "random": [1, 0, 0]}}


def _write_run(folder: Path, seed: int, texts: list[str] = TEXTS) -> Path:
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"parameters": {"target": "toy", "budget": 20, "seed": seed}}))
    common = {"split": "test", "seed": seed, "text_index": np.arange(3), "text_sha": [text_sha(t) for t in texts]}
    nll = pd.concat([pd.DataFrame({**common, "method": m, "nll_sum": v, "n_tokens": TOKENS,
                                   "nll_per_token": np.asarray(v) / TOKENS}) for m, v in NLL[seed].items()])
    zs = pd.concat([pd.DataFrame({**common, "method": m, "label": 0, "pred": 0, "correct": v})
                    for m, v in CORRECT[seed].items()])
    nll.to_parquet(folder / PER_TEXT_FILES["perplexity"], index=False)
    zs.to_parquet(folder / PER_TEXT_FILES["zero-shot"], index=False)
    return folder


def _ppl(method: str, seed: int) -> float:
    return float(np.exp(np.sum(NLL[seed][method]) / TOKENS.sum()))


def test_paired_rows_equal_the_direct_computation(tmp_path: Path) -> None:
    runs = [_write_run(tmp_path / f"seed{s}", s) for s in (0, 1)]
    record = compare_real(runs, tmp_path / "out", n_boot=500)
    paired = pd.read_csv(tmp_path / "out" / "paired.csv")
    assert len(paired) == 6  # (random vs gotd, random vs base, gotd vs base) x two metrics
    for method, vs in (("random", "gotd"), ("random", "base"), ("gotd", "base")):
        row = paired[(paired["metric"] == "perplexity") & (paired["method"] == method) & (paired["vs"] == vs)].iloc[0]
        direct = np.mean([_ppl(method, s) - _ppl(vs, s) for s in (0, 1)])
        assert row["diff"] == pytest.approx(direct, rel=1e-12)
        assert row["ci_low"] <= row["diff"] <= row["ci_high"] and row["n_seeds"] == 2 and row["n_texts"] == 3
        acc = paired[(paired["metric"] == "zero_shot_accuracy") & (paired["method"] == method)
                     & (paired["vs"] == vs)].iloc[0]
        direct_acc = np.mean([np.mean(CORRECT[s][method]) - np.mean(CORRECT[s][vs]) for s in (0, 1)])
        assert acc["diff"] == pytest.approx(direct_acc, rel=1e-12)
    # t-interval over the two per-seed differences, by hand
    d = np.array([_ppl("random", s) - _ppl("gotd", s) for s in (0, 1)])
    half = 12.706204736174707 * d.std(ddof=1) / np.sqrt(2)  # t(0.975, 1 dof)
    row = paired[(paired["metric"] == "perplexity") & (paired["method"] == "random") & (paired["vs"] == "gotd")].iloc[0]
    assert row["t_low"] == pytest.approx(d.mean() - half) and row["t_high"] == pytest.approx(d.mean() + half)
    assert record["seeds"] == [0, 1] and len(record["sentences"]) == 1 and "random" in record["sentences"][0]
    assert json.loads((tmp_path / "out" / "verdict.json").read_text())["sentences"] == record["sentences"]
    assert (tmp_path / "out" / "figures" / "headline.png").is_file()


def test_runs_that_scored_different_texts_are_refused(tmp_path: Path) -> None:
    runs = [_write_run(tmp_path / "seed0", 0), _write_run(tmp_path / "seed1", 1, ["a good film", "dull", "other"])]
    with pytest.raises(GotdInputError, match="sample_seed"):
        compare_real(runs, tmp_path / "out", n_boot=50)


def test_a_run_without_per_text_files_is_named(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "seed0", 0)
    (run / PER_TEXT_FILES["perplexity"]).unlink()
    with pytest.raises(GotdInputError, match="per_text_nll"):
        compare_real([run], tmp_path / "out", n_boot=50)


@pytest.fixture()
def kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``python3`` kernel spec that runs this interpreter, found first through JUPYTER_PATH."""
    import os
    import sys

    folder = tmp_path / "jupyter" / "kernels" / "python3"
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (gotd tests)", "language": "python"}))
    old = os.environ.get("JUPYTER_PATH")
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join([str(folder.parents[1])] + ([old] if old else [])))


@pytest.mark.slow
def test_demo_smollm2_chain_at_smoke_size_writes_paired_rows(kernel_env: None, tmp_path: Path) -> None:
    """`gotd run demo-smollm2` at smoke size, two methods and two seeds: per-text files, then paired rows."""
    pytest.importorskip("papermill")
    from gotd.cli import main

    assert main(["run", "demo-smollm2", "--reports-dir", str(tmp_path), "--quiet", "--set", "params.smoke=true",
                 "--set", "grid.method=[gotd, random]", "--set", "grid.seed=[0, 1]"]) == 0
    root = tmp_path / "demo-smollm2"
    evals = sorted(p for p in root.glob("03_evaluate-*") if p.is_dir())
    assert len(evals) == 2
    nll = [pd.read_parquet(d / PER_TEXT_FILES["perplexity"]) for d in evals]
    zs = [pd.read_parquet(d / PER_TEXT_FILES["zero-shot"]) for d in evals]
    for frame in nll:
        assert set(frame["method"]) == {"base", "gotd", "random"} and (frame["n_tokens"] > 0).all()
        assert np.allclose(frame["nll_per_token"], frame["nll_sum"] / frame["n_tokens"])
    for frame in zs:
        assert set(frame["correct"]) <= {0, 1} and set(frame["method"]) == {"base", "gotd", "random"}
    # the same texts at both seeds (sample_seed 0), and different warm-ups
    assert list(nll[0]["text_sha"]) == list(nll[1]["text_sha"])
    assert list(zs[0]["text_sha"]) == list(zs[1]["text_sha"])
    # the per-text sums give 03's own perplexity row
    results = pd.read_csv(evals[0] / "results.csv")
    for method, g in nll[0].groupby("method"):
        row = results[(results["method"] == method) & (results["metric"] == "perplexity")].iloc[0]
        assert row["value"] == pytest.approx(np.exp(g["nll_sum"].sum() / g["n_tokens"].sum()), rel=1e-9)
    (compare,) = [p for p in root.glob("06_compare_real-*") if p.is_dir()]
    verdict = json.loads((compare / "verdict.json").read_text())
    assert verdict["seeds"] == [0, 1] and verdict["sentences"] and verdict["secondary_sentences"]
    paired = pd.read_csv(compare / "paired.csv")
    assert set(paired["metric"]) == {"perplexity", "zero_shot_accuracy"}
    assert set(zip(paired["method"], paired["vs"])) == {("random", "gotd"), ("random", "base"), ("gotd", "base")}
    assert (paired["n_seeds"] == 2).all() and (paired["ci_low"] <= paired["diff"]).all()
    assert (paired["diff"] <= paired["ci_high"]).all() and (paired["ci_low"] < paired["ci_high"]).any()
    index = (root / "index.html").read_text()
    assert "class='verdict'" in index and "Paired differences: target perplexity" in index
    assert "Paired differences: zero-shot accuracy" in index
    # what a reader sees in every executed notebook of the chain (06_compare_real's is checked nowhere else)
    from notebook_outputs import assert_reader_view

    executed = {p.stem.split("-")[0]: p for p in root.glob("*.ipynb")}
    assert {"01_select", "02_prefinetune", "03_evaluate", "06_compare_real"} <= set(executed)
    for notebook in root.glob("*.ipynb"):
        assert_reader_view(notebook, notebook.with_suffix(""))
    assert assert_reader_view(executed["06_compare_real"], executed["06_compare_real"].with_suffix("")) >= 1
