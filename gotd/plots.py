"""The figures the notebooks and reports share. Each function takes data and returns a matplotlib Figure.

Figures are built as :class:`PngFigure`, a :class:`matplotlib.figure.Figure` that shows itself as an
image in a notebook, directly (no pyplot state), so batch runs do not accumulate open figures; save one
with ``fig.savefig`` or :meth:`gotd.notebook_io.RunDir.save_figure`.
Methods keep one colour across every figure (:data:`METHOD_COLOURS`).
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import matplotlib
import matplotlib.colors
import matplotlib.style
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gotd.errors import GotdInputError

METHOD_COLOURS = {
    "gotd": "#d62728", "gotd_contrast": "#ff7f0e", "matching": "#1f77b4", "knn": "#2ca02c",
    "dsir": "#9467bd", "tsds": "#8c564b", "random": "#7f7f7f", "(pool)": "#c7c7c7", "pool": "#c7c7c7", "target": "#000000",
    "base": "#7f7f7f",
}
"""A fixed colour per method; other names get colours from the tab10 cycle."""

_STYLE = "seaborn-v0_8-whitegrid"


class PngFigure(Figure):
    """A matplotlib Figure that IPython displays as a PNG image: ``fig`` as a cell's last line or ``display(fig)``.

    IPython shows an object through the formatter registered for its type or its ``_repr_png_`` method.
    For a plain Figure the only PNG formatter is the one the inline backend registers when pyplot first
    loads it; figures made without pyplot (so that batch runs do not collect open figures in pyplot's
    global list) would otherwise show as the text ``<Figure size ...>`` in JupyterLab, in executed
    notebooks and in their HTML. Everything else, saving included, is matplotlib's Figure.
    """

    def _repr_png_(self) -> bytes | None:
        """The figure as PNG bytes at its own dpi, trimmed to its contents; None when it has no axes."""
        if not self.axes:
            return None
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()


@contextlib.contextmanager
def _styled() -> Iterator[None]:
    style = _STYLE if _STYLE in matplotlib.style.available else "default"
    with matplotlib.style.context(style), matplotlib.rc_context({"figure.dpi": 100, "axes.titlesize": 11}):
        yield


def colour(name: str, position: int = 0) -> str:
    """The colour of a method name; names without a fixed colour take the tab10 colours no method has."""
    if name in METHOD_COLOURS:
        return METHOD_COLOURS[name]
    taken = {c.lower() for c in METHOD_COLOURS.values()}
    free = [c for c in (matplotlib.colors.to_hex(matplotlib.colormaps["tab10"](i)) for i in range(10)) if c not in taken]
    return free[position % len(free)]


def _grid(n_panels: int, *, ncols: int = 3, size: tuple[float, float] = (4.0, 3.2)) -> tuple[Figure, list[Any]]:
    if n_panels < 1:
        raise GotdInputError("nothing to plot: pass at least one method or series")
    ncols = min(ncols, n_panels)
    nrows = -(-n_panels // ncols)
    fig = PngFigure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise GotdInputError(f"{what}: the table lacks column(s) {missing}; it has {list(frame.columns)}")


# ---------------------------------------------------------------------------------------------------
# selections
# ---------------------------------------------------------------------------------------------------


def score_distributions(scores: Mapping[str, np.ndarray], selected: Mapping[str, np.ndarray], *,
                        score_names: Mapping[str, str] | None = None, bins: int = 50) -> Figure:
    """One panel per method: histogram of every pool row's score, the selected rows' scores on top.

    Parameters
    ----------
    scores : mapping of method to array (n,)
        Every pool row's score (e.g. calibrated gradients for ``gotd``).
    selected : mapping of method to int array
        The selected rows of each method.
    score_names : mapping, optional
        Axis label per method (e.g. ``"calibrated gradient (cost units)"``).
    """
    names = [m for m in scores if scores[m] is not None]
    with _styled():
        fig, axes = _grid(len(names))
        for i, (ax, name) in enumerate(zip(axes, names)):
            values = np.asarray(scores[name], dtype=float)
            edges = np.histogram_bin_edges(values, bins=bins)
            ax.hist(values, bins=edges, color=colour("(pool)"), label="pool")
            if name in selected:
                ax.hist(values[np.asarray(selected[name])], bins=edges, color=colour(name, i), label="selected")
            ax.set_title(name)
            ax.set_xlabel((score_names or {}).get(name, "score"))
            ax.set_ylabel("rows")
            ax.legend(fontsize=8)
        fig.suptitle("Scores of every candidate and of the selected ones")
    return fig


def domain_makeup(shares: pd.DataFrame, *, title: str = "Domain make-up of each selection") -> Figure:
    """Stacked horizontal bars: each row of ``shares`` (a selection) split by domain (columns, sum 1).

    Use :func:`gotd.analysis.domain_shares`; its ``"(pool)"`` row is the reference.
    """
    if shares.empty:
        raise GotdInputError("domain_makeup: the shares table is empty")
    with _styled():
        fig = PngFigure(figsize=(8, 0.5 * len(shares) + 1.5), layout="constrained")
        ax = fig.subplots()
        left = np.zeros(len(shares))
        cmap = matplotlib.colormaps["tab10"] if len(shares.columns) <= 10 else matplotlib.colormaps["tab20"]
        for j, domain in enumerate(shares.columns):
            values = shares[domain].to_numpy(dtype=float)
            ax.barh(range(len(shares)), values, left=left, color=cmap(j % cmap.N), label=str(domain))
            for y, (x0, w) in enumerate(zip(left, values)):
                if w >= 0.08:
                    ax.text(x0 + w / 2, y, f"{w:.0%}", ha="center", va="center", fontsize=8)
            left += values
        ax.set_yticks(range(len(shares)), [str(i) for i in shares.index])
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of the selection")
        ax.legend(ncols=min(5, len(shares.columns)), loc="upper center", bbox_to_anchor=(0.5, -0.15 - 0.02 * len(shares)),
                  fontsize=8, frameon=False)
        ax.set_title(title)
    return fig


def projection(pool_xy: np.ndarray, target_xy: np.ndarray, selections: Mapping[str, np.ndarray], *,
               explained: Sequence[float] | None = None, max_pool_points: int = 5000, seed: int = 0) -> Figure:
    """One panel per method: the pool (grey), the target (black) and the selected rows, in 2-D.

    ``pool_xy`` and ``target_xy`` come from :func:`gotd.analysis.pca_2d`. Pools larger than
    ``max_pool_points`` are drawn as a seeded sample of that many background points (the selected rows are
    always all drawn); the title says so.
    """
    pool_xy, target_xy = np.asarray(pool_xy), np.asarray(target_xy)
    background = np.arange(len(pool_xy))
    if len(pool_xy) > max_pool_points:
        background = np.random.default_rng(seed).choice(len(pool_xy), max_pool_points, replace=False)
    with _styled():
        fig, axes = _grid(len(selections))
        for i, (ax, (name, idx)) in enumerate(zip(axes, selections.items())):
            ax.scatter(*pool_xy[background].T, s=4, color=colour("(pool)"), label="pool", rasterized=True)
            ax.scatter(*target_xy.T, s=10, marker="x", color=colour("target"), label="target", linewidths=0.8)
            ax.scatter(*pool_xy[np.asarray(idx)].T, s=10, color=colour(name, i), label="selected")
            ax.set_title(name)
            if explained is not None:
                ax.set_xlabel(f"PC1 ({explained[0]:.0%} of variance)")
                ax.set_ylabel(f"PC2 ({explained[1]:.0%})")
            ax.legend(fontsize=7, markerscale=1.5)
        note = f" (pool: {len(background)} of {len(pool_xy)} points drawn)" if len(background) < len(pool_xy) else ""
        fig.suptitle("Pool, target and selections, projected to 2-D" + note)
    return fig


def overlap_heatmap(overlap: pd.DataFrame, *, title: str = "Overlap between selections") -> Figure:
    """Heat map of a square overlap table (:func:`gotd.analysis.overlap_matrix`), values annotated."""
    values = overlap.to_numpy(dtype=float)
    if values.ndim != 2 or values.shape[0] != values.shape[1]:
        raise GotdInputError(f"overlap_heatmap needs a square table, got shape {values.shape}")
    with _styled():
        side = 1.0 + 0.8 * len(overlap)
        fig = PngFigure(figsize=(side + 1.2, side), layout="constrained")
        ax = fig.subplots()
        image = ax.imshow(values, vmin=0, vmax=1, cmap="viridis")
        ax.grid(False)
        ax.set_xticks(range(len(overlap)), [str(c) for c in overlap.columns], rotation=45, ha="right")
        ax.set_yticks(range(len(overlap)), [str(i) for i in overlap.index])
        for (r, c), v in np.ndenumerate(values):
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", color="white" if v < 0.6 else "black", fontsize=8)
        fig.colorbar(image, ax=ax, label="share of rows in common")
        ax.set_title(title)
    return fig


def mixture_distances(table: pd.DataFrame) -> Figure:
    """Change of OT(mixture, target) per method and mixing weight (:func:`gotd.analysis.mixture_ot_distances`).

    Bars below zero: adding the selection brings the training mixture closer to the target.
    """
    _require_columns(table, ["method", "lam", "change"], "mixture_distances")
    data = table[table["method"] != "(pool)"]
    lams = sorted(data["lam"].unique())
    methods = list(dict.fromkeys(data["method"]))
    with _styled():
        fig = PngFigure(figsize=(1.6 + 1.1 * len(methods) * max(1, len(lams)) / 2, 3.4), layout="constrained")
        ax = fig.subplots()
        width = 0.8 / max(1, len(lams))
        for j, lam in enumerate(lams):
            sub = data[data["lam"] == lam].set_index("method").reindex(methods)
            ax.bar(np.arange(len(methods)) + (j - (len(lams) - 1) / 2) * width, sub["change"], width,
                   color=[colour(m, i) for i, m in enumerate(methods)], alpha=0.45 + 0.55 * (j + 1) / len(lams),
                   label=f"lam = {lam:g}", edgecolor="black", linewidth=0.4)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(methods)), methods)
        ax.set_ylabel("OT(mixture, target) - OT(pool, target)")
        ax.legend(fontsize=8)
        ax.set_title("Does adding the selection move the pool toward the target?")
    return fig


# ---------------------------------------------------------------------------------------------------
# the 2-D toy
# ---------------------------------------------------------------------------------------------------


def toy_plan(pool: np.ndarray, target: np.ndarray, plan: np.ndarray, *, max_links: int = 400,
             pool_cluster: np.ndarray | None = None) -> Figure:
    """The OT plan on 2-D points: a line for each of the ``max_links`` heaviest pool-target pairs.

    Line opacity is proportional to the transported mass. ``plan`` is the (n, m) coupling.
    """
    pool, target, plan = np.asarray(pool), np.asarray(target), np.asarray(plan)
    if plan.shape != (len(pool), len(target)):
        raise GotdInputError(f"plan has shape {plan.shape}, expected ({len(pool)}, {len(target)})")
    flat = np.argsort(plan, axis=None)[::-1][:max_links]
    rows, cols = np.unravel_index(flat, plan.shape)
    mass = plan[rows, cols] / plan[rows, cols].max()
    with _styled():
        fig = PngFigure(figsize=(6.5, 4.2), layout="constrained")
        ax = fig.subplots()
        for r, c, w in zip(rows, cols, mass):
            ax.plot([pool[r, 0], target[c, 0]], [pool[r, 1], target[c, 1]], color="#555555", alpha=0.05 + 0.6 * w,
                    linewidth=0.7)
        pool_colours = colour("(pool)") if pool_cluster is None else np.where(np.asarray(pool_cluster) == 1,
                                                                               "#8c564b", "#1f77b4")
        ax.scatter(*pool.T, s=8, c=pool_colours, label="pool", zorder=3)
        ax.scatter(*target.T, s=22, marker="x", color=colour("target"), label="target", zorder=4)
        ax.set_aspect("equal", adjustable="datalim")
        ax.legend(fontsize=8)
        ax.set_title(f"Entropic OT plan: the {len(rows)} heaviest pool-target links")
    return fig


def potential_map(xx: np.ndarray, yy: np.ndarray, values: np.ndarray, pool: np.ndarray, target: np.ndarray, *,
                  selected: np.ndarray | None = None, title: str = "Gradient of OT w.r.t. adding mass at a point",
                  ax: Any = None) -> Figure:
    """Heat map of a potential over a 2-D grid with the points on top.

    ``values`` has the grid's shape; for GOT-D it is the calibrated c-transform of the target potential
    (see the 00 notebook): negative where adding a candidate brings the pool closer to the target.
    With ``ax`` the map is drawn into an existing axes and its figure is returned.
    """
    values = np.asarray(values)
    if values.shape != np.shape(xx) or values.shape != np.shape(yy):
        raise GotdInputError(f"values {values.shape} must have the grid's shape {np.shape(xx)}")
    with _styled():
        if ax is None:
            fig = PngFigure(figsize=(6.5, 4.2), layout="constrained")
            ax = fig.subplots()
        else:
            fig = ax.figure
        limit = float(np.nanmax(np.abs(values)))
        mesh = ax.pcolormesh(xx, yy, values, cmap="RdBu_r", vmin=-limit, vmax=limit, shading="auto")
        ax.grid(False)
        fig.colorbar(mesh, ax=ax, label="gradient (cost units)")
        ax.scatter(*np.asarray(pool).T, s=5, color="#444444", label="pool")
        ax.scatter(*np.asarray(target).T, s=18, marker="x", color="black", label="target")
        if selected is not None:
            ax.scatter(*np.asarray(pool)[np.asarray(selected)].T, s=22, facecolors="none",
                       edgecolors=colour("gotd"), linewidths=1.0, label="GOT-D selection")
        ax.set_aspect("equal", adjustable="box")
        ax.legend(fontsize=7, loc="upper left")
        ax.set_title(title)
    return fig


def potential_maps(maps: Mapping[str, np.ndarray], xx: np.ndarray, yy: np.ndarray, pool: np.ndarray,
                   target: np.ndarray, *, selected: Mapping[str, np.ndarray] | None = None) -> Figure:
    """Several :func:`potential_map` panels side by side (e.g. one per eps), titled by their keys."""
    with _styled():
        fig, axes = _grid(len(maps), ncols=min(3, len(maps)), size=(4.6, 3.6))
        for ax, (name, values) in zip(axes, maps.items()):
            potential_map(xx, yy, values, pool, target, selected=(selected or {}).get(name), title=name, ax=ax)
    return fig


def toy_selections(pool: np.ndarray, target: np.ndarray, selections: Mapping[str, np.ndarray], *,
                   pool_cluster: np.ndarray | None = None) -> Figure:
    """One panel per method on the 2-D toy, with the share of the rare cluster in the selection."""
    pool = np.asarray(pool)
    with _styled():
        fig, axes = _grid(len(selections), size=(4.2, 3.0))
        for i, (ax, (name, idx)) in enumerate(zip(axes, selections.items())):
            idx = np.asarray(idx)
            ax.scatter(*pool.T, s=5, color=colour("(pool)"))
            ax.scatter(*np.asarray(target).T, s=14, marker="x", color=colour("target"), linewidths=0.8)
            ax.scatter(*pool[idx].T, s=12, color=colour(name, i))
            title = name
            if pool_cluster is not None:
                title += f": {np.mean(np.asarray(pool_cluster)[idx] == 1):.0%} from the rare cluster"
            ax.set_title(title)
            ax.set_aspect("equal", adjustable="datalim")
        fig.suptitle("Which candidates each method picks (grey: pool, x: target)")
    return fig


# ---------------------------------------------------------------------------------------------------
# lines: sweeps, convergence, training
# ---------------------------------------------------------------------------------------------------


def metric_lines(table: pd.DataFrame, x: str, y: str, *, hue: str | None = None, logx: bool = False,
                 logy: bool = False, title: str = "", xlabel: str | None = None, ylabel: str | None = None) -> Figure:
    """A line per ``hue`` value of ``y`` against ``x``; several rows per point are averaged, with min-max bars."""
    _require_columns(table, [x, y] + ([hue] if hue else []), "metric_lines")
    groups = [(None, table)] if hue is None else list(table.groupby(hue, sort=False, dropna=False))
    with _styled():
        fig = PngFigure(figsize=(6.0, 3.8), layout="constrained")
        ax = fig.subplots()
        for i, (key, sub) in enumerate(groups):
            stats = sub.groupby(x, sort=True)[y].agg(["mean", "min", "max"])
            name = str(key) if key is not None else y
            ax.errorbar(stats.index.to_numpy(dtype=float), stats["mean"],
                        yerr=[stats["mean"] - stats["min"], stats["max"] - stats["mean"]], marker="o",
                        capsize=3, color=colour(name, i), label=None if hue is None else f"{hue} = {key}")
        if logx:
            ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel or x)
        ax.set_ylabel(ylabel or y)
        if hue is not None:
            ax.legend(fontsize=8)
        ax.set_title(title)
    return fig


def eps_effect(table: pd.DataFrame, *, measures: Mapping[str, str] | None = None) -> Figure:
    """How the selection changes with eps: each measure (column -> label) against ``eps_rel``, log x axis.

    Default measures: ``rare_share`` and ``overlap_with_smallest_eps`` when the table has them.
    """
    _require_columns(table, ["eps_rel"], "eps_effect")
    measures = measures or {c: label for c, label in (("rare_share", "share of the rare cluster"),
                                                      ("overlap_with_smallest_eps", "overlap with the smallest eps"))
                            if c in table.columns}
    if not measures:
        raise GotdInputError("eps_effect: no measure columns to plot; pass measures={column: label}")
    long = table.melt(id_vars=["eps_rel"], value_vars=list(measures), var_name="column", value_name="value")
    long["measure"] = long["column"].map(measures)
    return metric_lines(long, "eps_rel", "value", hue="measure", logx=True,
                        title="Effect of the entropic regularisation on the GOT-D selection",
                        xlabel="eps / std(C)", ylabel="share of the selection")


def convergence(histories: Mapping[str, Sequence[float]], *, tol: float | None = None) -> Figure:
    """Target-marginal L1 error per Sinkhorn iteration (``SinkhornResult.diagnostics['error_history']``)."""
    with _styled():
        fig = PngFigure(figsize=(6.0, 3.6), layout="constrained")
        ax = fig.subplots()
        for i, (name, history) in enumerate(histories.items()):
            ax.semilogy(np.arange(1, len(history) + 1), history, marker=".", color=colour(name, i), label=name)
        if tol is not None:
            ax.axhline(tol, color="black", linestyle="--", linewidth=0.8, label=f"tol = {tol:g}")
        ax.set_xlabel("iteration")
        ax.set_ylabel("L1 error of the target marginal")
        ax.legend(fontsize=8)
        ax.set_title("Sinkhorn convergence")
    return fig


def loss_curve(history: pd.DataFrame, *, x: str = "step", y: str = "loss", hue: str | None = None,
               title: str = "Pre-fine-tuning loss") -> Figure:
    """Training (and evaluation) loss against steps: one line per ``hue`` value (e.g. split or run)."""
    _require_columns(history, [x, y] + ([hue] if hue else []), "loss_curve")
    groups = [(y, history)] if hue is None else list(history.groupby(hue, sort=False))
    with _styled():
        fig = PngFigure(figsize=(6.0, 3.6), layout="constrained")
        ax = fig.subplots()
        for i, (key, sub) in enumerate(groups):
            sub = sub.dropna(subset=[y]).sort_values(x)
            ax.plot(sub[x], sub[y], marker="." if len(sub) < 50 else None, color=colour(str(key), i), label=str(key))
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.legend(fontsize=8)
        ax.set_title(title)
    return fig


def results_points(results: pd.DataFrame, metric: str, *, x: str = "method", hue: str | None = None,
                   title: str | None = None) -> Figure:
    """Mean and standard deviation over seeds of one metric of a tidy results table, seeds as dots.

    ``results`` has ``metric`` and ``value`` columns (the ``results.csv`` layout); rows of ``metric`` are
    grouped by ``x`` (and ``hue``). With one seed per group the bar is absent: the spread is unknown.
    """
    _require_columns(results, ["metric", "value", x] + ([hue] if hue else []), "results_points")
    data = results[results["metric"] == metric]
    if data.empty:
        raise GotdInputError(f"results_points: no rows with metric {metric!r}; metrics present: "
                             f"{sorted(results['metric'].unique())}")
    xs = list(dict.fromkeys(data[x]))
    hues = [None] if hue is None else list(dict.fromkeys(data[hue]))
    width = 0.7 / len(hues)
    with _styled():
        fig = PngFigure(figsize=(1.5 + 1.0 * len(xs) * max(1, len(hues)) ** 0.5, 3.6), layout="constrained")
        ax = fig.subplots()
        for j, h in enumerate(hues):
            sub = data if h is None else data[data[hue] == h]
            offset = (j - (len(hues) - 1) / 2) * width
            for i, key in enumerate(xs):
                values = sub.loc[sub[x] == key, "value"].to_numpy(dtype=float)
                if values.size == 0:
                    continue
                c = colour(str(h), j) if h is not None else colour(str(key), i)
                std = values.std(ddof=1) if values.size > 1 else 0.0
                ax.errorbar(i + offset, values.mean(), yerr=std if values.size > 1 else None, fmt="o", color=c,
                            capsize=4, markersize=7, label=str(h) if (h is not None and i == 0) else None)
                ax.scatter(np.full(values.size, i + offset) + 0.06, values, s=10, color=c, alpha=0.5)
        ax.set_xticks(range(len(xs)), [str(v) for v in xs], rotation=20 if len(xs) > 4 else 0)
        ax.set_ylabel(metric)
        if hue is not None:
            ax.legend(fontsize=8, title=hue)
        ax.set_title(title or f"{metric}: mean ± std over seeds (dots: single runs)")
    return fig
