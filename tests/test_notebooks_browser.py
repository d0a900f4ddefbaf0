"""The notebooks as a reader meets them: a real JupyterLab server driven by headless Chromium.

A ``jupyter lab`` server starts on a free loopback port with a token, in a temporary checkout (the
notebooks, ``jupytext.toml``, an empty ``pyproject.toml`` so run folders land there) with its own
config, runtime, settings and workspace folders. Chromium (the system's, through Playwright's Python
package: no browser download) opens ``00_ot_gradients_explained`` at its default size and ``01_select``
after typing ``smoke = True`` into its parameters cell, runs all cells from the Run menu and saves.
Checked: JupyterLab started the kernel the notebook names (Python 3 (ipykernel)) without a kernel
picker, every cell ran and the kernel is idle, no error output, every
figure drawn as an image, tqdm's progress bars drawn as widgets (ipywidgets), not as text, and the
paired ``.py`` written on save with the typed line. A screenshot
per notebook (and one of 01's progress bars) is saved in the test's temporary folder.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

from notebook_outputs import assert_reader_view  # noqa: E402

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"]
RUN_TIMEOUT_S = 900
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
KERNEL_READY_OR_DIALOG = """() => {
    if (document.querySelector('.jp-Dialog')) return true;
    const name = document.querySelector('.jp-Toolbar-kernelName');
    const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
    return !!name && !!indicator && name.textContent.trim() !== 'No Kernel' && indicator.dataset.status === 'idle';
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, server: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"jupyter lab exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"jupyter lab did not answer at {url} within {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A running JupyterLab over a temporary checkout; yields its base URL, token and folders."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"Chromium is not installed ({CHROMIUM}); the JupyterLab browser test is skipped")
    pytest.importorskip("playwright.sync_api", reason="playwright (pip install playwright) is not installed; "
                        "the JupyterLab browser test is skipped")
    pytest.importorskip("jupyterlab")
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "checkout"
    (root / "notebooks").mkdir(parents=True)
    (root / "pyproject.toml").write_text("")  # gotd.notebook_io.repo_root: run folders go under checkout/reports
    for name in ("00_ot_gradients_explained.ipynb", "01_select.ipynb", "jupytext.toml"):
        shutil.copy(REPO / "notebooks" / name, root / "notebooks" / name)
    settings = tmp / "settings"
    news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({"fetchNews": "false"}))  # no "official Jupyter news?" toast over the cells
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp / "config"), "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
           "GOTD_CACHE_DIR": str(tmp / "cache"),
           "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root / 'notebooks'}",
           "--LabApp.extension_manager=readonly", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = tmp / "jupyter-lab.log"
    with open(log, "w") as log_file:
        server = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(f"{base}/api/status?token={token}", server, log)
        yield {"base": base, "token": token, "root": root, "log": log}
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _prompts(page) -> list[str]:
    return page.eval_on_selector_all(".jp-Notebook .jp-CodeCell .jp-InputArea-prompt",
                                     "els => els.map(e => e.textContent.trim())")


def _run_all(lab: dict, name: str, shots: Path, *, parameters_line: str | None = None) -> dict:
    """Open ``name`` in a fresh workspace, optionally type a line at the end of its parameters cell, Run All,
    wait for the kernel to finish, save, screenshot; return what the page showed."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{lab['base']}/lab/workspaces/{name}/tree/{name}.ipynb?reset&token={lab['token']}")
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
            # the notebooks name the venv's python3 kernel: JupyterLab starts it without asking which. The
            # indicator reads "idle" already while the toolbar says "No Kernel": wait for a named, idle kernel
            page.wait_for_function(KERNEL_READY_OR_DIALOG, timeout=120_000)
            assert page.query_selector(".jp-Dialog") is None, (
                f"{name}: JupyterLab asked for a kernel: {page.text_content('.jp-Dialog')}")
            kernel_name = page.text_content(".jp-Toolbar-kernelName")
            if parameters_line:
                page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".cm-content").click()
                page.keyboard.press("Control+End")
                page.keyboard.press("Enter")
                page.keyboard.type(parameters_line)
                page.keyboard.press("Escape")
            page.click('.lm-MenuBar-itemLabel:text-is("Run")')
            page.click('.lm-Menu-itemLabel:text-is("Run All Cells")')
            deadline = time.monotonic() + RUN_TIMEOUT_S
            while True:
                time.sleep(2)
                prompts = _prompts(page)
                status = page.get_attribute(".jp-Notebook-ExecutionIndicator", "data-status")
                if status == "idle" and prompts and all(p.startswith("[") and p[1:-2].isdigit() for p in prompts):
                    break
                assert time.monotonic() < deadline, f"{name}: not finished after {RUN_TIMEOUT_S} s: {prompts}"
            page.keyboard.press("Control+s")
            page.wait_for_selector(".lm-TabBar-tab.jp-mod-current:not(.jp-mod-dirty)", timeout=30_000)
            shown = {
                "prompts": prompts, "status": status, "kernel": (kernel_name or "").strip(),
                "images": page.eval_on_selector_all(".jp-RenderedImage img",
                                                    "els => els.map(e => [e.naturalWidth, e.naturalHeight])"),
                "progress_widgets": len(page.query_selector_all(".jp-OutputArea-output .widget-hprogress")),
                "text": page.eval_on_selector_all(".jp-OutputArea-output .jp-RenderedText",
                                                  "els => els.map(e => e.textContent)"),
            }
            page.locator(".jp-RenderedImage img").first.evaluate("e => e.scrollIntoView({block: 'start'})")
            page.mouse.move(800, 500)
            page.mouse.wheel(0, -150)  # the cell's code and printed lines above the figure stay in view
            time.sleep(1.5)
            page.screenshot(path=str(shots / f"{name}.png"))
            if shown["progress_widgets"]:
                page.locator(".jp-OutputArea-output .widget-hprogress").first.evaluate(
                    "e => e.scrollIntoView({block: 'start'})")
                page.mouse.wheel(0, -300)
                time.sleep(1.5)
                page.screenshot(path=str(shots / f"{name}-progress.png"))
            return shown
        finally:
            browser.close()


def _check(lab: dict, name: str, shown: dict) -> nbformat.NotebookNode:
    """The checks common to both notebooks: kernel idle, every figure an image in the page and the file."""
    assert shown["status"] == "idle" and shown["kernel"] == "Python 3 (ipykernel)", shown["kernel"]
    saved = lab["root"] / "notebooks" / f"{name}.ipynb"
    n_png = assert_reader_view(saved, lab["root"] / "reports" / "interactive" / name)
    assert n_png >= 1 and len(shown["images"]) == n_png, (n_png, shown["images"])
    assert all(w > 0 and h > 0 for w, h in shown["images"]), f"{name}: an image did not decode: {shown['images']}"
    assert not any("<Figure size" in t for t in shown["text"]), f"{name}: a figure shown as text"
    nb = nbformat.read(saved, as_version=4)
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code"), f"{name}: a cell did not run"
    return nb


def test_00_ot_gradients_explained_in_jupyterlab(lab: dict, tmp_path: Path) -> None:
    shown = _run_all(lab, "00_ot_gradients_explained", tmp_path)
    _check(lab, "00_ot_gradients_explained", shown)
    assert len(shown["images"]) == 6  # the plan, the gradient map, the selections, the mixture, the eps sweep and maps
    print(f"screenshot: {tmp_path / '00_ot_gradients_explained.png'}")


def test_01_select_at_smoke_size_in_jupyterlab(lab: dict, tmp_path: Path) -> None:
    shown = _run_all(lab, "01_select", tmp_path, parameters_line="smoke = True  # typed by the reader: the toy corpus")
    nb = _check(lab, "01_select", shown)
    assert "smoke = True" in nb.cells[1].source
    # saving from JupyterLab wrote the paired script too (jupytext's contents manager and notebooks/jupytext.toml)
    assert "smoke = True  # typed by the reader" in (lab["root"] / "notebooks" / "01_select.py").read_text()
    assert json.loads((lab["root"] / "reports" / "interactive" / "01_select" / "run.json").read_text()
                      )["parameters"]["smoke"] is True
    # tqdm.auto's bars are ipywidgets: widget views in the file, drawn progress bars in the page, no fallback text
    widget_views = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if WIDGET_VIEW in o.get("data", {})]
    assert widget_views and shown["progress_widgets"] >= 1
    assert not any("IProgress not found" in t or "HBox(children" in t for t in shown["text"])
    print(f"screenshots: {tmp_path / '01_select.png'}, {tmp_path / '01_select-progress.png'}")


def _api(lab: dict, path: str, method: str = "GET", body: dict | None = None) -> dict:
    request = urllib.request.Request(f"{lab['base']}/api/contents/{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"token {lab['token']}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_a_script_opens_as_a_notebook_on_its_kernel_and_saving_writes_both_in_sync(lab: dict) -> None:
    """Open With > Jupytext Notebook on a .py alone: the server's jupytext contents manager reads it as a
    notebook that names the kernel (no picker), and a save writes the paired .ipynb beside it, in sync."""
    jupytext = pytest.importorskip("jupytext")
    folder = lab["root"] / "notebooks"
    shutil.copy(REPO / "notebooks" / "00_ot_gradients_explained.py", folder / "from_script.py")
    model = _api(lab, "from_script.py?type=notebook&content=1")
    assert model["type"] == "notebook"
    assert model["content"]["metadata"]["kernelspec"]["name"] == "python3"
    assert model["content"]["metadata"]["kernelspec"]["display_name"] == "Python 3 (ipykernel)"
    _api(lab, "from_script.py", "PUT", {"type": "notebook", "format": "json", "content": model["content"]})
    paired = nbformat.read(folder / "from_script.ipynb", as_version=4)
    script = jupytext.read(folder / "from_script.py")
    assert paired.metadata["kernelspec"]["name"] == script.metadata["kernelspec"]["name"] == "python3"
    assert [(c.cell_type, c.source) for c in paired.cells] == [(c.cell_type, c.source) for c in script.cells]
    assert (folder / "from_script.py").read_text() == (REPO / "notebooks" / "00_ot_gradients_explained.py").read_text()
