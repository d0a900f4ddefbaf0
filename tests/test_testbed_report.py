"""The run report's first screen for the testbed: structure (always) and a real browser render (with chromium)."""
from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gotd.runner.config import validate_config
from gotd.runner.execute import PointResult
from gotd.runner.grid import expand_points
from gotd.runner.report import VERDICT_FILE, find_verdict, paired_pivot, write_index
from gotd.stages import compare as _stats


class _Outline(HTMLParser):
    """Tag sequence with text, enough to check what comes first on the page."""

    def __init__(self) -> None:
        super().__init__()
        self.items: list[tuple[str, str]] = []
        self._tag = ""

    def handle_starttag(self, tag, attrs):
        self._tag = tag
        if tag == "img":
            self.items.append(("img", dict(attrs).get("src", "")))

    def handle_data(self, data):
        if data.strip() and self._tag in ("h1", "h2", "p"):
            self.items.append((self._tag, data.strip()))


def _fake_run(tmp_path: Path) -> tuple[Path, list, dict]:
    raw = {"name": "t", "grid": {"seed": [0]}, "stages": [{"name": "compare", "notebook": "05c_testbed_compare.ipynb"}]}
    config = validate_config(raw)
    run_root = tmp_path / "t"
    points = expand_points(config, run_root)
    folder = points[0].run_dir
    (folder / "figures").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for method, shift in {"base": 0.3, "gotd": 0.0, "matching": 0.1, "random": 0.05}.items():
        for budget in ([0] if method == "base" else [10, 100]):
            for seed in ([0] if method == "base" else [0, 1, 2]):
                nll = 10 * (2 + shift + rng.normal(0, 0.05, 60))
                rows.append(pd.DataFrame({"scenario": "task", "split": "test", "method": method, "budget": budget,
                                          "seed": seed, "text_index": np.arange(60), "nll_sum": nll, "n_tokens": 10}))
    table = pd.concat(rows, ignore_index=True)
    scores = _stats.scores_of(table, metric="perplexity", num="nll_sum", den="n_tokens")
    paired = _stats.paired_table(scores, n_boot=200).assign(metric="perplexity")
    levels = _stats.summarise_levels(scores, n_boot=200)
    sentences = _stats.verdict_sentences(paired, pool_sizes={"task": 1000})
    fig = _stats.headline_figure(levels, paired, pool_sizes={"task": 1000})
    fig.savefig(folder / "figures" / "headline.png", dpi=60)
    paired.to_csv(folder / "paired.csv", index=False)
    (folder / VERDICT_FILE).write_text(json.dumps({"sentences": sentences, "skipped_methods": {"tsds": "absent"},
                                                   "seeds": [0, 1, 2], "interval": "95% bootstrap"}))
    results = {points[0].name: PointResult(points[0].name, "compare", "done", 1.0)}
    index = write_index(run_root, title="gotd run t", description="d", points=points, results=results,
                        comparison=pd.DataFrame(), figures=[], problems=[], record={"config": raw})
    return index, sentences, results


def test_first_screen_is_the_verdict_then_the_figure_then_the_paired_table(tmp_path) -> None:
    index, sentences, _ = _fake_run(tmp_path)
    outline = _Outline()
    outline.feed(index.read_text())
    items = outline.items
    assert items[0] == ("h1", "gotd run t")
    assert items[1] == ("p", sentences[0])                 # the sentence written from the numbers comes first
    assert "GOT-D" in sentences[0] and "better than matching" in sentences[0]
    assert any("Not run: tsds" in text for _, text in items[:4])
    assert items[3][0] == "img" and items[3][1].endswith("figures/headline.png")
    headings = [t for k, t in items if k == "h2"]
    assert headings[0].startswith("Paired differences: target perplexity")
    assert headings.index("Details") > 0


def test_gates_come_first_then_the_verdict(tmp_path) -> None:
    index, sentences, _ = _fake_run(tmp_path)
    folder = next(tmp_path.rglob(VERDICT_FILE)).parent
    verdict = json.loads((folder / VERDICT_FILE).read_text())
    verdict["gates"] = [{"scenario": "task", "gate": "null", "passed": False, "detail": "random moved target NLL"}]
    (folder / VERDICT_FILE).write_text(json.dumps(verdict))
    points = expand_points(validate_config({"name": "t", "grid": {"seed": [0]}, "stages": [
        {"name": "compare", "notebook": "05c_testbed_compare.ipynb"}]}), tmp_path / "t")
    page = write_index(tmp_path / "t", title="gotd run t", description="d", points=points,
                       results={points[0].name: PointResult(points[0].name, "compare", "done", 1.0)},
                       comparison=pd.DataFrame(), figures=[], problems=[], record={}).read_text()
    assert page.index("Gates: is the instrument certified?") < page.index("FAILED") < page.index(html.escape(sentences[0]))


def test_paired_pivot_has_one_row_per_method_and_budget(tmp_path) -> None:
    _fake_run(tmp_path)
    paired = pd.read_csv(next(tmp_path.rglob("paired.csv")))
    table = paired_pivot(paired)
    assert list(table.index.get_level_values("method")[:3]) == ["gotd", "matching", "random"]
    assert table.loc[("task", 10, "gotd"), "minus GOT-D, 95% bootstrap CI"] == ""
    assert table.loc[("task", 10, "matching"), "minus GOT-D, 95% bootstrap CI"].startswith("+")


def test_no_verdict_keeps_the_generic_report(tmp_path) -> None:
    raw = {"name": "g", "grid": {"seed": [0]}, "stages": [{"name": "s", "notebook": "01_select.ipynb"}]}
    points = expand_points(validate_config(raw), tmp_path / "g")
    assert find_verdict(points) is None
    index = write_index(tmp_path / "g", title="gotd run g", description="", points=points, results={},
                        comparison=pd.DataFrame(), figures=[], problems=[], record={})
    assert "Comparison" in index.read_text() and "class='verdict'" not in index.read_text()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(tmp_path) -> None:
    index, _, _ = _fake_run(tmp_path)
    png = tmp_path / "shot.png"
    profile = tempfile.mkdtemp()
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           f"--screenshot={png}", "--window-size=1280,900", index.resolve().as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=180, env={**os.environ, "HOME": profile})
    from PIL import Image

    img = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert img.shape == (900, 1280)
    # the page is not blank: text and the figure put dark pixels in the top half of the first screen
    assert (img[:450] < 128).mean() > 0.005
