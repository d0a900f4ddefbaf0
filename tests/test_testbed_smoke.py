"""The testbed config end to end at smoke size: three notebooks through `gotd run`, the verdict on the report.

Toy corpus, tiny LM, every method the config lists: a whole `gotd run`, so these tests are marked slow
(they still run under a plain `python -m pytest`; `-m "not slow"` leaves them out). Checks the plumbing
(every point done, per-text scores paired, selections saved with sidecars, the report opens on the
verdict), not the numbers.
"""
from __future__ import annotations

import copy
import html
import json

import pandas as pd
import pytest

from gotd.runner.config import load_config, validate_config
from gotd.runner.run import run_config


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("testbed")
    raw = copy.deepcopy(load_config("testbed-smoke").raw)
    raw["stages"][0]["params"]["cache_dir"] = str(tmp / "cache")
    config = validate_config(raw)
    summary = run_config(config, reports_dir=tmp / "reports", html=False, progress=False, stream_output=False)
    return summary


@pytest.mark.slow
def test_every_point_finishes(smoke_run) -> None:
    failed = {r.name: r.error for r in smoke_run.failed}
    assert smoke_run.ok, failed
    assert len(smoke_run.points) == 2 + 4 + 1


@pytest.mark.slow
def test_per_text_scores_are_paired_across_methods(smoke_run) -> None:
    warm = [p for p in smoke_run.points if p.stage.name == "prefinetune"]
    nll = pd.read_parquet(warm[0].run_dir / "nll.parquet")
    counts = nll.groupby(["split", "method", "budget"])["text_index"].nunique()
    assert counts.groupby("split").nunique().eq(1).all()          # every model scored the same texts
    meta = json.loads((warm[0].run_dir / "warmup.json").read_text())
    ran = set(nll["method"]) - {"base"}                             # base: the un-warmed model, scored per seed
    assert ran | set(meta["skipped"]) == set(meta["methods"])        # nothing dropped silently
    assert {"nll_sum", "n_tokens", "text_index"} <= set(nll.columns)  # the one per-text schema


@pytest.mark.slow
def test_every_selection_is_saved_with_its_sidecar(smoke_run) -> None:
    from gotd.selection import load_selection

    warm = [p for p in smoke_run.points if p.stage.name == "prefinetune"][0]
    nll = pd.read_parquet(warm.run_dir / "nll.parquet")
    for (method, budget), _ in nll[~nll["method"].isin(["base", "random", "oracle"])].groupby(["method", "budget"]):
        frame, meta = load_selection(warm.run_dir / "selections" / f"{method}-{budget}.jsonl")
        assert meta["method"] == method and meta["seed"] == warm.parameters["seed"]
        assert meta["extra"]["token_budget"] == budget and len(frame) >= meta["extra"]["texts_filling_budget"]
        assert meta["extra"]["scenario"] == warm.parameters["prepared_dir"].split("scenario=")[-1]


@pytest.mark.slow
def test_every_warm_up_of_a_budget_trains_on_the_same_tokens_and_steps(smoke_run) -> None:
    for point in [p for p in smoke_run.points if p.stage.name == "prefinetune"]:
        exposure = pd.read_csv(point.run_dir / "exposure.csv")
        assert set(exposure["method"]) == {"gotd", "matching", "knn", "dsir", "tsds", "random", "oracle"} - set(
            json.loads((point.run_dir / "warmup.json").read_text())["skipped"])
        per_budget = exposure.groupby("budget")[["tokens", "steps", "blocks"]].nunique()
        assert (per_budget == 1).all().all()
        assert (exposure["tokens"] == exposure["budget"]).all()


@pytest.mark.slow
def test_report_opens_on_the_verdict(smoke_run) -> None:
    compare = [p for p in smoke_run.points if p.stage.name == "compare"][0]
    verdict = json.loads((compare.run_dir / "verdict.json").read_text())
    assert len(verdict["sentences"]) >= 3 and verdict["sentences"][0].startswith("Exposure: ")
    assert {g["gate"] for g in verdict["gates"]} == {"plateau", "null", "positive", "pretrained"}
    for scen, certified in verdict["scenarios_certified"].items():    # a failed gate ranks nothing
        sentence = next(s for s in verdict["sentences"][1:] if s.startswith(verdict["labels"][scen]))
        assert ("cannot resolve" in sentence) == (not certified)
    assert (compare.run_dir / "figures" / "headline.png").stat().st_size > 10_000
    page = smoke_run.index.read_text()
    assert page.index("Gates: is the instrument certified?") < page.index(html.escape(verdict["sentences"][1][:30])) \
        < page.index("headline.png") < page.index("Details")
    timings = json.loads((smoke_run.points[0].run_dir / "timings.json").read_text())
    assert {"build_scenario", "embed", "pretrain"} <= set(timings["steps"])


def test_every_notebook_shows_its_figures(smoke_run) -> None:
    """What a reader sees in 05a, 05b and 05c: no error output, every figure they make shown as an image."""
    from notebook_outputs import assert_reader_view

    shown = {p.stage.notebook.stem: assert_reader_view(p.output_notebook, p.run_dir) for p in smoke_run.points}
    assert set(shown) == {"05a_testbed_prepare", "05b_testbed_warmup", "05c_testbed_compare"}
    assert shown["05c_testbed_compare"] >= 1   # the headline figure


@pytest.mark.parametrize("name", ["demo", "demo-pilot", "demo-extended", "demo-extended-euclidean",
                                  "demo-extended-lm", "testbed-smoke"])
def test_testbed_configs_plan_against_their_notebooks(name, tmp_path) -> None:
    from gotd.runner.run import plan_run

    config = load_config(name)
    assert {"random", "oracle"} <= set(config.grid["method"])               # the controls run everywhere
    if name == "demo-pilot":                                                # the pilot runs the controls alone
        assert set(config.grid["method"]) == {"random", "oracle"}
        assert all(s.params.get("eval_split") == "dev" for s in config.stages if s.name == "prefinetune")
    else:
        assert "gotd" in config.grid["method"]
    points = plan_run(config, tmp_path)
    warm = [p for p in points if p.stage.name == "prefinetune"]
    assert len(warm) == len(config.grid["scenario"]) * len(config.grid["seed"])
    assert all(p.parameters["budgets"] == config.grid["budget"] for p in warm)
    if name == "demo":
        assert len(config.grid["seed"]) >= 5
        compare = [p for p in points if p.stage.name == "compare"][0]
        assert compare.parameters["primary"]          # the primary comparisons are named before the run
