"""Hostile texts and file names: one line naming the file (and the row) and the fix, never a traceback."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gotd.cli import main
from gotd.data import read_texts
from gotd.errors import GotdInputError


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def select(pool: object, target: Path, out: Path) -> list[str]:
    return ["select", "--pool", os.fsdecode(pool), "--target", str(target), "--budget", "2", "--method", "random",
            "--out", str(out), "--quiet", "--no-cache"]


@pytest.fixture()
def target(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "target.jsonl", [{"text": f"target text {i}"} for i in range(4)])


def test_a_lone_surrogate_is_named_by_line(tmp_path: Path, target: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pool = tmp_path / "pool.jsonl"
    # json.dumps writes "\ud800" as the escape \ud800: valid JSON, not valid Unicode text
    write_jsonl(pool, [{"text": "fine text"}, {"text": "fine again"}, {"text": "bad \ud800 text"}])
    with pytest.raises(GotdInputError, match=r"pool.jsonl line 3: field 'text' holds '\\ud800'"):
        read_texts(pool)
    with pytest.raises(GotdInputError, match=r"texts index 1: field 'text' .*lone surrogate"):
        read_texts(["ok", "x\udfff"])
    assert main(select(pool, target, tmp_path / "o.jsonl")) == 2
    err = capsys.readouterr().err
    assert "line 3" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.jsonl").exists()


def test_a_file_name_that_is_not_utf8_is_one_line(tmp_path: Path, target: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    name = os.fsencode(tmp_path) + b"/pool-\xff.jsonl"
    with open(name, "w", encoding="utf-8") as fh:
        fh.write("".join(json.dumps({"text": f"pool text {i}"}) + "\n" for i in range(5)))
    assert main(select(name, target, tmp_path / "o.jsonl")) == 2
    err = capsys.readouterr().err
    assert "pool-\\xff.jsonl" in err and "rename the file" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_folder_with_one_non_utf8_file_names_that_file(tmp_path: Path, target: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.txt").write_text(f"document {i}", encoding="utf-8")
    (folder / "latin.txt").write_bytes("café au lait".encode("latin-1"))
    assert main(select(folder, target, tmp_path / "o.jsonl")) == 2
    err = capsys.readouterr().err
    assert f"{folder / 'latin.txt'}: not UTF-8 text" in err and "re-encode" in err and "Traceback" not in err


def test_a_fifo_as_pool_is_refused_not_waited_on(tmp_path: Path, target: Path) -> None:
    fifo = tmp_path / "pool.jsonl"
    os.mkfifo(fifo)
    done = subprocess.run([sys.executable, "-c", "import sys; from gotd.cli import main; sys.exit(main(sys.argv[1:]))",
                           *select(fifo, target, tmp_path / "o.jsonl")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 2
    assert f"{fifo}: not a regular file" in done.stderr and "Traceback" not in done.stderr
