"""Outputs the user names: inside their folder, never a data set or an input, writable before the work, and
``--overwrite`` deletes only what gotd wrote (gotd.outputs.check_output, at every front door)."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from gotd.cli import main
from gotd.errors import GotdInputError


def run(args: list[object]) -> int:
    return main([str(a) for a in args])


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("gotd: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def fake_data_set(folder: Path, kind: str = "task") -> Path:
    """A built data set as `gotd data fetch` leaves it: data.parquet and a manifest with its recipe."""
    folder.mkdir(parents=True)
    pd.DataFrame({"text": ["a review", "another review"], "label": [0, 1]}).to_parquet(folder / "data.parquet")
    (folder / "manifest.json").write_text(json.dumps({"name": folder.name, "kind": kind, "recipe": {}}))
    return folder


@contextlib.contextmanager
def mounted(folder: Path, options: str) -> Iterator[Path]:
    """A small tmpfs at ``folder`` (``options`` as for mount -o); the test skips where it cannot mount."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> None:
    """Fill the file system of ``folder`` to the last byte."""
    with open(folder / "filler", "wb") as fh:
        with contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
    with contextlib.suppress(OSError):
        with open(folder / "filler2", "wb") as fh:
            while True:
                fh.write(b"\0")
                fh.flush()


@pytest.fixture()
def texts(tmp_path: Path) -> tuple[Path, Path]:
    pool = write_jsonl(tmp_path / "pool.jsonl", [{"text": f"pool text number {i} about topic {i % 3}"}
                                                 for i in range(12)])
    target = write_jsonl(tmp_path / "target.jsonl", [{"text": f"target text {i} about topic 1"} for i in range(4)])
    return pool, target


# -------------------------------------------------------------------------------------------- 1. path escapes

@pytest.mark.parametrize("name", ["../outside", "/tmp/elsewhere", "a/../../outside", ".", ""])
def test_a_name_inside_a_folder_cannot_leave_it(tmp_path: Path, name: str) -> None:
    from gotd.outputs import check_output

    models = tmp_path / "run" / "models"
    models.mkdir(parents=True)
    with pytest.raises(GotdInputError, match="checkpoint_name"):
        check_output(name, flag="checkpoint_name", inside=models, folder=True)
    assert check_output("lm", flag="checkpoint_name", inside=models, folder=True) == models / "lm"


def test_a_symbolic_link_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    from gotd.outputs import check_output

    models = tmp_path / "run" / "models"
    models.mkdir(parents=True)
    (tmp_path / "users").mkdir()
    (models / "lm").symlink_to(tmp_path / "users")
    with pytest.raises(GotdInputError, match="leads out of"):
        check_output("lm", flag="checkpoint_name", inside=models, folder=True)


@pytest.mark.parametrize("name", ["../../outside", "/tmp/gotd-outside-run"])
def test_gotd_run_refuses_a_checkpoint_name_outside_the_run_folder_at_plan_time(tmp_path: Path, name: str) -> None:
    from gotd.runner.run import plan_run
    from gotd.runner.config import kit_notebook_dir, validate_config

    config = validate_config({
        "name": "escape", "notebook_dir": str(kit_notebook_dir()), "grid": {},
        "stages": [{"name": "prefinetune", "notebook": "02_prefinetune.ipynb",
                    "params": {"selection_path": "x.jsonl", "checkpoint_name": name, "overwrite": True}}]})
    with pytest.raises(GotdInputError, match=f"checkpoint_name '{name}' must be a name inside"):
        plan_run(config, tmp_path / "reports")
    assert not (tmp_path / "reports").exists()  # nothing created for a refused config


# -------------------------------------------------------------------------------------------- 2. data sets

def test_data_pool_never_replaces_a_built_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from gotd import assets

    data = tmp_path / "data"
    task = fake_data_set(data / "rotten-tomatoes")
    before = (task / "data.parquet").read_bytes()
    pool = pd.DataFrame({"id": ["p0"], "text": ["pool chunk"], "domain": ["d"]})
    pool.attrs["report"] = {"sources": {}, "total_chunks": 1, "chunk_chars": 10,
                            "held_out": {"documents": {"_all": {"matched": 0, "removed": 0}}}}
    monkeypatch.setattr(assets, "build_pool", lambda *a, **k: pool)
    assert run(["data", "pool", "--data-dir", data, "--out", task, "--sources", "wikipedia"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "built data set" in line and str(task) in line
    assert (task / "data.parquet").read_bytes() == before
    # its own pool folder, by contrast, is rebuilt
    assert run(["data", "pool", "--data-dir", data, "--out", data / "pool", "--sources", "wikipedia"]) == 0
    assert run(["data", "pool", "--data-dir", data, "--out", data / "pool", "--sources", "wikipedia"]) == 0
    # and a user's folder is not filled with pool files
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "data.parquet").write_text("mine")
    assert run(["data", "pool", "--data-dir", data, "--out", mine, "--sources", "wikipedia"]) == 2
    assert "was not written by gotd" in one_line(capsys.readouterr().err)
    assert (mine / "data.parquet").read_text() == "mine"


def test_select_never_writes_into_a_built_data_set(tmp_path: Path, texts: tuple[Path, Path],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    pool, target = texts
    task = fake_data_set(tmp_path / "data" / "rotten-tomatoes")
    before = (task / "data.parquet").read_bytes()
    for out in (task / "data.parquet", task / "selection.jsonl"):
        assert run(["select", "--pool", pool, "--target", target, "--budget", 2, "--method", "random",
                    "--out", out, "--quiet", "--no-cache"]) == 2
        assert "built data set" in one_line(capsys.readouterr().err)
    assert (task / "data.parquet").read_bytes() == before and not (task / "selection.jsonl").exists()


# -------------------------------------------------------------------------------------------- 3. --overwrite

def test_train_overwrite_deletes_only_a_gotd_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    selection = write_jsonl(tmp_path / "sel.jsonl", [{"text": "some words to train on"}] * 4)
    users = tmp_path / "my-folder"
    users.mkdir()
    (users / "thesis.tex").write_text("years of work")
    assert run(["train", "--selection", selection, "--model", "tiny", "--out", users, "--overwrite",
                "--quiet", "--device", "cpu"]) == 2
    line = one_line(capsys.readouterr().err)
    assert str(users) in line and "was not written by gotd" in line
    assert (users / "thesis.tex").read_text() == "years of work"


def test_a_trained_folder_follows_the_umask(tmp_path: Path) -> None:
    from gotd.models import build_tiny_causal_lm
    from gotd.train import TrainConfig, train

    tiny = build_tiny_causal_lm(tmp_path / "tiny")
    old = os.umask(0o022)
    try:
        result = train(tiny, ["the cat sat on the mat. " * 8] * 4, tmp_path / "out",
                       TrainConfig(max_steps=1, batch_size=2, max_length=16), device="cpu", progress=False)
    finally:
        os.umask(old)
    assert result.output_dir.stat().st_mode & 0o777 == 0o755
    assert (result.output_dir / "model.safetensors").stat().st_mode & 0o777 == 0o644


# -------------------------------------------------------------------------------------------- 5. unwritable

def test_every_command_refuses_a_read_only_output_before_the_work(tmp_path: Path, texts: tuple[Path, Path],
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import gotd.evaluate
    import gotd.train

    pool, target = texts
    selection = write_jsonl(tmp_path / "sel.jsonl", [{"text": "a text"}] * 3)
    worked: list[str] = []
    monkeypatch.setattr(gotd.train, "train", lambda *a, **k: worked.append("train"))
    monkeypatch.setattr(gotd.evaluate, "evaluate_on_task", lambda *a, **k: worked.append("evaluate"))
    with mounted(tmp_path / "ro", "ro,size=1m") as ro:
        commands = {
            "select": ["select", "--pool", pool, "--target", target, "--budget", 2, "--method", "random",
                       "--out", ro / "sel.jsonl", "--quiet", "--no-cache"],
            "embed": ["embed", "--input", pool, "--out", ro / "e.npy", "--quiet", "--no-cache"],
            "train": ["train", "--selection", selection, "--model", "tiny", "--out", ro / "model", "--quiet"],
            "evaluate": ["evaluate", "--model", "tiny", "--out", ro / "r.csv", "--quiet"],
            "select-demo": ["select-demo", "--out", ro / "demo", "--quiet"],
            "cache": ["select", "--pool", pool, "--target", target, "--budget", 2, "--method", "knn",
                      "--out", tmp_path / "k.jsonl", "--quiet", "--cache-dir", ro / "cache"],
            "pool": ["data", "pool", "--out", ro / "pool", "--data-dir", tmp_path / "data"],
            "fetch": ["data", "fetch", "rotten-tomatoes", "--data-dir", ro / "data"],
            "run": ["run", "demo", "--reports-dir", ro / "reports"],
        }
        for name, args in commands.items():
            assert run(args) == 2, name
            line = one_line(capsys.readouterr().err)
            assert "read-only" in line and ".tmp" not in line and "probe" not in line, (name, line)
        assert worked == [] and list(ro.iterdir()) == []


def test_a_full_disk_is_one_line_before_and_during_the_work(tmp_path: Path, texts: tuple[Path, Path],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from gotd._io import write_text_atomic

    pool, target = texts
    with mounted(tmp_path / "full", "size=256k") as full:
        fill(full)
        assert run(["select", "--pool", pool, "--target", target, "--budget", 2, "--method", "random",
                    "--out", full / "sel.jsonl", "--quiet", "--no-cache"]) == 2
        line = one_line(capsys.readouterr().err)
        assert "no space" in line and str(full / "sel.jsonl") in line
        assert run(["embed", "--input", pool, "--out", tmp_path / "e.npy", "--quiet",
                    "--cache-dir", full / "cache"]) == 2
        assert "no space" in one_line(capsys.readouterr().err)
        # a disk that fills up while writing: the user's path, never the temporary file's
        (full / "filler").unlink()
        with pytest.raises(GotdInputError, match=r"cannot write .*big\.txt: no space is left") as info:
            write_text_atomic(full / "big.txt", "x" * (1 << 20))
        assert ".tmp" not in str(info.value)
        assert sorted(p.name for p in full.iterdir()) == ["filler2"]  # nothing half-written is left


def test_a_read_only_cache_of_finished_entries_still_serves(tmp_path: Path, texts: tuple[Path, Path],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    pool, target = texts
    cache = tmp_path / "cache"
    common = ["select", "--pool", pool, "--target", target, "--budget", 2, "--method", "knn", "--quiet",
              "--cache-dir", cache]
    assert run([*common, "--out", tmp_path / "a.jsonl"]) == 0
    done = subprocess.run(["mount", "--bind", "-o", "ro", str(cache), str(cache)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount read-only here (needs root): {done.stderr.strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(cache)], check=False, capture_output=True)
        assert run([*common, "--out", tmp_path / "b.jsonl"]) == 0  # only read
        assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()
        other = write_jsonl(tmp_path / "other.jsonl", [{"text": "texts never embedded before"}])
        assert run(["select", "--pool", pool, "--target", other, "--budget", 2, "--method", "knn", "--quiet",
                    "--cache-dir", cache, "--out", tmp_path / "c.jsonl"]) == 2
        line = one_line(capsys.readouterr().err)  # a new entry must be written: one line, naming the cache
        assert "read-only" in line and "cache_dir" in line and not (tmp_path / "c.jsonl").exists()
    finally:
        subprocess.run(["umount", "-l", str(cache)], check=False)


def test_a_notebook_run_dir_inside_a_data_set_is_refused(tmp_path: Path) -> None:
    from gotd.runner.rundir import RunDir

    task = fake_data_set(tmp_path / "data" / "rotten-tomatoes")
    with pytest.raises(GotdInputError, match="run_dir .* is in the built data set"):
        RunDir(task / "run", "01_select")
    assert sorted(p.name for p in task.iterdir()) == ["data.parquet", "manifest.json"]


def test_a_file_gotd_did_not_write_is_never_replaced(tmp_path: Path, texts: tuple[Path, Path],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    pool, target = texts
    mine = tmp_path / "results.csv"
    mine.write_text("my,own\n1,2\n")
    common = ["select", "--pool", pool, "--target", target, "--budget", 2, "--method", "random", "--quiet",
              "--no-cache"]
    assert run([*common, "--out", mine]) == 2
    line = one_line(capsys.readouterr().err)
    assert str(mine) in line and "was not written by gotd" in line and mine.read_text() == "my,own\n1,2\n"
    assert run(["embed", "--input", pool, "--out", tmp_path / "results.csv.npy", "--quiet", "--no-cache"]) == 0
    (tmp_path / "mine.npy").write_bytes(b"mine")
    assert run(["embed", "--input", pool, "--out", tmp_path / "mine.npy", "--quiet", "--no-cache"]) == 2
    assert (tmp_path / "mine.npy").read_bytes() == b"mine"
    # gotd's own output (its sidecar next to it) is written again
    assert run([*common, "--out", tmp_path / "sel.csv"]) == 0
    assert run([*common, "--out", tmp_path / "sel.csv"]) == 0
