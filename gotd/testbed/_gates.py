"""The gates that certify the testbed before it ranks anything, and the named primary comparisons.

Every gate is computed from the run's own numbers and written into the verdict; a scenario with a failed
gate ranks nothing (its first-screen sentence says the instrument cannot resolve the question there).

``plateau``     pre-training reached a plateau: the held-out pool NLL fell by at most ``plateau_tol``
                nats/token over the last fifth of the pre-training steps, and ends below the bigram
                reference (the LM learnt more than word pairs of its pool);
``null``        warming up on random pool chunks (the pre-training distribution itself) moves neither the
                target NLL nor the held-out pool NLL: each change's interval (the wider of bootstrap and t)
                contains 0 or lies within +-``null_margin`` nats/token;
``positive``    warming up on the target's own unlabelled texts (oracle TAPT) lowers the target NLL: the
                interval of its change lies below 0;
``pretrained``  (scenarios with labels) after fine-tuning on the labels, the pre-trained model is more
                accurate than a randomly initialised one of the same size: the interval of the accuracy
                difference lies above 0.

Intervals here are paired over the same texts and seeds (:func:`gotd.stages.compare.paired_difference`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from gotd.errors import GotdInputError
from gotd.stages.compare import holm

GATE_ORDER = ("plateau", "null", "positive", "pretrained")


def plateau_gate(curve: Sequence[Mapping[str, float]], references: Mapping[str, float], *,
                 tol: float) -> dict[str, Any]:
    """The plateau gate from a pre-training's held-out curve (``step``, ``heldout_nll``) and n-gram references."""
    if len(curve) < 3:
        return {"gate": "plateau", "passed": False,
                "detail": "no held-out learning curve was recorded (set evaluate_every > 0 in the inputs stage)"}
    steps = np.array([c["step"] for c in curve], dtype=float)
    nll = np.array([c["heldout_nll"] for c in curve], dtype=float)
    start = steps[-1] - 0.2 * steps[-1]
    before = nll[np.searchsorted(steps, start, side="right") - 1]   # the last point at or before 80% of training
    drop = float(before - nll[-1])
    bigram = float(references.get("bigram_nll", np.inf))
    passed = drop <= tol and nll[-1] < bigram
    return {"gate": "plateau", "passed": bool(passed), "drop_last_fifth": drop, "tol": tol,
            "final_heldout_nll": float(nll[-1]), "final_heldout_ppl": float(np.exp(nll[-1])),
            "bigram_ppl": float(references.get("bigram_ppl", np.nan)),
            "unigram_ppl": float(references.get("unigram_ppl", np.nan)),
            "detail": (f"held-out pool NLL fell {drop:.4f} nats/token over the last fifth of pre-training "
                       f"(gate: <= {tol}); final perplexity {np.exp(nll[-1]):.1f} vs bigram "
                       f"{references.get('bigram_ppl', float('nan')):.1f} and unigram "
                       f"{references.get('unigram_ppl', float('nan')):.1f}")}


def _row(paired: pd.DataFrame, scenario: str, metric: str, method: str, vs: str) -> pd.Series | None:
    hit = paired[(paired["scenario"] == scenario) & (paired["metric"] == metric) & (paired["method"] == method)
                 & (paired["vs"] == vs)]
    return None if hit.empty else hit.iloc[0]


def _interval(r: pd.Series) -> str:
    return f"{r['diff']:+.4f} [{r['wide_low']:+.4f}, {r['wide_high']:+.4f}]"


def control_gates(paired: pd.DataFrame, scenario: str, *, null_margin: float, has_labels: bool,
                  base: str = "base") -> list[dict[str, Any]]:
    """The null, positive and pretrained gates of one scenario from the paired table (see the module doc).

    ``paired`` has the compare stage's columns plus ``wide_low``/``wide_high`` (the wider interval);
    metrics ``target_nll`` and ``pool_nll`` (nats/token) and, with labels, ``accuracy``.
    """
    out = []
    parts, ok = [], True
    for metric, what in (("target_nll", "target NLL"), ("pool_nll", "held-out pool NLL")):
        r = _row(paired, scenario, metric, "random", base)
        if r is None:
            parts.append(f"{what}: not measured")
            ok = False
            continue
        contains = r["wide_low"] <= 0 <= r["wide_high"]
        within = -null_margin <= r["wide_low"] and r["wide_high"] <= null_margin
        ok &= bool(contains or within)
        parts.append(f"{what} change {_interval(r)} nats/token")
    out.append({"gate": "null", "passed": bool(ok),
                "detail": "random pool chunks vs no warm-up: " + "; ".join(parts)
                          + f" (gate: interval contains 0 or lies within +-{null_margin})"})
    r = _row(paired, scenario, "target_nll", "oracle", base)
    out.append({"gate": "positive", "passed": bool(r is not None and r["wide_high"] < 0),
                "detail": ("oracle (the target's own texts) vs no warm-up: target NLL change "
                           + (_interval(r) + " nats/token" if r is not None else "not measured")
                           + " (gate: interval below 0)")})
    if has_labels:
        r = _row(paired, scenario, "accuracy", "scratch", base)      # scratch minus pre-trained
        out.append({"gate": "pretrained", "passed": bool(r is not None and r["wide_high"] < 0),
                    "detail": ("pre-trained vs randomly initialised, both fine-tuned on the labels: accuracy "
                               "difference " + (f"{-100 * r['diff']:+.1f} points [{-100 * r['wide_high']:+.1f}, "
                                                f"{-100 * r['wide_low']:+.1f}]" if r is not None else "not measured")
                               + " (gate: interval above 0)")})
    return out


def parse_comparison(text: str) -> dict[str, str]:
    """``"scenario:metric:method:vs"`` -> its four parts (one primary comparison named in the config)."""
    parts = str(text).split(":")
    if len(parts) != 4 or not all(parts):
        raise GotdInputError(f"primary comparison {text!r} must read scenario:metric:method:vs, e.g. "
                             "task:accuracy:gotd:random")
    return dict(zip(("scenario", "metric", "method", "vs"), parts))


def primary_table(paired: pd.DataFrame, comparisons: Sequence[str], *, alpha: float = 0.05) -> pd.DataFrame:
    """The named primary comparisons with Holm-adjusted p-values and a call for each.

    A comparison ``method`` vs ``vs`` is "better"/"worse" only when its Holm-adjusted p-value (t-test of the
    per-seed differences, over the comparisons named) is at most ``alpha`` and the wider interval excludes
    0; otherwise "not resolved". A comparison that was not measured is kept with NaN and "not measured"
    (it still counts in Holm's family). ``lower_is_better`` follows the metric (NLLs lower, accuracy higher).
    """
    rows = []
    for text in comparisons:
        c = parse_comparison(text)
        r = _row(paired, c["scenario"], c["metric"], c["method"], c["vs"])
        flip = r is None and _row(paired, c["scenario"], c["metric"], c["vs"], c["method"]) is not None
        if flip:   # only the other direction was computed: negate it
            q = _row(paired, c["scenario"], c["metric"], c["vs"], c["method"])
            r = pd.Series({"diff": -q["diff"], "wide_low": -q["wide_high"], "wide_high": -q["wide_low"],
                           "p_value": q["p_value"], "n_seeds": q["n_seeds"], "n_texts": q["n_texts"]})
        base = {"comparison": text, **c}
        if r is None:
            rows.append({**base, "diff": np.nan, "wide_low": np.nan, "wide_high": np.nan, "p_value": np.nan,
                         "n_seeds": 0, "n_texts": 0})
        else:
            rows.append({**base, **{k: float(r[k]) for k in ("diff", "wide_low", "wide_high", "p_value")},
                         "n_seeds": int(r["n_seeds"]), "n_texts": int(r["n_texts"])})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    p = table["p_value"].to_numpy(float)
    # an unmeasured comparison stays in Holm's family and is never significant
    p = np.where(np.isnan(p) & table["n_seeds"].eq(0).to_numpy(), 1.0, p)
    table["p_holm"] = holm(p)
    lower_better = table["metric"].str.contains("nll")
    sign = np.where(lower_better, -1.0, 1.0)     # > 0: the method is better
    good_low = np.where(lower_better, -table["wide_high"], table["wide_low"])
    good_high = np.where(lower_better, -table["wide_low"], table["wide_high"])
    sig = table["p_holm"] <= alpha
    call = np.where(table["n_seeds"] == 0, "not measured",
                    np.where(sig & (good_low > 0), "better", np.where(sig & (good_high < 0), "worse", "not resolved")))
    table["call"] = call
    table["advantage"] = sign * table["diff"]
    return table
