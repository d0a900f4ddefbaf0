"""The testbed's tables and figures: selection make-up, the headline effect plot, the pre-training curve and
OT(mixture, target) against the change in target NLL."""
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


def _figure(w: float, h: float, rows: int = 1, cols: int = 1):  # noqa: ANN202
    from gotd.plots import PngFigure

    fig = PngFigure(figsize=(w, h), layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=False)


def effect_figure(paired: pd.DataFrame, levels: pd.DataFrame, primary_metric: dict[str, str],
                  certified: dict[str, bool], *, labels: dict[str, str], order: list[str]):  # noqa: ANN201
    """The headline: per scenario, every method's change against no warm-up in the scenario's primary metric,
    with the wider 95% interval; a scenario whose gates failed is drawn grey and titled "not certified"."""
    from gotd.plots import colour

    fig, axes = _figure(5.2 * max(1, len(order)), 3.6, 1, max(1, len(order)))
    for ax, scen in zip(axes[0], order):
        metric = primary_metric.get(scen, "target_nll")
        sub = paired[(paired["scenario"] == scen) & (paired["metric"] == metric) & (paired["vs"] == "base")]
        methods = list(dict.fromkeys(sub["method"]))
        scale = 100.0 if metric == "accuracy" else 1.0
        for i, m in enumerate(methods):
            r = sub[sub["method"] == m].iloc[0]
            c = colour(str(m), i) if certified.get(scen) else "0.6"
            ax.errorbar(i, scale * r["diff"], yerr=[[scale * (r["diff"] - r["wide_low"])],
                                                    [scale * (r["wide_high"] - r["diff"])]],
                        fmt="o", capsize=4, color=c)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(range(len(methods)), methods, rotation=30)
        unit = "points" if metric == "accuracy" else ("nats/text" if metric == "label_nll" else "nats/token")
        ax.set_ylabel(f"{metric} minus no warm-up ({unit})")
        status = "" if certified.get(scen) else " - NOT CERTIFIED (a gate failed)"
        ax.set_title(f"{labels.get(scen, scen)}{status}", fontsize=9)
    return fig


def curve_figure(preps: list[dict]):  # noqa: ANN201
    """Pre-training: held-out pool perplexity against tokens seen, with the unigram and bigram references."""
    import numpy as np

    fig, axes = _figure(5.5, 3.4)
    ax = axes[0, 0]
    seen = set()
    for prep in preps:
        man = prep["lm_manifest"]
        if man["key"] in seen:
            continue
        seen.add(man["key"])
        curve = man["training"].get("curve") or []
        if curve:
            ax.plot([c["tokens"] for c in curve], [np.exp(c["heldout_nll"]) for c in curve], "o-", ms=3,
                    label="tiny LM, held-out pool")
        refs = man.get("references") or {}
        for name, style in (("unigram_ppl", ":"), ("bigram_ppl", "--")):
            if name in refs:
                ax.axhline(refs[name], ls=style, color="0.4", label=name.replace("_ppl", " reference"))
    ax.set_yscale("log")
    ax.set_xlabel("pre-training tokens seen")
    ax.set_ylabel("perplexity (log scale)")
    ax.legend(fontsize=8)
    ax.set_title("Pre-training on the pool: held-out learning curve", fontsize=9)
    return fig


def ot_outcome_table(prepared_dirs: list, warmup_dirs: list, *, paired: object = None,
                     nll: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per cell (scenario, method, budget, seed): OT(mixture, target) and the change in target NLL
    (nats/token, token-weighted) against the un-warmed model at the same seed."""
    from pathlib import Path

    frames = [pd.read_csv(Path(d) / "exposure.csv") for d in warmup_dirs if (Path(d) / "exposure.csv").is_file()]
    if not frames or nll is None or nll.empty:
        return pd.DataFrame()
    exp = pd.concat(frames, ignore_index=True)
    if "ot_mixture_target" not in exp.columns:
        return pd.DataFrame()
    test = nll[nll["split"] == "test"]
    per = test.groupby(["scenario", "method", "budget", "seed"])[["nll_sum", "n_tokens"]].sum()
    per = (per["nll_sum"] / per["n_tokens"]).rename("target_nll").reset_index()
    base = per[per["method"] == "base"][["scenario", "seed", "target_nll"]].rename(columns={"target_nll": "base"})
    cells = exp.merge(per, on=["scenario", "method", "budget", "seed"]).merge(base, on=["scenario", "seed"])
    cells["target_nll_change"] = cells["target_nll"] - cells["base"]
    return cells[["scenario", "method", "budget", "seed", "ot_mixture_target", "target_nll_change"]].rename(
        columns={"ot_mixture_target": "ot_distance"})


def ot_outcome_figure(table: pd.DataFrame):  # noqa: ANN201
    """OT(mixture, target) against the change in target NLL, one point per cell, one panel per scenario."""
    from gotd.plots import colour

    scens = list(dict.fromkeys(table["scenario"]))
    fig, axes = _figure(4.6 * len(scens), 3.4, 1, len(scens))
    for ax, scen in zip(axes[0], scens):
        sub = table[table["scenario"] == scen]
        for i, (m, g) in enumerate(sub.groupby("method", sort=False)):
            ax.scatter(g["ot_distance"], g["target_nll_change"], s=16, color=colour(str(m), i), label=m)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xlabel("OT(mixture, target) (cost units)")
        ax.set_ylabel("change in target NLL (nats/token)")
        ax.set_title(scen, fontsize=9)
        ax.legend(fontsize=7)
    return fig


def markdown_summary(folder: object) -> str:
    """The README's tables, written from a compare folder's files: the gates, then the primary comparisons,
    then every method's change against no warm-up in each scenario's primary metric (with the wider 95%
    interval), so that the README quotes the run and nothing else."""
    import json
    from pathlib import Path

    folder = Path(folder)
    verdict = json.loads((folder / "verdict.json").read_text(encoding="utf-8"))
    paired = pd.read_csv(folder / "paired.csv")
    lines = ["| scenario | gate | outcome | numbers |", "|---|---|---|---|"]
    lines += [f"| {g['scenario']} | {g['gate']} | {'passed' if g['passed'] else '**FAILED**'} | {g['detail']} |"
              for g in verdict.get("gates", [])]
    out = ["\n".join(lines)]
    prim_path = folder / "primary.csv"
    if prim_path.is_file() and prim_path.stat().st_size > 1:
        prim = pd.read_csv(prim_path)
        rows = ["| comparison | effect | 95% interval (wider) | p (Holm) | call |", "|---|---|---|---|---|"]
        for r in prim.itertuples():
            scale, unit = (100.0, " pts") if r.metric == "accuracy" else (1.0, "")
            fmt = (lambda x: f"{scale * x:+.2f}") if scale > 1 else (lambda x: f"{x:+.4f}")  # noqa: E731
            rows.append(f"| {r.comparison} | {fmt(r.diff)}{unit} | [{fmt(r.wide_low)}, {fmt(r.wide_high)}] | "
                        f"{r.p_holm:.3g} | {r.call} |")
        out.append("\n".join(rows))
    metrics = verdict.get("primary_metric") or {}
    rows = ["| scenario | metric | method | budget (tokens) | minus no warm-up | 95% interval (wider) |",
            "|---|---|---|---|---|---|"]
    for scen, metric in metrics.items():
        for extra in dict.fromkeys((metric, "label_nll" if metric == "accuracy" else "pool_nll", "target_nll")):
            sub = paired[(paired["scenario"] == scen) & (paired["metric"] == extra) & (paired["vs"] == "base")]
            scale = 100.0 if extra == "accuracy" else 1.0
            for r in sub.itertuples():
                fmt = (lambda x: f"{scale * x:+.2f}") if scale > 1 else (lambda x: f"{x:+.4f}")  # noqa: E731
                rows.append(f"| {scen} | {extra} | {r.method} | {r.budget} | {fmt(r.diff)} | [{fmt(r.wide_low)}, "
                            f"{fmt(r.wide_high)}] |")
    out.append("\n".join(rows))
    return "\n\n".join(out) + "\n"
