"""``gotd run`` on tiny stand-in notebooks: grid, dependencies, resume, failures, collection, report."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml

import gotd.runner.run as run_module
from gotd.cli import main
from gotd.errors import GotdInputError
from gotd.runner.config import builtin_config_names, load_config, validate_config
from gotd.runner.execute import MARKER_FILE, PointResult, check_parameters
from gotd.runner.grid import expand_points

SELECT_PARAMS = '''run_dir: str = "."  # where everything is written
smoke: bool = False  # tiny settings
budget: int = 10  # number of items to select
seed: int = 0  # random seed
fail_budget: int = -1  # raise an error when budget equals this (to test failures)'''

SELECT_BODY = '''from pathlib import Path
import json, random
import pandas as pd
out = Path(run_dir)
(out / "selections").mkdir(parents=True, exist_ok=True)
rng = random.Random(seed)
chosen = sorted(rng.sample(range(100), budget))
(out / "selections" / "random.jsonl").write_text("".join(json.dumps({"index": i}) + "\\n" for i in chosen))'''

FAIL_CELL = '''if budget == fail_budget:
    raise ValueError(f"budget {budget} is not allowed here")'''

SELECT_RESULTS = '''pd.DataFrame([{"notebook": "select", "task": "toy", "method": "random", "budget": budget, "seed": seed,
               "model": "none", "metric": "mean_index", "value": sum(chosen) / len(chosen)}]
             ).to_csv(out / "results.csv", index=False)'''

EVAL_PARAMS = '''run_dir: str = "."  # where everything is written
selection_path: str = ""  # the selection file to evaluate
budget: int = 10  # budget of that selection
seed: int = 0  # random seed'''

EVAL_BODY = '''from pathlib import Path
import json
import pandas as pd
rows = [json.loads(line) for line in Path(selection_path).read_text().splitlines()]
pd.DataFrame([{"notebook": "evaluate", "task": "toy", "method": "random", "budget": budget, "seed": seed,
               "model": "m", "metric": "count", "value": len(rows)},
              {"notebook": "evaluate", "task": "toy", "method": "random", "budget": budget, "seed": seed,
               "model": "m", "metric": "max_index", "value": max(r["index"] for r in rows)}]
             ).to_csv(Path(run_dir) / "results.csv", index=False)'''


def write_notebook(path: Path, params: str, *cells: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# stand-in"),
                nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
                *[nbformat.v4.new_code_cell(c) for c in cells]]
    nbformat.write(nb, str(path))
    return path


@pytest.fixture()
def notebooks(tmp_path: Path) -> Path:
    folder = tmp_path / "nbs"
    folder.mkdir()
    write_notebook(folder / "01_select.ipynb", SELECT_PARAMS, SELECT_BODY, FAIL_CELL, SELECT_RESULTS)
    write_notebook(folder / "03_evaluate.ipynb", EVAL_PARAMS, EVAL_BODY)
    return folder


def make_config(notebooks: Path, **params: object) -> dict:
    return {
        "name": "toy",
        "notebook_dir": str(notebooks),
        "grid": {"budget": [5, 7], "seed": [3]},
        "params": {"seed": "{seed}"},
        "stages": [
            {"name": "select", "notebook": "01_select.ipynb", "over": ["budget", "seed"],
             "params": {"budget": "{budget}", "smoke": True, **params}},
            {"name": "evaluate", "notebook": "03_evaluate.ipynb", "over": ["budget", "seed"], "after": ["select"],
             "params": {"budget": "{budget}", "selection_path": "{dirs[select]}/selections/random.jsonl"}},
        ],
    }


def test_expansion_renders_templates_and_dependencies(notebooks: Path, tmp_path: Path) -> None:
    config = validate_config(make_config(notebooks))
    points = expand_points(config, tmp_path / "reports" / "toy")
    assert [p.name for p in points] == ["01_select-budget=5-seed=3", "01_select-budget=7-seed=3",
                                        "03_evaluate-budget=5-seed=3", "03_evaluate-budget=7-seed=3"]
    sel, ev = points[0], points[2]
    # A value that is exactly one field keeps its type; run_dir is the point's own folder.
    assert sel.parameters == {"seed": 3, "budget": 5, "smoke": True, "run_dir": str(sel.run_dir)}
    assert ev.depends_on == ["01_select-budget=5-seed=3"]
    assert ev.parameters["selection_path"] == f"{sel.run_dir}/selections/random.jsonl"
    assert sel.output_notebook == (tmp_path / "reports" / "toy" / "01_select-budget=5-seed=3.ipynb").resolve()


def test_each_builds_a_mapping_over_an_axis(notebooks: Path, tmp_path: Path) -> None:
    raw = make_config(notebooks)
    raw["grid"]["method"] = ["gotd", "random"]
    raw["stages"][0]["over"] = ["budget", "seed", "method"]
    raw["stages"][1]["params"]["selection_path"] = {"$each": "method", "$value": "{dirs[select]}/x.jsonl"}
    raw["stages"][0]["params"]["smoke"] = "{grid[method]}"
    points = expand_points(validate_config(raw), tmp_path / "r")
    ev = next(p for p in points if p.name == "03_evaluate-budget=7-seed=3")
    assert ev.parameters["selection_path"] == {
        "gotd": str(tmp_path.resolve() / "r" / "01_select-budget=7-seed=3-method=gotd" / "x.jsonl"),
        "random": str(tmp_path.resolve() / "r" / "01_select-budget=7-seed=3-method=random" / "x.jsonl")}
    assert len(ev.depends_on) == 2
    assert points[0].parameters["smoke"] == ["gotd", "random"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.update(name="bad name!"), "name:"),
        (lambda c: c.update(colour="red"), "colour: unknown key"),
        (lambda c: c["grid"].update(seed=[]), "grid.seed: is empty"),
        (lambda c: c["grid"].update(seed=[{"a": 1}]), "grid.seed"),
        (lambda c: c["stages"][0].update(over=["budgt"]), "'budgt' is not a grid axis"),
        (lambda c: c["stages"][1].update(after=["train"]), "'train' is not an earlier stage"),
        (lambda c: c["stages"][1].update(name="select"), "defined twice"),
        (lambda c: c["stages"][0].update(notebook="01_select.py"), "is not a .ipynb path"),
        (lambda c: c["stages"][0].update(timeout=-1), "timeout"),
        (lambda c: c["stages"][0]["params"].update(run_dir="x"), "run_dir: is set by the runner"),
        (lambda c: c.update(stages=[]), "stages: must be a non-empty list"),
    ],
)
def test_config_errors_name_the_key(notebooks: Path, change, message: str) -> None:
    raw = make_config(notebooks)
    change(raw)
    with pytest.raises(GotdInputError, match="config") as info:
        validate_config(raw)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("stage", "key", "value", "message"),
    [
        (1, "selection_path", "{dirs[evaluate]}", "dirs[evaluate] names no earlier stage"),
        (0, "budget", "{method}", "unknown template field {method}"),
        (1, "selection_path", "{sede}", "unknown template field {sede}"),
    ],
)
def test_template_errors_name_the_parameter(notebooks: Path, tmp_path: Path, stage: int, key: str, value: str,
                                            message: str) -> None:
    raw = make_config(notebooks)
    raw["stages"][stage]["params"][key] = value
    with pytest.raises(GotdInputError, match=f"params.{key}") as info:
        expand_points(validate_config(raw), tmp_path)
    assert message in str(info.value)


def test_parameters_are_checked_against_the_notebook(notebooks: Path, tmp_path: Path) -> None:
    raw = make_config(notebooks, budgt=3)
    with pytest.raises(GotdInputError, match="has no parameter 'budgt'"):
        run_module.plan_run(validate_config(raw), tmp_path)
    raw = make_config(notebooks)
    raw["stages"][0]["params"]["seed"] = "three"
    with pytest.raises(GotdInputError, match="annotated int"):
        run_module.plan_run(validate_config(raw), tmp_path)
    raw = make_config(notebooks)
    raw["stages"][0]["params"]["smoke"] = 1  # an int is not a bool
    with pytest.raises(GotdInputError, match="smoke"):
        run_module.plan_run(validate_config(raw), tmp_path)
    raw = make_config(notebooks)
    raw["stages"][0]["notebook"] = "missing.ipynb"
    with pytest.raises(GotdInputError, match="does not exist"):
        run_module.plan_run(validate_config(raw), tmp_path)


def test_overrides_and_yaml_file(notebooks: Path, tmp_path: Path) -> None:
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(make_config(notebooks)))
    config = load_config(path, ["grid.seed=[1, 2]", "name=toy2"])
    assert config.grid["seed"] == [1, 2] and config.name == "toy2"
    with pytest.raises(GotdInputError, match="KEY=VALUE"):
        load_config(path, ["grid.seed"])
    with pytest.raises(GotdInputError, match="unknown config 'nope'"):
        load_config("nope")
    with pytest.raises(GotdInputError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_run_resumes_after_an_interruption(notebooks: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    config = validate_config(make_config(notebooks))
    reports = tmp_path / "reports"
    real_execute = run_module.execute_point
    calls: list[str] = []

    def interrupted_after_one(point, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(point.name)
        return real_execute(point, **kwargs)

    monkeypatch.setattr(run_module, "execute_point", interrupted_after_one)
    with pytest.raises(KeyboardInterrupt):
        run_module.run_config(config, reports_dir=reports, progress=False, stream_output=False)
    run_root = (reports / "toy").resolve()
    assert (run_root / "01_select-budget=5-seed=3" / MARKER_FILE).is_file()
    record = json.loads((run_root / "run.json").read_text())
    assert [p["status"] for p in record["points"]] == ["done", "not run", "not run", "not run"]

    executed: list[str] = []

    def counting(point, **kwargs):
        executed.append(point.name)
        return real_execute(point, **kwargs)

    monkeypatch.setattr(run_module, "execute_point", counting)
    summary = run_module.run_config(config, reports_dir=reports, progress=False, stream_output=False)
    assert summary.ok
    assert executed == ["01_select-budget=7-seed=3", "03_evaluate-budget=5-seed=3", "03_evaluate-budget=7-seed=3"]
    assert summary.results["01_select-budget=5-seed=3"].status == "skipped"

    table = pd.read_parquet(run_root / "results.parquet")
    assert len(table) == 2 + 2 * 2  # one row per select point, two per evaluate point
    counts = table[table.metric == "count"].set_index("budget")["value"]
    assert counts.to_dict() == {5: 5.0, 7: 7.0}
    assert set(table["point"]) == {p.name for p in summary.points}
    pd.testing.assert_frame_equal(pd.read_csv(run_root / "results.csv"), table, check_dtype=False)

    for point in summary.points:
        assert point.output_notebook.is_file() and point.html.is_file()
        assert "budget" in point.html.read_text()
    index = (run_root / "index.html").read_text()
    assert "03_evaluate-budget=7-seed=3.html" in index and "max_index" in index and "Provenance" in index
    # The standard figures: one per task x metric, drawn from the collected table.
    assert (run_root / "figures" / "toy-count.png").is_file() and 'src="figures/toy-count.png"' in index

    # A third run does nothing and gives the same table.
    executed.clear()
    again = run_module.run_config(config, reports_dir=reports, progress=False, stream_output=False, html=False)
    assert executed == [] and {r.status for r in again.results.values()} == {"skipped"}
    pd.testing.assert_frame_equal(pd.read_parquet(run_root / "results.parquet"), table)

    # Changing a parameter of the select stage runs that stage and everything after it again.
    changed = validate_config(make_config(notebooks, fail_budget=99))
    run_module.run_config(changed, reports_dir=reports, progress=False, stream_output=False, html=False)
    assert len(executed) == 4


def test_failing_point_is_reported_and_the_others_finish(notebooks: Path, tmp_path: Path) -> None:
    config = validate_config(make_config(notebooks, fail_budget=7))
    summary = run_module.run_config(config, reports_dir=tmp_path / "reports", progress=False, stream_output=False)
    assert not summary.ok
    status = {name: r.status for name, r in summary.results.items()}
    assert status == {"01_select-budget=5-seed=3": "done", "01_select-budget=7-seed=3": "failed",
                      "03_evaluate-budget=5-seed=3": "done", "03_evaluate-budget=7-seed=3": "blocked"}
    error = summary.results["01_select-budget=7-seed=3"].error
    assert error["ename"] == "ValueError" and "budget 7 is not allowed" in error["evalue"]
    assert error["notebook"].endswith("01_select.ipynb")
    # Cells of the executed notebook: markdown, parameters, injected parameters, body, the failing cell.
    assert error["cell_index"] == 4
    run_root = summary.run_root
    assert not (run_root / "01_select-budget=7-seed=3" / MARKER_FILE).exists()
    assert (run_root / "01_select-budget=7-seed=3.html").is_file()  # the failed notebook is viewable
    assert set(summary.table["budget"]) == {5}
    index = (run_root / "index.html").read_text()
    assert "Failures" in index and "budget 7 is not allowed" in index
    record = json.loads((run_root / "run.json").read_text())
    failed = next(p for p in record["points"] if p["status"] == "failed")
    assert failed["error"]["cell_index"] == 4

    # Running again retries only the failed point, and keeps what its unfinished attempt left (checkpoints).
    partial = run_root / "01_select-budget=7-seed=3" / "models" / "checkpoint-1"
    partial.mkdir(parents=True)
    again = run_module.run_config(config, reports_dir=tmp_path / "reports", progress=False, stream_output=False,
                                  html=False)
    assert [again.results[p.name].status for p in again.points] == ["skipped", "failed", "skipped", "blocked"]
    assert partial.is_dir()


def test_unfinished_attempt_is_kept_only_for_the_same_parameters(notebooks: Path, tmp_path: Path) -> None:
    from gotd.runner.execute import _prepare_run_dir

    point = expand_points(validate_config(make_config(notebooks)), tmp_path)[0]
    _prepare_run_dir(point, "sha", keep_partial=True)
    (point.run_dir / "models").mkdir()
    (point.run_dir / "results.csv").write_text("stale")
    _prepare_run_dir(point, "sha", keep_partial=True)
    assert (point.run_dir / "models").is_dir() and not (point.run_dir / "results.csv").exists()
    _prepare_run_dir(point, "other notebook code", keep_partial=True)
    assert not (point.run_dir / "models").exists()
    (point.run_dir / "models").mkdir()
    _prepare_run_dir(point, "other notebook code", keep_partial=False)  # --force or upstream ran again
    assert not (point.run_dir / "models").exists()
    (point.run_dir / "models").mkdir()
    (point.run_dir / MARKER_FILE).write_text("{}")  # a finished attempt is never resumed
    _prepare_run_dir(point, "other notebook code", keep_partial=True)
    assert not (point.run_dir / "models").exists()


def test_fail_fast_and_blocked_points(notebooks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Orchestration only: the notebooks are replaced by a stub that fails one point."""
    def fake_execute(point, **kwargs):
        point.run_dir.mkdir(parents=True, exist_ok=True)
        if "budget=5" in point.name and point.stage.name == "select":
            return PointResult(point.name, point.stage.name, "failed", 0.1,
                               {"ename": "RuntimeError", "evalue": "boom", "cell_index": 3,
                                "notebook": str(point.stage.notebook)})
        return PointResult(point.name, point.stage.name, "done", 0.1)

    monkeypatch.setattr(run_module, "execute_point", fake_execute)
    monkeypatch.setattr(run_module, "ensure_kernel", lambda: "python3")
    config = validate_config(make_config(notebooks))
    summary = run_module.run_config(config, reports_dir=tmp_path / "a", progress=False, html=False)
    assert [summary.results[p.name].status for p in summary.points] == ["failed", "done", "blocked", "done"]
    summary = run_module.run_config(config, reports_dir=tmp_path / "b", progress=False, html=False, fail_fast=True)
    assert [summary.results[p.name].status for p in summary.points] == ["failed", "not run", "not run", "not run"]


def test_check_parameters_accepts_optional_and_float(notebooks: Path, tmp_path: Path) -> None:
    point = expand_points(validate_config(make_config(notebooks)), tmp_path)[0]
    declared = {"run_dir": {"inferred_type_name": "str"}, "seed": {"inferred_type_name": "Optional[int]"},
                "budget": {"inferred_type_name": "float"}, "smoke": {"inferred_type_name": "bool | None"}}
    point.parameters.update(seed=None, budget=5, smoke=None)
    check_parameters(point, declared)


def test_builtin_configs_are_valid() -> None:
    names = builtin_config_names()
    assert {"demo", "smoke"} <= set(names)
    for name in names:
        config = load_config(name)
        assert config.stages and config.grid
        expand_points(config, Path("reports") / config.name)  # templates fill without errors


@pytest.mark.parametrize("name", builtin_config_names())
def test_builtin_select_stages_match_the_select_notebook(name: str, tmp_path: Path) -> None:
    """The select stage of every built-in config passes only parameters 01_select declares, with their types."""
    raw = load_config(name).raw
    raw = {**raw, "stages": [s for s in raw["stages"] if s["notebook"] == "01_select.ipynb"]}
    if not raw["stages"]:
        pytest.skip(f"{name} has no 01_select stage (the testbed configs select inside 05b_testbed_warmup)")
    points = run_module.plan_run(validate_config(raw, where=name), tmp_path)
    assert all(isinstance(p.parameters["budget"], int) and isinstance(p.parameters["methods"], list) for p in points)


def test_cli_list_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--list"]) == 0
    out = capsys.readouterr().out
    assert "demo" in out and "smoke" in out
    assert main(["run", "no-such-config"]) == 2
    assert "unknown config" in capsys.readouterr().err


def test_cli_plan_prints_every_point(notebooks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(make_config(notebooks)))
    assert main(["run", str(path), "--plan", "--reports-dir", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "03_evaluate-budget=7-seed=3  (after 01_select-budget=7-seed=3)" in out
    assert "budget = 7" in out
    assert not (tmp_path / "r").exists()


def test_overrides_are_checked_like_the_config(notebooks: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(make_config(notebooks)))
    with pytest.raises(GotdInputError, match=r"no grid axis 'nokey' \(its axes: budget, seed\)"):
        load_config(path, ["grid.nokey=[1]"])
    with pytest.raises(GotdInputError, match="'nope' is not a config key; the keys are name, description"):
        load_config(path, ["nope=1"])
    # A value of the right type that the stage itself refuses fails at plan time, before anything runs.
    config = load_config(path, ["grid.budget=[-5]"])
    with pytest.raises(GotdInputError, match=r"stage select \(01_select-budget=-5-seed=3\): budget=-5: must be an "
                                             r"integer >= 1"):
        run_module.plan_run(config, tmp_path / "r")
    assert main(["run", "smoke", "--plan", "--set", "grid.nokey=[1]"]) == 2
    assert "no grid axis 'nokey'" in capsys.readouterr().err
    assert main(["run", "smoke", "--plan", "--set", "grid.budget=[-5]", "--reports-dir", str(tmp_path / "r")]) == 2
    assert "budget=-5: must be an integer >= 1" in capsys.readouterr().err
    assert main(["run", "smoke", "--plan", "--set", "grid.method=[gotd, nope]", "--reports-dir",
                 str(tmp_path / "r")]) == 2
    assert "unknown" in capsys.readouterr().err


_HOLD_LOCK = """
import sys, time
from gotd.runner.lock import run_lock
with run_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_second_run_of_the_same_folder_is_refused_while_the_first_holds_it(
        notebooks: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from gotd.runner.lock import RunLockedError, run_lock

    config = validate_config(make_config(notebooks))
    run_root = tmp_path / "reports" / config.name
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(run_root), "30"], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"in use by another gotd run \\(pid {holder.pid} on "):
            run_module.run_config(config, reports_dir=tmp_path / "reports", html=False, progress=False,
                                  stream_output=False)
        assert not any(p.name.endswith(".ipynb") for p in run_root.iterdir())  # nothing of the run was written
    finally:
        holder.kill()
        holder.wait()
    with run_lock(run_root):  # the kernel released the killed holder's lock: no stale lock
        pass


PAIR_PARAMS = '''run_dir: str = "."  # where everything is written
part: str = "a"  # which of the two points this is'''

PAIR_BODY = '''import os, time
from pathlib import Path
import pandas as pd
out = Path(run_dir)
other = {"a": "b", "b": "a"}[part]
(out.parent / f"{part}.ready").write_text("x")
deadline = time.time() + 120
while not (out.parent / f"{other}.ready").exists():   # only two points running at once get past this
    assert time.time() < deadline, f"point {other} never ran beside point {part}"
    time.sleep(0.1)
pd.DataFrame([{"notebook": "pair", "task": "toy", "method": part, "budget": 0, "seed": 0, "model": "none",
               "metric": "threads", "value": float(os.environ.get("OMP_NUM_THREADS", "0"))}]
             ).to_csv(out / "results.csv", index=False)'''


def test_jobs_run_points_at_once_with_a_share_of_the_threads(tmp_path: Path) -> None:
    from gotd.runner.schedule import threads_per_job

    folder = tmp_path / "nbs"
    folder.mkdir()
    write_notebook(folder / "pair.ipynb", PAIR_PARAMS, PAIR_BODY)
    raw = {"name": "pair", "notebook_dir": str(folder), "jobs": 2, "grid": {"part": ["a", "b"]},
           "stages": [{"name": "pair", "notebook": "pair.ipynb", "over": ["part"], "params": {"part": "{part}"}}]}
    summary = run_module.run_config(validate_config(raw), reports_dir=tmp_path / "reports", progress=False,
                                    stream_output=False, html=False)
    assert summary.ok, summary.failed
    table = pd.read_parquet(summary.run_root / "results.parquet")
    assert table["value"].tolist() == [float(threads_per_job(2))] * 2
    assert json.loads((summary.run_root / "run.json").read_text())["jobs"] == 2
    with pytest.raises(GotdInputError, match="jobs"):
        validate_config({**raw, "jobs": 0})
    with pytest.raises(GotdInputError, match="jobs=0"):
        threads_per_job(0)
    assert threads_per_job(2, cpu_count=2) == 1 and threads_per_job(4, cpu_count=2) == 1


def test_one_job_runs_the_pair_one_after_the_other(tmp_path: Path) -> None:
    folder = tmp_path / "nbs"
    folder.mkdir()
    write_notebook(folder / "pair.ipynb", PAIR_PARAMS, PAIR_BODY.replace("120", "3"))
    raw = {"name": "pair", "notebook_dir": str(folder), "grid": {"part": ["a", "b"]},
           "stages": [{"name": "pair", "notebook": "pair.ipynb", "over": ["part"], "params": {"part": "{part}"}}]}
    summary = run_module.run_config(validate_config(raw), reports_dir=tmp_path / "reports", progress=False,
                                    stream_output=False, html=False)
    # the first point waits for a second that cannot start beside it: the control of the test above
    assert summary.results["pair-part=a"].status == "failed" and "never ran beside" in str(summary.results[
        "pair-part=a"].error)
