"""The compare stage's headline figure: the primary metric against budget, and the paired differences to GOT-D."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gotd.plots import PngFigure, colour
from gotd.stages._paired import methods_in_order


def headline_figure(levels: pd.DataFrame, paired: pd.DataFrame, *, split: str = "test",
                    pool_sizes: Mapping[str, int] | None = None, labels: Mapping[str, str] | None = None,
                    metric_name: str = "target perplexity", order: list[str] | None = None) -> Figure:
    """One row per scenario: (left) ``metric_name`` vs budget, one line per method, 95% intervals as bars,
    the un-warmed model as a dashed line with its interval as a band; (right) method minus GOT-D on the same
    texts and seeds with the paired 95% bootstrap interval, a zero line, and a y-axis fitted to the intervals.
    """
    found = list(dict.fromkeys(levels["scenario"]))
    scenarios = [s for s in (order or []) if s in found] + [s for s in found if s not in (order or [])]
    fig = PngFigure(figsize=(11, 3.3 * max(1, len(scenarios))), layout="constrained")
    axes = fig.subplots(max(1, len(scenarios)), 2, squeeze=False)
    for row, scen in enumerate(scenarios):
        lv = levels[(levels["scenario"] == scen) & (levels["split"] == split)]
        pd_ = paired[(paired["scenario"] == scen) & (paired["split"] == split) & (paired["vs"] == "gotd")] \
            if not paired.empty else paired
        ax, bx = axes[row]
        budgets = sorted(b for b in lv["budget"].unique() if b > 0)
        methods = methods_in_order([m for m in lv["method"].unique() if m != "base"])
        offsets = np.linspace(-0.06, 0.06, max(1, len(methods)))
        base = lv[lv["method"] == "base"]
        if not base.empty:
            b = base.iloc[0]
            ax.axhline(b["mean"], color=colour("base"), ls="--", lw=1, label="un-warmed")
            ax.axhspan(b["ci_low"], b["ci_high"], color=colour("base"), alpha=0.12)
        for i, m in enumerate(methods):
            s = lv[lv["method"] == m].sort_values("budget")
            x = np.asarray(s["budget"], float) * 10 ** offsets[i]
            ax.errorbar(x, s["mean"], yerr=[s["mean"] - s["ci_low"], s["ci_high"] - s["mean"]], marker="o", ms=4,
                        capsize=3, color=colour(m, i), lw=2.2 if m == "gotd" else 1.2, label=m)
            if m == "gotd" or pd_.empty:
                continue
            d = pd_[pd_["method"] == m].sort_values("budget")
            xd = np.asarray(d["budget"], float) * 10 ** offsets[i]
            bx.errorbar(xd, d["diff"], yerr=[d["diff"] - d["ci_low"], d["ci_high"] - d["diff"]], marker="o", ms=4,
                        capsize=3, color=colour(m, i), label=m)
        bx.axhline(0, color="black", lw=1)
        n_pool = (pool_sizes or {}).get(scen)
        for a in (ax, bx):
            a.set_xscale("log")
            a.set_xticks(budgets)
            a.set_xticklabels([f"{b}\n({100 * b / n_pool:.2g}%)" if n_pool else str(b) for b in budgets])
            a.minorticks_off()
            a.set_xlabel("budget: selected chunks (share of the pool)")
        label = (labels or {}).get(scen, scen)
        ax.set_title(f"{label}: {metric_name} (lower is better)")
        ax.set_ylabel("mean over seeds, 95% CI")
        bx.set_title("method minus GOT-D, paired (above 0: GOT-D better)")
        bx.set_ylabel("paired difference, 95% CI")
        ax.legend(fontsize=8, ncols=2)
    return fig
