"""The testbed's instrument: equal token budgets, the light warm-up, gates, Holm's correction, interval choice."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from gotd.errors import GotdInputError
from gotd.stages._paired import Scores, holm, paired_difference, wider_interval
from gotd.testbed._gates import control_gates, plateau_gate, primary_table
from gotd.train import LoopRecipe, fill_token_budget, light_recipe, lr_at, ngram_reference_nll, train_loop


# ---------------------------------------------------------------- token budgets

def test_every_rank_order_fills_the_same_token_budget_exactly() -> None:
    rng = np.random.default_rng(0)
    texts = [list(range(1, int(n) + 1)) for n in rng.integers(3, 60, size=200)]   # lengths 3..59
    short_first = sorted(range(200), key=lambda i: len(texts[i]))
    long_first = short_first[::-1]
    a = fill_token_budget([texts[i] for i in short_first], 512, 64)
    b = fill_token_budget([texts[i] for i in long_first], 512, 64)
    assert a["tokens"] == b["tokens"] == 512
    assert len(a["blocks"]) == len(b["blocks"]) == 8 and all(len(x) == 64 for x in a["blocks"] + b["blocks"])
    assert a["n_texts"] > b["n_texts"]                      # short texts: more of them fill the same budget
    flat = [t for blk in b["blocks"] for t in blk]
    assert flat[:len(texts[long_first[0]])] == texts[long_first[0]]   # the method's own order, first pick first


def test_a_budget_the_texts_cannot_fill_is_refused() -> None:
    with pytest.raises(GotdInputError, match="fewer than the budget"):
        fill_token_budget([[1, 2, 3]] * 10, 64, 32)
    with pytest.raises(GotdInputError, match="multiple of the block size"):
        fill_token_budget([[1] * 100], 100, 32)


def test_rank_depth_fills_the_budget_whatever_the_order() -> None:
    from gotd.testbed._warmup import rank_depth

    tokens = np.array([5, 50, 7, 40, 3, 90, 12])
    depth = rank_depth(tokens, 20)
    assert np.sort(tokens)[:depth].sum() >= 20 and np.sort(tokens)[:depth - 1].sum() < 20


# ---------------------------------------------------------------- the light warm-up

def test_light_recipe_holds_the_final_learning_rate_for_one_epoch() -> None:
    pre = LoopRecipe(epochs=3, lr=3e-3, final_lr_ratio=0.1, batch_size=16)
    light = light_recipe(pre)
    assert light.epochs == 1.0 and light.batch_size == 16 and light.schedule == "constant"
    assert all(math.isclose(lr_at(s, 10, light), 3e-4) for s in range(10))
    assert math.isclose(lr_at(99, 100, pre), pre.final_lr, rel_tol=1e-2)
    held = LoopRecipe(epochs=1.0, lr=1e-2, final_lr_ratio=0.1, hold_fraction=0.2)
    lrs = [lr_at(s, 100, held) for s in range(100)]
    assert lrs[5] == pytest.approx(1e-2, rel=0.02) and lrs[60] > lrs[79] > 1e-3   # warm-up, then cosine decay
    assert lrs[79] == pytest.approx(1e-3, rel=0.01)                                # decayed by 80% of the steps
    assert all(x == pytest.approx(held.final_lr) for x in lrs[80:])                 # then held at the final lr
    with pytest.raises(GotdInputError, match="hold_fraction"):
        LoopRecipe(hold_fraction=1.0)


def test_continuing_the_optimizer_state_moves_the_weights_less_than_a_fresh_adam_step() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(50, 16), torch.nn.Linear(16, 50))

    class LM(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def forward(self, input_ids, labels):  # noqa: ANN001, ANN201
            logits = self.net(input_ids)[:, :-1]
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 50), labels[:, 1:].reshape(-1))
            return type("Out", (), {"loss": loss})()

    lm = LM()
    blocks = torch.randint(0, 50, (64, 8))
    pre = LoopRecipe(epochs=4, lr=1e-2, batch_size=8, weight_decay=0.0)
    stats = train_loop(lm, blocks, pre, 0, progress=False, keep_optimizer=True)
    state = stats["optimizer_state"]
    start = [p.detach().clone() for p in lm.parameters()]
    light = light_recipe(pre, epochs=1 / 8)                  # one step

    def moved(opt_state):  # noqa: ANN001, ANN202
        import copy

        twin = copy.deepcopy(lm)
        train_loop(twin, blocks, light, 1, progress=False, optimizer_state=copy.deepcopy(opt_state))
        return sum(float((p.detach() - s).abs().sum()) for p, s in zip(twin.parameters(), start))

    assert moved(state) < 0.5 * moved(None)   # a fresh Adam step moves every weight by ~lr


def test_ngram_references_on_a_hand_checked_corpus() -> None:
    ref = ngram_reference_nll([[0, 1, 1, 1]], [[0, 1]], vocab_size=2)
    # unigram add-one: p(1) = (3 + 1) / (4 + 2); bigram after 0: c_v = 1, lam = 1/6, p = lam * 1 + (1-lam) * 4/6
    assert math.isclose(ref["unigram_nll"], -math.log(4 / 6))
    assert math.isclose(ref["bigram_nll"], -math.log(1 / 6 + 5 / 6 * 4 / 6))


# ---------------------------------------------------------------- intervals and Holm

def test_holm_matches_a_hand_computed_reference() -> None:
    p = [0.01, 0.04, 0.03, 0.2, 0.005]
    # sorted: 0.005*5=0.025, 0.01*4=0.04, 0.03*3=0.09, 0.04*2=0.08 -> 0.09 (monotone), 0.2*1 -> 0.2
    expected = [0.04, 0.09, 0.09, 0.2, 0.025]
    assert np.allclose(holm(p), expected)
    assert np.isnan(holm([0.01, float("nan")])[1]) and holm([0.01, float("nan")])[0] == 0.01


def test_the_verdict_interval_is_the_wider_of_bootstrap_and_t() -> None:
    assert wider_interval({"ci_low": -1, "ci_high": 1, "t_low": -3, "t_high": 2}) == (-3, 2)
    assert wider_interval({"ci_low": -4, "ci_high": 1, "t_low": -3, "t_high": 2}) == (-4, 1)
    assert wider_interval({"ci_low": -1, "ci_high": 1, "t_low": float("nan"), "t_high": float("nan")}) == (-1, 1)


def test_three_seeds_far_apart_get_the_t_interval_and_a_p_value() -> None:
    rng = np.random.default_rng(0)
    den = np.full(200, 10.0)
    a = Scores(rng.normal(50, 1, (3, 200)) + np.array([[0.0], [30.0], [-25.0]]), den, "nll")
    b = Scores(rng.normal(50, 1, (3, 200)), den, "nll")
    d = paired_difference(a, b, n_boot=500, seed=0)
    assert (d["wide_low"], d["wide_high"]) == (d["t_low"], d["t_high"])     # bootstrap's seed level is too narrow
    assert d["t_high"] - d["t_low"] > d["ci_high"] - d["ci_low"] and 0 < d["p_value"] <= 1


# ---------------------------------------------------------------- gates

def _paired(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame([{"scenario": "s", "metric": m, "method": a, "vs": b, "diff": d, "wide_low": lo,
                          "wide_high": hi, "p_value": p, "n_seeds": 5, "n_texts": 600}
                         for m, a, b, d, lo, hi, p in rows])


def test_gates_pass_only_when_the_controls_behave() -> None:
    good = _paired([("target_nll", "random", "base", 0.001, -0.002, 0.004, 0.5),
                    ("pool_nll", "random", "base", -0.001, -0.003, 0.001, 0.5),
                    ("target_nll", "oracle", "base", -0.05, -0.07, -0.03, 0.001),
                    ("accuracy", "scratch", "base", -0.08, -0.11, -0.05, 0.001)])
    gates = {g["gate"]: g["passed"] for g in control_gates(good, "s", null_margin=0.01, has_labels=True)}
    assert gates == {"null": True, "positive": True, "pretrained": True}
    bad = good.copy()
    bad.loc[0, ["diff", "wide_low", "wide_high"]] = [0.15, 0.12, 0.18]       # the null moved target NLL
    bad.loc[2, ["wide_high"]] = [0.01]                                       # the oracle did not help
    bad.loc[3, ["wide_high"]] = [0.02]                                       # pre-training did not help
    gates = {g["gate"]: g["passed"] for g in control_gates(bad, "s", null_margin=0.01, has_labels=True)}
    assert gates == {"null": False, "positive": False, "pretrained": False}
    within = good.copy()
    within.loc[1, ["diff", "wide_low", "wide_high"]] = [-0.004, -0.006, -0.002]   # excludes 0 but within margin
    assert control_gates(within, "s", null_margin=0.01, has_labels=False)[0]["passed"]


def test_plateau_gate_reads_the_last_fifth_of_the_curve() -> None:
    refs = {"bigram_nll": 5.0, "bigram_ppl": 148.0, "unigram_ppl": 600.0}
    flat = [{"step": s, "heldout_nll": 4.0 + 2.0 * math.exp(-s / 50)} for s in range(0, 1001, 100)]
    steep = [{"step": s, "heldout_nll": 6.0 - s / 500} for s in range(0, 1001, 100)]
    assert plateau_gate(flat, refs, tol=0.02)["passed"]
    assert not plateau_gate(steep, refs, tol=0.02)["passed"]
    assert not plateau_gate([{"step": s, "heldout_nll": 5.5} for s in range(0, 1001, 100)], refs, tol=0.02)["passed"]
    assert not plateau_gate([], refs, tol=0.02)["passed"]


def test_primary_calls_use_holm_and_the_metric_direction() -> None:
    paired = _paired([("accuracy", "gotd", "random", 0.03, 0.01, 0.05, 0.004),
                      ("accuracy", "knn", "gotd", 0.01, -0.02, 0.04, 0.03),
                      ("target_nll", "gotd", "base", -0.05, -0.07, -0.03, 0.02)])
    table = primary_table(paired, ["s:accuracy:gotd:random", "s:accuracy:gotd:knn", "s:target_nll:gotd:base",
                                   "s:accuracy:gotd:dsir"])
    calls = dict(zip(table["comparison"], table["call"]))
    assert calls["s:accuracy:gotd:random"] == "better"               # 0.004 * 4 = 0.016 <= 0.05
    assert calls["s:accuracy:gotd:knn"] == "not resolved"            # flipped from knn vs gotd; interval spans 0
    assert table.set_index("comparison").loc["s:accuracy:gotd:knn", "diff"] == pytest.approx(-0.01)
    assert calls["s:target_nll:gotd:base"] == "not resolved"         # 0.02 * 3 = 0.06 > 0.05 after Holm
    assert calls["s:accuracy:gotd:dsir"] == "not measured"
    with pytest.raises(GotdInputError, match="scenario:metric:method:vs"):
        primary_table(paired, ["task:accuracy:gotd"])


def test_readme_tables_are_written_from_the_compare_files(tmp_path) -> None:
    import json

    from gotd.testbed._figures import markdown_summary

    paired = _paired([("accuracy", "gotd", "base", 0.02, -0.01, 0.05, 0.2),
                      ("accuracy", "scratch", "base", -0.01, -0.03, 0.01, 0.3)]).assign(budget=24576, split="test")
    paired.to_csv(tmp_path / "paired.csv", index=False)
    primary_table(paired, ["s:accuracy:gotd:base"]).to_csv(tmp_path / "primary.csv", index=False)
    (tmp_path / "verdict.json").write_text(json.dumps({
        "gates": [{"scenario": "s", "gate": "pretrained", "passed": False, "detail": "scratch ties"}],
        "primary_metric": {"s": "accuracy"}}))
    text = markdown_summary(tmp_path)
    assert "| s | pretrained | **FAILED** | scratch ties |" in text
    assert "| s:accuracy:gotd:base | +2.00 pts | [-1.00, +5.00] | 0.2 | not resolved |" in text
    assert "| s | accuracy | scratch | 24576 | -1.00 | [-3.00, +1.00] |" in text


def test_rare_domain_share_is_reported_for_the_partial_scenario_only() -> None:
    from gotd.testbed._figures import makeup_table
    from gotd.testbed._stages import rare_share_sentences

    rows = [{"scenario": scen, "method": m, "budget": 10, "seed": 0, "domain": d, "count": c}
            for scen in ("task", "partial") for m, (d, c) in (("gotd", ("tweets", 3)), ("gotd", ("wiki", 7)),
                                                             ("random", ("wiki", 10)))]
    makeup = makeup_table(pd.DataFrame(rows))
    report = {"rare": "tweets", "rare_share": 0.02}
    preps = [{"scenario": "task", "report": {**report, "scenario": "task"}},     # keeps the pool's rare domain
             {"scenario": "partial", "report": {**report, "scenario": "partial"}}]
    sentences = rare_share_sentences(makeup, preps, {"task": "Task", "partial": "Partial"})
    assert len(sentences) == 1 and sentences[0].startswith("Partial") and "gotd 30%" in sentences[0]
