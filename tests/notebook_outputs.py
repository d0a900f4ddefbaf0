"""What a reader sees in an executed notebook: every figure drawn as an image, no error output.

Used by every test that executes a notebook (tests/test_notebooks.py, the testbed and real-LM chains), so
that each notebook is checked at smoke size. A cell *makes a figure* when it saves one under the run's
``figures/`` (``run.save_figure(fig, "name")`` and the file is there afterwards) or shows a saved one
(``Image(...)``); such a cell must have an ``image/png`` output, and the notebook must show at least as
many images as it saved figures.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat

_SAVED = re.compile(r"save_figure\(\s*\w+\s*,\s*[\"']([^\"']+)[\"']")
_SHOWS_SAVED = re.compile(r"\bImage\(")


def _images(cell: nbformat.NotebookNode) -> int:
    return sum("image/png" in output.get("data", {}) for output in cell.get("outputs", []))


def _plain(cell: nbformat.NotebookNode) -> list[str]:
    return [str(output.get("data", {}).get("text/plain", ""))[:60] for output in cell.get("outputs", [])
            if output.get("output_type") in {"execute_result", "display_data"}]


def assert_reader_view(executed: Path, run_dir: Path) -> int:
    """Assert ``executed`` (a notebook run into ``run_dir``) has no error output and shows every figure.

    Returns
    -------
    int
        The number of ``image/png`` outputs (callers may assert more).
    """
    nb = nbformat.read(executed, as_version=4)
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    errors = [(i, o.get("ename"), o.get("evalue")) for i, c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{executed.name}: error output(s) {errors}"
    figures = run_dir / "figures"
    for i, cell in code:
        made = [name for name in _SAVED.findall(cell.source) if (figures / f"{name}.png").is_file()]
        if (made or _SHOWS_SAVED.search(cell.source)) and not _images(cell):
            raise AssertionError(f"{executed.name} cell {i} makes figure(s) {made or 'from a file'} but shows no "
                                 f"image; its displayed outputs are {_plain(cell)}")
    shown = sum(_images(c) for _, c in code)
    saved = sorted(p.name for p in figures.glob("*.png")) if figures.is_dir() else []
    assert shown >= len(saved), f"{executed.name} saved {len(saved)} figures {saved} but shows {shown} images"
    return shown
