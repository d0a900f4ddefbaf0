"""The helpers behind the notebooks: toy data, selection analysis, ablations, plots, the run folder."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from gotd import ablations, analysis, plots, toy
from gotd.errors import GotdInputError
from gotd.results import RESULT_COLUMNS
from gotd.runner.rundir import RunDir
from gotd.ot import ot_gradients


def test_two_cluster_toy_has_the_requested_shares() -> None:
    p = toy.two_cluster_toy(200, 40, rare_share=0.1, target_rare_share=0.5, seed=1)
    assert p.pool.shape == (200, 2) and p.target.shape == (40, 2)
    assert p.pool_cluster.sum() == 20 and p.target_cluster.sum() == 20
    with pytest.raises(GotdInputError, match="rare_share"):
        toy.two_cluster_toy(rare_share=1.5)


def test_toy_text_pool_and_task_are_seeded_and_shaped() -> None:
    pool = toy.toy_text_pool(100, seed=3)
    assert pool["domain"].value_counts().to_dict() == {"politics": 45, "sport": 30, "science": 15, "film": 10}
    assert pool.equals(toy.toy_text_pool(100, seed=3))
    task = toy.toy_text_task(40, seed=0)
    assert set(task["label"]) == {"positive", "negative"} and task["split"].value_counts()["train"] == 20


def test_domain_shares_and_overlap() -> None:
    domains = ["a", "a", "b", "b"]
    shares = analysis.domain_shares(domains, {"x": np.array([0, 1]), "y": np.array([1, 2])})
    assert shares.loc["x"].tolist() == [1.0, 0.0] and shares.loc["y"].tolist() == [0.5, 0.5]
    assert shares.loc["(pool)"].tolist() == [0.5, 0.5]
    overlap = analysis.overlap_matrix({"x": np.array([0, 1]), "y": np.array([1, 2])})
    assert overlap.loc["x", "y"] == 0.5 and overlap.loc["x", "x"] == 1.0
    with pytest.raises(GotdInputError, match="row indices"):
        analysis.domain_shares(domains, {"x": np.array([7])})


def test_mixture_weights_and_distance_reward_the_rare_cluster() -> None:
    w = analysis.mixture_weights(4, np.array([3]), 0.2)
    assert w.sum() == pytest.approx(1.0) and w[3] == pytest.approx(0.2 + 0.8 / 4)
    p = toy.two_cluster_toy(200, 50, seed=0)
    rare, common = np.flatnonzero(p.pool_cluster == 1)[:10], np.flatnonzero(p.pool_cluster == 0)[:10]
    table = analysis.mixture_ot_distances(p.pool, p.target, {"rare": rare, "common": common}, eps=0.5, lams=(0.1,))
    change = table.set_index("method")["change"]
    assert change["rare"] < 0 < change["common"]


def test_pca_2d_recovers_the_main_axis() -> None:
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(0, 10, 300), rng.normal(0, 1, 300), rng.normal(0, 0.1, 300)])
    (proj,), explained = analysis.pca_2d(x)
    assert proj.shape == (300, 2) and explained[0] > 0.95
    assert abs(np.corrcoef(proj[:, 0], x[:, 0])[0, 1]) > 0.99


def test_topk_agreement_and_one_chunk_equals_the_global_solve() -> None:
    assert ablations.topk_agreement([0, 1, 2, 3], [0, 1, 3, 2], 2) == 1.0
    assert ablations.topk_agreement([3, 2, 1, 0], [0, 1, 2, 3], 2) == 0.0
    p = toy.two_cluster_toy(200, 50, seed=2)
    reference = ot_gradients(p.pool, p.target, eps_rel=0.05, tol=1e-6)
    one = ablations.chunked_gradients(p.pool, p.target, 1, eps_rel=0.05, tol=1e-6)
    assert np.allclose(one, reference, atol=1e-6)
    table = ablations.compare_strategies(p.pool, p.target, chunk_counts=(5,), subsample_fractions=(0.5,),
                                         budget_fractions=(0.1,), eps_rel=0.05, tol=1e-6)
    assert table["topk_agreement"].between(0, 1).all() and len(table) == 3


def test_run_dir_writes_tidy_results_and_rejects_non_finite_values(tmp_path) -> None:
    run = RunDir(tmp_path / "r", "nb", {"a": 1})
    run.add_result(task="t", method="gotd", budget=5, seed=0, model="m", metric="acc", value=0.5, extra=1)
    with pytest.raises(GotdInputError, match="finite"):
        run.add_result(task="t", method="gotd", budget=5, seed=0, model="m", metric="acc", value=float("nan"))
    frame = pd.read_csv(run.write_results())
    assert list(frame.columns) == [*RESULT_COLUMNS, "extra"] and frame["value"].tolist() == [0.5]
    fig = plots.results_points(frame, "acc")
    assert isinstance(fig, Figure) and run.save_figure(fig, "acc").is_file()


def test_plots_return_figures_and_name_missing_columns() -> None:
    p = toy.two_cluster_toy(60, 20, seed=0)
    sel = {"gotd": np.arange(5), "random": np.arange(5, 10)}
    assert isinstance(plots.toy_selections(p.pool, p.target, sel, pool_cluster=p.pool_cluster), Figure)
    assert isinstance(plots.overlap_heatmap(analysis.overlap_matrix(sel)), Figure)
    assert isinstance(plots.loss_curve(pd.DataFrame({"step": [1, 2], "loss": [2.0, 1.5]})), Figure)
    with pytest.raises(GotdInputError, match="lacks column"):
        plots.loss_curve(pd.DataFrame({"step": [1]}))
