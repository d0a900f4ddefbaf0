"""The testbed's selection make-up table: each pool domain's share of every method's selection."""
from __future__ import annotations

import pandas as pd


def makeup_table(makeup: pd.DataFrame) -> pd.DataFrame:
    """Share of each domain in each method's selection (mean over seeds), one row per scenario x method x budget."""
    if makeup.empty:
        return makeup
    tot = makeup.groupby(["scenario", "method", "budget", "seed"])["count"].transform("sum")
    share = makeup.assign(share=makeup["count"] / tot)
    per_seed = share.pivot_table(index=["scenario", "budget", "method", "seed"], columns="domain", values="share",
                                 aggfunc="sum", fill_value=0.0)   # a domain a seed did not pick counts as 0
    return per_seed.groupby(level=["scenario", "budget", "method"]).mean().round(3)
