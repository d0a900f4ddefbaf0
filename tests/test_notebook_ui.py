"""What a reader of the notebooks meets outside the notebooks' own logic: figures shown by a real kernel,
a runner that starts kernels without ipykernel's plain-TCP warning, and paired scripts that stay in sync."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

REPO = Path(__file__).resolve().parents[1]
KERNEL = "gotd-ui-tests"


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A kernel spec running this interpreter, as ipykernel writes it (it declares CurveZMQ support)."""
    from ipykernel.kernelspec import get_kernel_dict

    folder = tmp_path_factory.mktemp("jupyter") / "kernels" / KERNEL
    folder.mkdir(parents=True)
    spec = get_kernel_dict()
    spec["argv"][0] = sys.executable
    (folder / "kernel.json").write_text(json.dumps({**spec, "display_name": "Python (gotd ui tests)"}))
    mp = pytest.MonkeyPatch()
    paths = [str(folder.parents[1]), *filter(None, [os.environ.get("JUPYTER_PATH")])]
    mp.setenv("JUPYTER_PATH", os.pathsep.join(paths))
    yield
    mp.undo()


def _outputs(*sources: str) -> list[list[dict]]:
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    NotebookClient(nb, kernel_name=KERNEL, timeout=300).execute()
    return [c.outputs for c in nb.cells]


def test_gotd_figures_show_as_png_in_a_kernel_and_stay_out_of_pyplot(kernel_env: None) -> None:
    """``fig`` as a cell's last line and ``display(fig)`` both give image/png, before and after pyplot loads
    its inline backend, and making figures leaves pyplot's list of open figures empty."""
    outputs = _outputs(
        "from gotd import plots\nfig = plots.convergence({'gotd': [1.0, 0.1, 0.01]}, tol=0.05)\nfig",
        "display(fig)",
        "import matplotlib.pyplot as plt\nplt.figure(); plt.close('all')  # loads the inline backend\nfig",
        "figs = [plots.convergence({'gotd': [1.0, 0.5]}) for _ in range(5)]\nprint(plt.get_fignums())",
    )
    for i in range(3):
        images = [o for o in outputs[i] if "image/png" in o.get("data", {})]
        assert len(images) == 1, f"cell {i}: {[list(o.get('data', {})) for o in outputs[i]]}"
        assert images[0]["output_type"] == ("display_data" if i == 1 else "execute_result")
    assert outputs[3][0]["text"].strip() == "[]"


def test_png_figure_is_a_matplotlib_figure_that_saves_as_before(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    from gotd import plots

    fig = plots.convergence({"gotd": [1.0, 0.1]})
    assert isinstance(fig, Figure) and isinstance(fig, plots.PngFigure)
    png = fig._repr_png_()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000
    fig.savefig(tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes().startswith(b"\x89PNG")
    assert plots.PngFigure()._repr_png_() is None  # nothing drawn: no image


def test_the_runner_starts_kernels_without_the_plain_tcp_warning(kernel_env: None, tmp_path: Path,
                                                                  capfd: pytest.CaptureFixture[str]) -> None:
    """ipykernel 7 prints "Kernel is running over TCP without encryption" to the terminal at every start of
    a kernel whose connection has no CurveZMQ keys; the runner's kernels get keys, so `gotd run` is quiet."""
    papermill = pytest.importorskip("papermill")
    from jupyter_client.manager import KernelManager

    from gotd.runner.execute import kernel_options

    if "transport_encryption" not in KernelManager.class_trait_names():
        pytest.skip("this jupyter_client cannot provision CurveZMQ keys (no transport_encryption setting)")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print(6 * 7)")]
    nbformat.write(nb, tmp_path / "t.ipynb")
    out = papermill.execute_notebook(str(tmp_path / "t.ipynb"), str(tmp_path / "t.out.ipynb"), kernel_name=KERNEL,
                                     progress_bar=False, **kernel_options())
    assert out.cells[0].outputs[0]["text"].strip() == "42"
    assert "without encryption" not in capfd.readouterr().err


def _pair(tmp_path: Path, name: str = "00_ot_gradients_explained") -> tuple[Path, Path]:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for f in (f"{name}.ipynb", f"{name}.py", "jupytext.toml"):
        shutil.copy(REPO / "notebooks" / f, folder / f)
    return folder / f"{name}.ipynb", folder / f"{name}.py"


def test_editing_the_paired_script_and_syncing_updates_the_notebook(tmp_path: Path) -> None:
    """What JupyterLab's jupytext integration does on open and save, done by `jupytext --sync`: the .py
    is the newer file, so the notebook follows it (a new code cell, a changed markdown line)."""
    pytest.importorskip("jupytext")
    ipynb, script = _pair(tmp_path)
    text = script.read_text()
    assert "# # 00 · " in text
    text = text.replace("# # 00 · ", "# # 00 (edited in the script) · ", 1) + '\n# %%\nprint("added in the script")\n'
    script.write_text(text)
    done = subprocess.run([sys.executable, "-m", "jupytext", "--sync", str(script)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    nb = nbformat.read(ipynb, as_version=4)
    assert nb.cells[0].source.startswith("# 00 (edited in the script) · ")
    assert nb.cells[-1].cell_type == "code" and nb.cells[-1].source == 'print("added in the script")'
    assert all(c.outputs == [] for c in nb.cells if c.cell_type == "code")
    # and the other way: a notebook saved from JupyterLab writes its script on the next sync
    nb.cells[-1].source = 'print("edited in the notebook")'
    nbformat.write(nb, ipynb)
    done = subprocess.run([sys.executable, "-m", "jupytext", "--sync", str(ipynb)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert script.read_text().rstrip().endswith('print("edited in the notebook")')


def test_jupytext_is_wired_into_jupyterlab() -> None:
    """The jupytext server extension and JupyterLab extension are installed, so JupyterLab opens a .py as a
    notebook ("Open With > Jupytext Notebook") and saves both files of a pair."""
    pytest.importorskip("jupyterlab")
    done = subprocess.run([sys.executable, "-m", "jupyter", "server", "extension", "list"], capture_output=True,
                          text=True, timeout=120)
    assert "jupyterlab_jupytext" in done.stdout + done.stderr and "enabled" in done.stdout + done.stderr
    done = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True, text=True,
                          timeout=120)
    listing = done.stdout + done.stderr
    assert "jupyterlab-jupytext" in listing and "@jupyter-widgets/jupyterlab-manager" in listing, listing
