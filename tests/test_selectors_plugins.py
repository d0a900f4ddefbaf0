"""Selectors from other installed packages (entry-point group ``gotd.selectors``), end to end.

A tiny distribution is built in a temporary folder: one module and a ``*.dist-info`` folder with
``METADATA`` and ``entry_points.txt``, which ``importlib.metadata`` finds once the folder is on
``sys.path`` / ``PYTHONPATH``, as it finds an installed wheel.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import gotd.selectors._registry as registry
from gotd.errors import GotdError
from gotd.selectors import SELECTORS, available_methods, get_selector, load_selector_plugins, run_selector

REPO = Path(__file__).resolve().parents[1]
_SCRIPT = Path(sys.executable).parent / "gotd"
# The installed console script when there is one (what a user runs), else the same entry function.
GOTD = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-c", "import sys; from gotd.cli import main; "
                                                                        "sys.exit(main(sys.argv[1:]))"]

PLUGIN_MODULE = '''
"""A selector from outside gotd: the shortest pool texts, ties by row."""
import numpy as np

from gotd.selection import Selection
from gotd.selectors import SelectorSpec


def select_shortest(pool, target, budget, *, seed=0):
    lengths = np.array([len(text) for text in pool], dtype=np.float64)
    order = np.argsort(lengths, kind="stable")[:budget].astype(np.int64)
    return Selection(indices=order, scores=lengths[order], method="shortest",
                     params={"budget": budget, "seed": seed}, diagnostics={}, seed=seed, all_scores=lengths,
                     score_name="characters", score_order="lower_is_better", n_pool=len(pool))


spec = SelectorSpec(name="shortest", fn=select_shortest, inputs="texts", progress=False, randomized=False,
                    summary="the shortest pool texts")
not_a_spec = select_shortest
misnamed = SelectorSpec(name="other_name", fn=select_shortest, inputs="texts", progress=False,
                        randomized=False, summary="declared under another name")
'''


def make_distribution(folder: Path, entry_points: str, *, name: str = "gotd-shortest") -> Path:
    """A distribution ``name`` 0.1 with the plugin module and ``entry_points`` (lines of the group)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gotd_shortest_plugin.py").write_text(PLUGIN_MODULE)
    info = folder / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[gotd.selectors]\n{entry_points}\n")
    return folder


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch):
    """The registry as gotd left it, with plugins not yet read; restored afterwards."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.delitem(sys.modules, "gotd_shortest_plugin", raising=False)
    yield
    sys.modules.pop("gotd_shortest_plugin", None)


def env_with(folder: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(REPO)])}


def test_an_installed_plugin_is_registered_on_first_read(tmp_path, monkeypatch, fresh_registry):
    monkeypatch.syspath_prepend(str(make_distribution(tmp_path / "site", "shortest = gotd_shortest_plugin:spec")))
    assert "shortest" in available_methods() and "shortest" in SELECTORS
    assert get_selector("shortest").inputs == "texts"
    sel = run_selector(["a long text", "short", "mid text"], ["target"], 2, method="shortest")
    assert sel.indices.tolist() == [1, 2] and sel.method == "shortest"


@pytest.mark.parametrize(("line", "problem"), [
    ("shortest = gotd_no_such_module:spec", "failed to load .*ModuleNotFoundError"),
    ("shortest = gotd_shortest_plugin:not_a_spec", "is a function, not a gotd.selectors.SelectorSpec"),
    ("shortest = gotd_shortest_plugin:misnamed", "declares the method 'other_name' under the name 'shortest'"),
    ("gotd = gotd_shortest_plugin:spec", "declares the method 'shortest' under the name 'gotd'"),
])
def test_a_broken_plugin_names_its_distribution_and_entry_point(tmp_path, monkeypatch, fresh_registry, line, problem):
    monkeypatch.syspath_prepend(str(make_distribution(tmp_path / "site", line, name="gotd-broken")))
    name, _, value = (part.strip() for part in line.partition("="))
    with pytest.raises(GotdError, match=rf"selector plugin {name} = {value} \(entry point group gotd.selectors, "
                                        rf"distribution gotd-broken 0.1\) {problem}"):
        load_selector_plugins()


def test_a_plugin_cannot_replace_a_builtin_method(tmp_path, monkeypatch, fresh_registry):
    module = tmp_path / "site" / "gotd_shortest_plugin.py"
    make_distribution(tmp_path / "site", "random = gotd_shortest_plugin:spec")
    module.write_text(PLUGIN_MODULE.replace('SelectorSpec(name="shortest"', 'SelectorSpec(name="random"'))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(GotdError, match="would replace gotd's own method 'random'"):
        available_methods()
    assert registry._REGISTRY["random"].summary.startswith("a uniform sample")


def test_gotd_select_runs_a_plugin_and_writes_its_sidecar(tmp_path):
    site = make_distribution(tmp_path / "site", "shortest = gotd_shortest_plugin:spec")
    pool = tmp_path / "pool.jsonl"
    texts = ["a fairly long candidate text about the weather", "tiny", "a medium candidate", "mid size text"]
    pool.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))
    target = tmp_path / "target.jsonl"
    target.write_text(json.dumps({"text": "a target text"}) + "\n")
    out = tmp_path / "selection.jsonl"
    done = subprocess.run([*GOTD, "select", "--pool", pool, "--target", target,
                           "--budget", "2", "--method", "shortest", "--out", out, "--quiet"],
                          env=env_with(site), capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["text"] for row in rows] == ["tiny", "mid size text"]
    sidecar = json.loads((tmp_path / "selection.jsonl.json").read_text())
    assert sidecar["method"] == "shortest"
    listing = subprocess.run([*GOTD, "methods"], env=env_with(site),
                             capture_output=True, text=True, timeout=300)
    assert "shortest" in listing.stdout and "the shortest pool texts" in listing.stdout


def test_a_broken_plugin_stops_the_cli_with_one_line(tmp_path):
    site = make_distribution(tmp_path / "site", "shortest = gotd_no_such_module:spec", name="gotd-broken")
    done = subprocess.run([*GOTD, "methods"], env=env_with(site), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "gotd-broken 0.1" in lines[0] and "shortest = gotd_no_such_module:spec" in lines[0]


def test_the_conformance_suite_runs_over_a_plugin(tmp_path):
    site = make_distribution(tmp_path / "site", "shortest = gotd_shortest_plugin:spec")
    done = subprocess.run([sys.executable, "-m", "pytest", str(REPO / "tests" / "test_selectors_conformance.py"),
                           "-q", "-k", "shortest", "-p", "no:cacheprovider", "-rs"],
                          env=env_with(site), capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert "passed" in summary and "failed" not in summary and "error" not in summary, summary
    passed = int(summary.split(" passed")[0].split()[-1])
    assert passed >= 10, summary  # the whole contract ran on the plugin, not a stray test
