"""The notebooks: paired scripts in sync, no committed outputs, parameters cells, and smoke executions.

Each notebook is executed with papermill at smoke size (toy data, tiny settings) into a temporary run
folder, and what it wrote is checked: results.csv rows and values, selection files, figures, and what a
reader sees (every figure shown as an image, no error output: tests/notebook_outputs.py).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pandas as pd
import pytest

nbformat = pytest.importorskip("nbformat")
jupytext = pytest.importorskip("jupytext")
papermill = pytest.importorskip("papermill")

from gotd.results import RESULT_COLUMNS  # noqa: E402
from notebook_outputs import assert_reader_view  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
KERNEL = "python3"

READER_VIEW_CHECKED_BY = {
    "00_ot_gradients_explained": "test_00_ot_gradients_explained",
    "01_select": "test_01_select",
    "02_prefinetune": "test_02_prefinetune",
    "03_evaluate": "test_03_evaluate",
    "04_ablations": "test_04_ablations",
    "05a_testbed_prepare": "tests/test_testbed_smoke.py::test_every_notebook_shows_its_figures",
    "05b_testbed_warmup": "tests/test_testbed_smoke.py::test_every_notebook_shows_its_figures",
    "05c_testbed_compare": "tests/test_testbed_smoke.py::test_every_notebook_shows_its_figures",
    "06_compare_real": "tests/test_compare_evaluations.py::test_demo_smollm2_chain_at_smoke_size_writes_paired_rows",
}
"""The smoke execution of each notebook whose outputs :func:`assert_reader_view` checks."""


def _notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]*_*.ipynb"))


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A ``python3`` kernel spec that runs this interpreter, found first through JUPYTER_PATH."""
    folder = tmp_path_factory.mktemp("jupyter") / "kernels" / KERNEL
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (gotd tests)", "language": "python"}))
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(folder.parents[1])] + ([old] if old else []))
    yield
    if old is None:
        os.environ.pop("JUPYTER_PATH", None)
    else:
        os.environ["JUPYTER_PATH"] = old


def _execute(name: str, tmp_path: Path, **parameters: object) -> Path:
    """Run a notebook at smoke size into ``tmp_path/run`` and check that a reader sees every figure."""
    run_dir = tmp_path / "run"
    executed = tmp_path / f"{name}.out.ipynb"
    papermill.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(executed),
                               parameters={"run_dir": str(run_dir), "smoke": True, **parameters},
                               kernel_name=KERNEL, progress_bar=False, cwd=str(NOTEBOOKS))
    assert_reader_view(executed, run_dir)
    return run_dir


def _results(run_dir: Path, notebook: str) -> pd.DataFrame:
    results = pd.read_csv(run_dir / "results.csv")
    assert list(results.columns[:len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS)
    assert (results["notebook"] == notebook).all()
    assert results["value"].notna().all()
    return results


def _value(results: pd.DataFrame, method: str, metric: str) -> float:
    rows = results[(results["method"] == method) & (results["metric"] == metric)]
    assert len(rows) == 1, f"expected one {metric} row for {method}, got {len(rows)}"
    return float(rows["value"].iloc[0])


# ---------------------------------------------------------------------------------------------------
# what is committed
# ---------------------------------------------------------------------------------------------------


def test_every_notebook_has_a_paired_script_and_the_five_exist() -> None:
    stems = {p.stem for p in _notebooks()}
    assert stems == {p.stem for p in NOTEBOOKS.glob("[0-9][0-9]*_*.py")}
    assert {"00_ot_gradients_explained", "01_select", "02_prefinetune", "03_evaluate", "04_ablations"} <= stems


def test_every_notebook_has_a_smoke_execution_that_checks_what_a_reader_sees() -> None:
    assert set(READER_VIEW_CHECKED_BY) == {p.stem for p in _notebooks()}
    for test in set(READER_VIEW_CHECKED_BY.values()):
        module, _, name = test.rpartition("::")
        source = (REPO / module).read_text() if module else Path(__file__).read_text()
        assert f"def {name}(" in source, f"{test} does not exist"


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.stem)
def test_committed_notebook_has_no_outputs_and_matches_its_script(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{path.name} cell {i} has outputs; run `nbstripout {path}` before committing")
    assert "papermill" not in nb.metadata, f"{path.name} is an executed copy; commit the clean notebook"
    script = jupytext.read(path.with_suffix(".py"))
    pairs = list(zip(nb.cells, script.cells))
    assert len(nb.cells) == len(script.cells), (
        f"{path.name} and its .py differ in cell count; run `jupytext --sync {path.with_suffix('.py')}`")
    for i, (a, b) in enumerate(pairs):
        assert (a.cell_type, a.source.strip()) == (b.cell_type, b.source.strip()), (
            f"{path.name} cell {i} differs from the paired script; run `jupytext --sync {path.with_suffix('.py')}`")


KERNELSPEC = {"name": KERNEL, "display_name": "Python 3 (ipykernel)", "language": "python"}
"""The venv's own kernel (ipykernel's built-in spec): JupyterLab opens on it without a kernel picker."""


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.stem)
def test_committed_notebook_and_its_script_name_the_kernel_and_the_clean_filter_keeps_it(path: Path) -> None:
    import subprocess

    from papermill.utils import nb_kernel_name, nb_language

    fix = (f"set it in {path.name}'s metadata (and its notebook_metadata_filter to that of notebooks/jupytext.toml), "
           f"then `jupytext --sync {path}`")
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("kernelspec") == KERNELSPEC, f"{path.name} names no python3 kernel; {fix}"
    assert nb.metadata.get("language_info", {}).get("name") == "python", f"{path.name}: no language_info name; {fix}"
    assert nb_kernel_name(nb) == KERNEL and nb_language(nb) == "python"  # papermill runs it without -k
    script = jupytext.read(path.with_suffix(".py"))  # the .py header carries them too, for a notebook opened from it
    assert script.metadata.get("kernelspec") == KERNELSPEC, f"{path.with_suffix('.py').name}: no kernel; {fix}"
    assert script.metadata.get("language_info") == {"name": "python"}, f"{path.with_suffix('.py').name}: {fix}"
    # what git stores: the notebook through the nbstripout clean filter (with this repository's git config)
    stored = subprocess.run([sys.executable, "-m", "nbstripout", "-t", str(path)], capture_output=True, text=True,
                            cwd=REPO, check=True).stdout
    stored_nb = nbformat.reads(stored, as_version=4)
    assert stored_nb.metadata.get("kernelspec") == KERNELSPEC and stored_nb.metadata["language_info"]["name"] == "python"
    assert all(c.get("outputs", []) == [] and c.get("execution_count") is None for c in stored_nb.cells)
    assert stored_nb.metadata == nb.metadata, f"{path.name} has metadata nbstripout strips; run `nbstripout {path}`"


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.stem)
def test_parameters_cell_is_plain_literals_with_run_dir_and_smoke(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    params = papermill.inspect_notebook(str(path))
    assert params["run_dir"]["inferred_type_name"] == "str"
    assert params["smoke"]["inferred_type_name"] == "bool" and params["smoke"]["default"] == "False"
    for name, spec in params.items():
        assert spec["help"], f"{path.name}: parameter {name} has no help comment"
        assert spec["inferred_type_name"] != "None", f"{path.name}: parameter {name} has no type annotation"


def test_every_notebook_records_its_parameters_one_way() -> None:
    """One capture line per notebook: the names its parameters cell declares, from its own namespace."""
    for script in sorted(NOTEBOOKS.glob("[0-9][0-9]*_*.py")):
        source = script.read_text()
        assert source.count("declared_parameters(NOTEBOOK, globals()") == 1, f"{script.name}: no one capture line"
        assert "globals()).items()" not in source, f"{script.name} filters globals() by hand"


def _parameters_notebook(folder: Path, name: str = "params_probe") -> Path:
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": KERNEL, "language": "python",
                                                           "display_name": "Python 3"}})
    nb.cells = [nbformat.v4.new_code_cell('run_dir: str = "x"  # folder\nsmoke: bool = False  # small\n'
                                          'n: int = 3  # items\nthreads: int = 0  # cpu threads',
                                          metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("import json\nfrom gotd.runner.rundir import declared_parameters\n"
                                          "n = n * 2\n"
                                          f"print(json.dumps(declared_parameters({name!r}, globals(), "
                                          "leave_out=('threads',), extra=1)))")]
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def test_declared_parameters_reads_the_cell_and_the_namespace(tmp_path: Path, monkeypatch) -> None:
    from gotd.errors import GotdInputError
    from gotd.runner.rundir import declared_parameters, notebook_file

    path = _parameters_notebook(tmp_path)
    namespace = {"run_dir": "r", "smoke": True, "n": 7, "threads": 2, "other": "not declared"}
    recorded = declared_parameters(path, namespace, leave_out=["threads"], n=8, config={"lr": 1})
    assert recorded == {"smoke": True, "n": 8, "config": {"lr": 1}} and list(recorded) == ["smoke", "n", "config"]
    assert declared_parameters(path, namespace) == {"smoke": True, "n": 7, "threads": 2}
    monkeypatch.chdir(tmp_path)  # a name is found in the working directory (a kernel's: its notebook's folder)
    assert notebook_file("params_probe") == tmp_path / "params_probe.ipynb"
    assert notebook_file("01_select") == NOTEBOOKS / "01_select.ipynb"  # else in the kit's notebooks/
    with pytest.raises(GotdInputError, match="declares n, threads, which the namespace given lacks"):
        declared_parameters("params_probe", {"smoke": False})
    with pytest.raises(GotdInputError, match="notebook no_such_notebook not found"):
        declared_parameters("no_such_notebook", namespace)


def test_declared_parameters_records_what_papermill_injected(kernel_env: None, tmp_path: Path) -> None:
    path = _parameters_notebook(tmp_path)
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(path), str(out), parameters={"smoke": True, "n": 5, "threads": 4},
                               kernel_name=KERNEL, progress_bar=False, cwd=str(tmp_path))
    printed = nbformat.read(out, as_version=4).cells[-1].outputs[0]["text"]
    assert json.loads(printed) == {"smoke": True, "n": 10, "extra": 1}


# ---------------------------------------------------------------------------------------------------
# smoke executions
# ---------------------------------------------------------------------------------------------------


def test_00_ot_gradients_explained(kernel_env: None, tmp_path: Path) -> None:
    run_dir = _execute("00_ot_gradients_explained", tmp_path)
    results = _results(run_dir, "00_ot_gradients_explained")
    # The pool under-represents the rare cluster: GOT-D takes only it, matching takes the target's half and
    # half, random the pool's 10%.
    assert _value(results, "gotd", "rare_share") == 1.0
    assert 0.35 <= _value(results, "matching", "rare_share") <= 0.65 and _value(results, "random", "rare_share") < 0.3
    assert _value(results, "gotd", "ot_change_lam0.05") < _value(results, "matching", "ot_change_lam0.05") < 1.0
    sweep = results[results["metric"] == "rare_share_eps_sweep"]
    assert len(sweep) == 3 and sweep["eps_rel"].is_monotonic_increasing
    figures = {p.stem for p in (run_dir / "figures").glob("*.png")}
    assert figures == {"ot_plan", "gradient_map", "selections", "mixture_ot_change", "eps_effect", "eps_gradient_maps"}
    assert json.loads((run_dir / "run.json").read_text())["parameters"]["smoke"] is True


@pytest.mark.slow
def test_01_select(kernel_env: None, tmp_path: Path) -> None:
    methods = ["gotd", "matching", "knn", "dsir", "random"]
    run_dir = _execute("01_select", tmp_path, cache_dir="none", budget=24)
    for method in methods:
        lines = (run_dir / "selections" / f"{method}.jsonl").read_text().splitlines()
        assert len(lines) == 24
        rows = [json.loads(line) for line in lines]
        assert [r["rank"] for r in rows] == list(range(1, 25)) and len({r["index"] for r in rows}) == 24
        assert {r["domain"] for r in rows} <= {"film", "politics", "science", "sport"}
        assert json.loads((run_dir / "selections" / f"{method}.jsonl.json").read_text())["method"] == method
    results = _results(run_dir, "01_select")
    assert set(results["method"]) == set(methods) | {"(pool)"}
    assert (results.loc[results["method"] != "(pool)", "budget"] == 24).all()
    # The toy target is film reviews and film is 10% of the toy pool (24 chunks): GOT-D takes all of it.
    assert _value(results, "gotd", "domain_share:film") == 1.0
    assert _value(results, "random", "domain_share:film") < 0.5
    assert _value(results, "gotd", "overlap_with_gotd") == 1.0
    domain_distances = results[results["metric"].str.startswith("domain_ot_distance:")]
    assert domain_distances.sort_values("value")["metric"].iloc[0] == "domain_ot_distance:film"
    assert _value(results, "gotd", "ot_change_lam0.05") < _value(results, "random", "ot_change_lam0.05")
    figures = {p.stem for p in (run_dir / "figures").glob("*.png")}
    assert figures == {"convergence", "score_distributions", "domain_makeup", "projection", "overlap",
                       "mixture_ot_change"}


@pytest.mark.slow
def test_04_ablations(kernel_env: None, tmp_path: Path) -> None:
    run_dir = _execute("04_ablations", tmp_path, cache_dir="none")
    results = _results(run_dir, "04_ablations")
    assert set(results["ablation"]) == {"eps_rel", "tol", "strategy", "budget", "pool_fraction", "encoder",
                                        "calibration"}
    calibration = results[results["ablation"] == "calibration"]
    assert calibration["value"].tolist() == pytest.approx([1.0, 1.0, 1.0])
    agreement = results[results["metric"] == "topk_agreement"]
    assert agreement["value"].between(0, 1).all()
    # The first encoder variant is the reference's own embeddings and settings: full agreement.
    assert agreement[(agreement["ablation"] == "encoder") & (agreement["setting"] == "mean")]["value"].eq(1.0).all()
    figures = {p.stem for p in (run_dir / "figures").glob("*.png")}
    assert figures == {"eps_agreement", "tol_agreement", "strategy_agreement", "budget_domains",
                       "pool_size_agreement", "encoder_overlap"}


def _toy_selection(tmp_path: Path, budget: int = 20) -> Path:
    """A random selection of the toy pool, written with its sidecar as 01_select writes it."""
    from gotd.selection import save_selection
    from gotd.stages import load_pool, select_all

    pool = load_pool("builtin", smoke=True, progress=False)
    selection = select_all(pool, pool.iloc[:5], methods=["random"], budgets=[budget], seed=0)[("random", budget)]
    return save_selection(selection, tmp_path / "selections" / "random.jsonl", records=pool,
                          extra={"encoder": {}, "inputs": {"task": "toy-film", "smoke": True}})


@pytest.mark.slow
def test_02_prefinetune(kernel_env: None, tmp_path: Path) -> None:
    from gotd.stages.prefinetune import SMOKE_TRAINING

    selection = _toy_selection(tmp_path)
    run_dir = _execute("02_prefinetune", tmp_path, selection_path=str(selection), seed=1)
    checkpoint = run_dir / "models" / "lm"
    record = json.loads((checkpoint / "gotd_train.json").read_text())
    assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "tokenizer.json").is_file()
    assert record["model"] == "tiny" and record["seed"] == 1 and record["steps"] == SMOKE_TRAINING["max_steps"]
    assert record["data"]["selection"] == {"method": "random", "seed": 0, "budget": 20}
    results = _results(run_dir, "02_prefinetune")
    assert set(results["metric"]) == {"train_loss", "first_loss", "final_loss", "steps", "tokens_seen",
                                      "data_share_seen", "n_tokens", "seconds"}
    assert (results["method"] == "random").all() and (results["budget"] == 20).all() and (results["seed"] == 1).all()
    assert (results["task"] == "toy-film").all()  # from the selection's sidecar
    assert _value(results, "random", "steps") == SMOKE_TRAINING["max_steps"]
    assert _value(results, "random", "tokens_seen") == SMOKE_TRAINING["max_steps"] * 4 * 32  # batch 4 x 32 tokens
    assert 0 < _value(results, "random", "data_share_seen") <= 1
    assert _value(results, "random", "train_loss") == pytest.approx(record["train_loss"])
    assert {p.stem for p in (run_dir / "figures").glob("*.png")} == {"loss_curve"}
    # Run again: the finished checkpoint of the same model, data and settings is reused, not retrained.
    before = (checkpoint / "gotd_train.json").stat().st_mtime_ns
    _execute("02_prefinetune", tmp_path, selection_path=str(selection), seed=1)
    assert (checkpoint / "gotd_train.json").stat().st_mtime_ns == before


@pytest.mark.slow
def test_03_evaluate(kernel_env: None, tmp_path: Path) -> None:
    from gotd.stages.prefinetune import SMOKE_TRAINING, training_config
    from gotd.train import train

    selection = _toy_selection(tmp_path)
    # A warmed-up tiny model as 02_prefinetune writes it (models/<name>/; the models/ folder is passed).
    config = training_config("short", {"max_steps": 10}, smoke=True)
    train("tiny", selection, tmp_path / "warm" / "models" / "lm", config, progress=False)
    run_dir = _execute("03_evaluate", tmp_path, model_dirs={"random": str(tmp_path / "warm" / "models")}, budget=20,
                       evaluations=["zero-shot", "perplexity", "finetune", "toxicity"], finetune_seeds=[0, 1],
                       finetune_epochs=1, toxicity_generations=2)
    results = _results(run_dir, "03_evaluate")
    assert set(results["method"]) == {"base", "random"} and (results["model"] == "tiny").all()
    assert (results["budget"] == 20).all()
    for method in ("base", "random"):
        for metric in ("zero_shot_accuracy", "zero_shot_macro_f1"):
            row = results[(results["method"] == method) & (results["metric"] == metric)].iloc[0]
            assert row["n"] == 20 and row["split"] == "test"  # the toy task's test split, all of it
            assert 0 <= row["ci_low"] <= row["value"] <= row["ci_high"] <= 1
        assert _value(results, method, "perplexity") > 1
        few = results[(results["method"] == method) & (results["metric"] == "finetune_accuracy")]
        assert sorted(few["seed"]) == [0, 1]
        assert results[(results["method"] == method) & (results["metric"] == "finetune_accuracy_seed_mean")
                       ]["seed_aggregate"].all()
        assert 0 <= _value(results, method, "toxicity_probability") <= 1
    # The warm-up was on toy text from the same templates as the task: its perplexity there must drop.
    assert _value(results, "random", "perplexity") < 0.95 * _value(results, "base", "perplexity")
    assert SMOKE_TRAINING["max_steps"] < 10  # the overrides above won over the smoke settings
    assert {p.stem for p in (run_dir / "figures").glob("*.png")} == {"metrics"}


@pytest.mark.slow
def test_gotd_run_smoke_end_to_end(kernel_env: None, tmp_path: Path) -> None:
    """`gotd run smoke`: select -> pre-fine-tune -> evaluate on the toy data, collected into one report."""
    from gotd.cli import main

    assert main(["run", "smoke", "--reports-dir", str(tmp_path), "--quiet"]) == 0
    run_root = tmp_path / "smoke"
    results = pd.read_csv(run_root / "results.csv")
    assert set(results["stage"]) == {"select", "prefinetune", "evaluate"}
    evaluated = results[results["stage"] == "evaluate"]
    assert set(evaluated["method"]) == {"base", "gotd", "random"}
    assert {"zero_shot_accuracy", "zero_shot_macro_f1", "perplexity", "nll_per_token"} <= set(evaluated["metric"])
    trained = results[results["stage"] == "prefinetune"]
    assert set(trained["method"]) == {"gotd", "random"} and (trained["budget"] == 20).all()
    record = json.loads((run_root / "run.json").read_text())
    assert len(record["points"]) == 4 and all(p["status"] == "done" for p in record["points"])
    index = (run_root / "index.html").read_text()
    assert "zero_shot_accuracy" in index and "03_evaluate" in index
    assert list(run_root.glob("03_evaluate-*.html")) and list((run_root / "figures").glob("*.png"))
    # Every executed notebook shows its figures, and so does its HTML in the report.
    executed = sorted(run_root.glob("*.ipynb"))
    assert len(executed) == 4
    for notebook in executed:
        shown = assert_reader_view(notebook, notebook.with_suffix(""))
        assert notebook.with_suffix(".html").read_text().count("data:image/png;base64,") >= shown


@pytest.mark.slow
def test_01_select_paper_preset_sets_the_encoder_and_is_recorded(kernel_env: None, tmp_path: Path) -> None:
    """The encoder side of preset="paper"; the OT side needs gotd.ot to take preset= (the solver's part)."""
    run_dir = _execute("01_select", tmp_path, cache_dir="none", budget=12, methods=["knn", "random"],
                       preset="paper", domain_test=False)
    for method in ("knn", "random"):
        meta = json.loads((run_dir / "selections" / f"{method}.jsonl.json").read_text())
        assert meta["extra"]["preset"] == "paper"
        assert meta["extra"]["n_exact_duplicates"] >= 0
    knn = json.loads((run_dir / "selections" / "knn.jsonl.json").read_text())
    assert knn["extra"]["encoder"]["pooling"] == "mean_with_padding"
