"""``gotd run`` says done only when it is: completion markers prove the outputs, plan-time checks of the
kernel and of the notebooks themselves."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pandas as pd
import pytest

import gotd.run as run_module
from gotd.cli import main
from gotd.errors import GotdInputError
from gotd.runner.config import validate_config

PARAMS = '''run_dir: str = "."  # where everything is written
rows: int = 50  # rows of results.csv'''

BODY = '''from pathlib import Path
import pandas as pd
pd.DataFrame([{"notebook": "toy", "task": "t", "method": "m", "budget": 1, "seed": 0, "model": "x",
               "metric": "row", "value": float(i)} for i in range(rows)]).to_csv(Path(run_dir) / "results.csv",
                                                                                 index=False)'''


def write_notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(PARAMS, metadata={"tags": ["parameters"]}), nbformat.v4.new_code_cell(BODY)]
    nbformat.write(nb, str(path))
    return path


def config(folder: Path) -> dict:
    return {"name": "proof", "notebook_dir": str(folder), "grid": {},
            "stages": [{"name": "toy", "notebook": "toy.ipynb"}]}


def test_a_corrupt_output_of_a_finished_point_runs_it_again(tmp_path: Path) -> None:
    write_notebook(tmp_path / "toy.ipynb")
    cfg = validate_config(config(tmp_path))
    reports = tmp_path / "reports"
    first = run_module.run_config(cfg, reports_dir=reports, progress=False, stream_output=False, html=False)
    results = first.points[0].run_dir / "results.csv"
    assert first.ok and len(pd.read_csv(results)) == 50
    lines = results.read_text().splitlines(keepends=True)
    results.write_text("".join(lines[:39]))  # a finished point's file cut short: 38 of 50 rows
    again = run_module.run_config(cfg, reports_dir=reports, progress=False, stream_output=False, html=False)
    assert again.results[first.points[0].name].status == "done"  # run again, not "skipped"
    assert len(pd.read_csv(results)) == 50 and len(again.table) == 50
    untouched = run_module.run_config(cfg, reports_dir=reports, progress=False, stream_output=False, html=False)
    assert untouched.results[first.points[0].name].status == "skipped"


def test_an_unknown_kernel_is_refused_before_the_run_folder_exists(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    write_notebook(tmp_path / "toy.ipynb")
    (tmp_path / "c.yaml").write_text(__import__("yaml").safe_dump(config(tmp_path)))
    reports = tmp_path / "reports"
    assert main(["run", str(tmp_path / "c.yaml"), "--reports-dir", str(reports), "--kernel", "no-such-kernel",
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no-such-kernel" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not reports.exists()
    with pytest.raises(GotdInputError, match="no-such-kernel"):
        run_module.run_config(validate_config(config(tmp_path)), reports_dir=reports, kernel_name="no-such-kernel")
    assert not reports.exists()


@pytest.mark.parametrize("content", ["{not json", "[]", '{"cells": 3}', "\udcff".encode("utf-8", "surrogateescape")])
def test_a_stage_notebook_that_is_not_a_notebook_is_one_line_at_plan_time(tmp_path: Path, content: object,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    nb = tmp_path / "toy.ipynb"
    if isinstance(content, bytes):
        nb.write_bytes(content)
    else:
        nb.write_text(content)
    (tmp_path / "c.yaml").write_text(__import__("yaml").safe_dump(config(tmp_path)))
    assert main(["run", str(tmp_path / "c.yaml"), "--reports-dir", str(tmp_path / "reports"), "--plan"]) == 2
    err = capsys.readouterr().err
    assert f"notebook {nb}" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_run_never_empties_a_folder_gotd_did_not_make(tmp_path: Path) -> None:
    write_notebook(tmp_path / "toy.ipynb")
    reports = tmp_path / "reports"
    users = reports / "proof"  # the run's folder name, already holding a user's work
    users.mkdir(parents=True)
    (users / "toy").mkdir()
    (users / "toy" / "notes.txt").write_text("mine")
    with pytest.raises(GotdInputError, match="was not written by gotd"):
        run_module.run_config(validate_config(config(tmp_path)), reports_dir=reports, progress=False,
                              stream_output=False, html=False)
    assert (users / "toy" / "notes.txt").read_text() == "mine"
