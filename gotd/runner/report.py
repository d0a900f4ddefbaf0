"""The run's report: executed notebooks rendered to HTML without code, and the summary page ``index.html``.

The first screen is rendered from a comparison folder in the compare stage's format
(:mod:`gotd.stages.compare`); nothing here knows which experiment wrote it.
"""
from __future__ import annotations

import html
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from gotd._io import atomic_path, write_text_atomic
from gotd.runner.execute import PointResult
from gotd.runner.grid import Point
from gotd.stages.compare import VERDICT_FILE, methods_in_order


def render_html(notebook: Path, out: Path) -> Path:
    """Render an executed notebook to HTML without input cells (``jupyter nbconvert --to html --no-input``)."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter()
    # The same three switches as nbconvert's --no-input flag.
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_filename(str(notebook))
    return write_text_atomic(out, body)


def comparison_pivot(comparison: pd.DataFrame) -> pd.DataFrame:
    """One row per task x metric x budget x model, one column per method, cells ``mean ± std (n)``."""
    if comparison.empty:
        return comparison
    rows = [c for c in ("task", "metric", "budget", "model") if c in comparison.columns]
    cells = comparison.assign(cell=[_cell(m, s, n) for m, s, n in
                                    zip(comparison["mean"], comparison["std"], comparison["n"])])
    if "method" not in cells.columns:
        return cells.set_index(rows)[["cell"]]
    return cells.pivot_table(index=rows, columns="method", values="cell", aggfunc="first").fillna("")


def _cell(mean: float, std: float, n: int) -> str:
    if pd.isna(mean):
        return "n/a"
    text = f"{mean:.4g}"
    if n > 1 and not pd.isna(std):
        text += f" ± {std:.2g}"
    return f"{text} (n={n})"


def standard_figures(results: pd.DataFrame, out_dir: Path, *, stage_order: Sequence[str] = (),
                     max_figures: int = 24) -> list[Path]:
    """One figure per task x metric of the collected results (:func:`gotd.plots.results_points`), as PNG.

    Each shows the mean and standard deviation over seeds per method (one colour per budget when there are
    several), with the single runs as dots. Nothing is drawn when :mod:`gotd.plots` or matplotlib is
    missing or the table is empty. At most ``max_figures`` are drawn (the tables hold everything), those of
    the last stage in ``stage_order`` (the evaluation) first.
    """
    needed = {"task", "metric", "method", "value"}
    if results.empty or not needed <= set(results.columns):
        return []
    try:
        from gotd import plots
    except ImportError:
        return []
    written: list[Path] = []
    frame = results.dropna(subset=["value"]).copy()
    frame["method"] = frame["method"].astype(object).where(frame["method"].notna(), "-")
    rank = {name: -i for i, name in enumerate(stage_order)}
    frame["_rank"] = frame["stage"].map(rank).fillna(0) if "stage" in frame.columns else 0
    groups = sorted(frame.groupby(["task", "metric"], sort=True, dropna=False),
                    key=lambda item: item[1]["_rank"].min())
    for (task, metric), sub in groups:
        if len(written) >= max_figures:
            break
        hue = "budget" if "budget" in sub.columns and sub["budget"].nunique() > 1 else None
        fig = plots.results_points(sub, str(metric), x="method", hue=hue, title=f"{task}: {metric}")
        path = out_dir / f"{_file_stem(f'{task}-{metric}')}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        written.append(path)
    return written


def _file_stem(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "figure"




def find_verdict(points: Sequence[Point], results: dict[str, PointResult] | None = None) -> Path | None:
    """The run folder of the last finished point that wrote :data:`VERDICT_FILE`, if any."""
    for point in reversed(list(points)):
        res = (results or {}).get(point.name)
        if res is not None and res.status not in ("done", "skipped"):
            continue
        if (point.run_dir / VERDICT_FILE).is_file():
            return point.run_dir
    return None


def _interval(diff: float, low: float, high: float) -> str:
    if pd.isna(diff):
        return ""
    return f"{diff:+.3g} [{low:+.3g}, {high:+.3g}]"


def paired_pivot(paired: pd.DataFrame, *, split: str = "test", metric: str = "perplexity") -> pd.DataFrame:
    """One row per scenario x budget x method; columns: the difference to GOT-D and to the un-warmed model
    with the 95% bootstrap interval, and the t-interval over seeds."""
    sub = paired[(paired["split"] == split) & (paired["metric"] == metric)] if not paired.empty else paired
    if sub.empty:
        return pd.DataFrame()
    rows = {}
    for r in sub.itertuples():
        key = (r.scenario, int(r.budget), r.method)
        cell = rows.setdefault(key, {})
        name = "GOT-D" if r.vs == "gotd" else "un-warmed"
        cell[f"minus {name}, 95% bootstrap CI"] = _interval(r.diff, r.ci_low, r.ci_high)
        t_iv = "" if pd.isna(r.t_low) else f"[{r.t_low:+.3g}, {r.t_high:+.3g}]"
        cell[f"minus {name}, t-interval over seeds"] = t_iv
        cell["seeds x texts"] = f"{r.n_seeds} x {r.n_texts}"
    frame = pd.DataFrame.from_dict(rows, orient="index").fillna("")
    frame.index = pd.MultiIndex.from_tuples(frame.index, names=["scenario", "budget", "method"])
    rank = {m: i for i, m in enumerate(methods_in_order(list(dict.fromkeys(sub["method"]))))}
    return frame.iloc[sorted(range(len(frame)), key=lambda i: (frame.index[i][0], frame.index[i][1],
                                                               rank.get(frame.index[i][2], 99)))]


def comparison_section(folder: Path, run_root: Path) -> list[str]:
    """HTML of the first screen (verdict sentences and headline figure) and the tables below it, from a
    comparison folder in the compare stage's format (:mod:`gotd.stages.compare`)."""
    import json

    esc = html.escape
    verdict = json.loads((folder / VERDICT_FILE).read_text(encoding="utf-8"))
    parts = []
    gates = verdict.get("gates") or []
    if gates:     # the instrument's certificate comes before any ranking
        rows = "".join(f"<tr><td>{esc(str(g.get('scenario', '')))}</td><td>{esc(str(g['gate']))}</td>"
                       f"<td>{'passed' if g['passed'] else '<b>FAILED</b>'}</td><td>{esc(str(g.get('detail', '')))}"
                       "</td></tr>" for g in gates)
        parts.append("<div class='gates'><h2>Gates: is the instrument certified?</h2><table><tr><th>scenario</th>"
                     f"<th>gate</th><th>outcome</th><th>numbers</th></tr>{rows}</table></div>")
    parts.append("<div class='verdict'>")
    parts += [f"<p>{esc(s)}</p>" for s in verdict.get("sentences", [])] or [
        "<p>No comparison could be made (no method ran at a budget where GOT-D also ran).</p>"]
    if verdict.get("reading"):
        parts.append(f"<p class='note'>{esc(verdict['reading'])}</p>")
    skipped = verdict.get("skipped_methods") or {}
    if skipped:
        parts.append("<p class='note'>Not run: " + "; ".join(f"{esc(m)} ({esc(w)})" for m, w in skipped.items())
                     + ".</p>")
    parts.append("</div>")
    fig = folder / "figures" / "headline.png"
    if fig.is_file():
        parts.append(f"<figure class='headline'><img src='{esc(os.path.relpath(fig, run_root))}' "
                     "alt='target perplexity against budget, one line per method, and the paired differences "
                     f"to GOT-D'><figcaption>{esc(verdict.get('interval', ''))}; "
                     f"seeds {esc(str(verdict.get('seeds', [])))}.</figcaption></figure>")
    parts += [f"<p>{esc(s)}</p>" for s in verdict.get("secondary_sentences", [])]
    for name, title in (verdict.get("tables") or {}).items():
        path = folder / name
        if path.is_file() and path.stat().st_size > 1:
            try:
                frame = pd.read_csv(path)
            except pd.errors.EmptyDataError:
                continue
            parts += [f"<h2>{esc(title)}</h2>", frame.to_html(index=False, escape=True,
                                                                float_format=lambda x: f"{x:.4g}")]
    for rel in verdict.get("extra_figures") or []:
        fig_path = folder / rel
        if fig_path.is_file():
            parts.append(f"<figure><img src='{esc(os.path.relpath(fig_path, run_root))}' alt='{esc(rel)}'>"
                         f"<figcaption>{esc(rel)}</figcaption></figure>")
    paired_path = folder / "paired.csv"
    paired = pd.read_csv(paired_path) if paired_path.is_file() else pd.DataFrame()
    for title, split, metric, note in (
            ("Paired differences: target perplexity", "test", "perplexity",
             "value(method) minus value(GOT-D) and minus value(un-warmed model), on the same held-out target "
             "texts and seeds. Positive minus GOT-D: GOT-D is lower (better); negative minus un-warmed: warming "
             "up helped."),
            ("Paired differences: few-label classification accuracy", "test", "few_label_accuracy",
             "Accuracy of a logistic head on the LM's mean hidden state; positive minus GOT-D: the method is "
             "more accurate than GOT-D."),
            ("Paired differences: zero-shot accuracy", "test", "zero_shot_accuracy",
             "Zero-shot classification by the LM's loss of each label's prompt; positive minus GOT-D: the method "
             "is more accurate than GOT-D."),
            ("What warming up costs: perplexity on held-out pool text", "pool_heldout", "perplexity",
             "Positive minus un-warmed: the model got worse on its pre-training distribution."),
            ("Paired differences: accuracy after fine-tuning on the labels", "test", "accuracy",
             "Fraction correct; positive minus un-warmed: warming up helped downstream."),
            ("Paired differences: true-label cross-entropy after fine-tuning", "test", "label_nll",
             "Nats per text; negative minus un-warmed: warming up helped."),
            ("Paired differences: target NLL, token-weighted", "test", "target_nll",
             "Nats per token; negative minus un-warmed: warming up helped."),
            ("Paired differences: target NLL, text-weighted", "test", "target_nll_text",
             "Mean over texts of each text's nats per token."),
            ("What warming up costs: held-out pool NLL", "test", "pool_nll",
             "Nats per token; positive minus un-warmed: the model got worse on its pre-training distribution.")):
        table = paired_pivot(paired, split=split, metric=metric)
        if not table.empty:
            parts += [f"<h2>{esc(title)}</h2><p>{esc(note)}</p>", table.to_html(escape=True)]
    per_domain = sorted(m for m in set(paired.get("metric", pd.Series(dtype=str))) if str(m).startswith("target_nll@"))
    for metric in per_domain:      # one table per domain of the target's test texts
        table = paired_pivot(paired, split="test", metric=metric)
        if not table.empty:
            parts += [f"<h2>Per domain: target NLL on {esc(metric.split('@', 1)[1])} test texts</h2>"
                      "<p>Nats per token, token-weighted within the domain.</p>", table.to_html(escape=True)]
    makeup = folder / "makeup.csv"
    if makeup.is_file():
        frame = pd.read_csv(makeup, index_col=[0, 1, 2])
        parts += ["<h2>Selection make-up</h2><p>Share of each pool domain in each method's selection, mean over "
                  "seeds.</p>", frame.to_html(float_format=lambda x: f"{x:.2f}")]
    timings = verdict.get("timings") or []
    if timings:
        frame = pd.DataFrame([{k: v for k, v in t.items() if k != "steps"} for t in timings])
        parts += ["<h2>Time per stage</h2><p>CPU seconds of the notebook's process (all threads) and wall "
                  "seconds; load averages are in each folder's timings.json.</p>",
                  frame.to_html(index=False, float_format=lambda x: f"{x:.1f}")]
    return parts


def write_index(run_root: Path, *, title: str, description: str, points: Sequence[Point],
                results: dict[str, PointResult], comparison: pd.DataFrame, figures: Sequence[Path],
                problems: Sequence[str], record: dict[str, Any]) -> Path:
    """Write ``<run>/index.html``: comparison table, figures, every point with links, failures, provenance.

    When a point wrote :data:`VERDICT_FILE` (a compare stage's folder), the page opens with its verdict
    sentences and headline figure, then the paired-difference tables, the selection make-up and the stage
    times; the generic tables follow as details.
    """
    esc = html.escape

    def link(path: Path, text: str) -> str:
        if not path.exists():
            return ""
        return f'<a href="{esc(os.path.relpath(path, run_root))}">{esc(text)}</a>'

    counts = pd.Series([r.status for r in results.values()]).value_counts().to_dict() if results else {}
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
        "font-size:90%;text-align:left}.failed{color:#b00}.blocked{color:#a60}.done,.skipped{color:#070}"
        "img{max-width:560px;margin:4px;border:1px solid #eee}pre{background:#f6f6f6;padding:8px;"
        "overflow:auto}.verdict p{font-size:115%;line-height:1.45;margin:.5em 0}"
        ".note{color:#555;font-size:95%!important}"
        "figure.headline img{max-width:100%;border:none}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    verdict_dir = find_verdict(points, results)
    if verdict_dir is not None:
        parts += comparison_section(verdict_dir, run_root)
        parts.append("<h2>Details</h2>")
    parts += [
        f"<p>{esc(description)}</p>" if description else "",
        "<p>" + ", ".join(f"{n} {esc(s)}" for s, n in sorted(counts.items())) +
        f" of {len(points)} points. Results: {link(run_root / 'results.csv', 'results.csv')} "
        f"{link(run_root / 'results.parquet', 'results.parquet')}; record: {link(run_root / 'run.json', 'run.json')}"
        "</p>",
        "<h2>Comparison</h2>",
        "<p>Mean over seeds, ± sample standard deviation where there is more than one seed, n = number of "
        "values.</p>",
    ]
    pivot = comparison_pivot(comparison)
    parts.append(pivot.to_html(escape=True) if not pivot.empty else "<p>No results were collected.</p>")
    if figures:
        parts.append("<h2>Figures</h2>")
        parts.extend(f'<figure><img src="{esc(os.path.relpath(f, run_root))}"><figcaption>{esc(f.stem)}'
                     "</figcaption></figure>" for f in figures)
    parts.append("<h2>Points</h2><table><tr><th>stage</th><th>point</th><th>status</th><th>seconds</th>"
                 "<th>notebook</th><th>report</th><th>log</th><th>figures</th></tr>")
    for point in points:
        res = results.get(point.name)
        status = res.status if res else "not run"
        seconds = f"{res.seconds:.1f}" if res and res.seconds else ""
        figs = sorted((point.run_dir / "figures").glob("*.png")) if status in ("done", "skipped") else []
        fig_links = " ".join(link(f, f.stem) for f in figs)
        parts.append(
            f"<tr><td>{esc(point.stage.name)}</td><td>{esc(point.name)}</td>"
            f"<td class='{esc(status)}'>{esc(status)}</td><td>{seconds}</td>"
            f"<td>{link(point.output_notebook, 'ipynb')}</td><td>{link(point.html, 'html')}</td>"
            f"<td>{link(point.run_dir.parent / 'logs' / f'{point.name}.log', 'log')}</td><td>{fig_links}</td></tr>")
    parts.append("</table>")
    failures = [r for r in results.values() if r.status in ("failed", "blocked")]
    if failures:
        parts.append("<h2>Failures</h2><table><tr><th>point</th><th>status</th><th>notebook</th><th>cell</th>"
                     "<th>error</th></tr>")
        for res in failures:
            err = res.error or {}
            cell = "" if err.get("cell_index") is None else str(err["cell_index"])
            parts.append(f"<tr><td>{esc(res.name)}</td><td class='{res.status}'>{res.status}</td>"
                         f"<td>{esc(Path(err.get('notebook', '')).name)}</td><td>{esc(cell)}</td>"
                         f"<td>{esc(str(err.get('ename', '')))}: {esc(str(err.get('evalue', '')))}</td></tr>")
        parts.append("</table>")
    if problems:
        parts.append("<h2>Problems with results files</h2><ul>" +
                     "".join(f"<li>{esc(p)}</li>" for p in problems) + "</ul>")
    prov = {k: v for k, v in record.items() if k not in ("config", "points")}
    parts += ["<h2>Provenance</h2><pre>", esc(yaml.safe_dump(prov, sort_keys=False, default_flow_style=False)),
              "</pre><h3>Configuration</h3><pre>",
              esc(yaml.safe_dump(record.get("config", {}), sort_keys=False)), "</pre></body></html>"]
    return write_text_atomic(run_root / "index.html", "\n".join(p for p in parts if p))
