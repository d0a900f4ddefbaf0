"""The gotd command line on small files: real selections, sidecars, one-line errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from gotd.cli import main

TOPICS = {
    "sport": "The striker scored a late goal as the team won the league match at the stadium",
    "finance": "Shares fell as the central bank raised interest rates and inflation surprised markets",
    "cooking": "Stir the onions in butter add garlic and simmer the tomato sauce for twenty minutes",
    "space": "The telescope observed a distant galaxy and astronomers measured the orbit of the planet",
}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path]:
    """A pool that is mostly sport and finance and a target that is cooking and space."""
    rng = np.random.default_rng(0)
    pool = []
    for i in range(200):
        topic = rng.choice(list(TOPICS), p=[0.45, 0.45, 0.05, 0.05])
        words = TOPICS[topic].split()
        pool.append({"text": " ".join(rng.permutation(words)[:10]) + f" number {i}", "domain": str(topic)})
    target = [{"review": " ".join(rng.permutation(TOPICS[t].split())[:10])} for t in ["cooking", "space"] * 10]
    return write_jsonl(tmp_path / "pool.jsonl", pool), write_jsonl(tmp_path / "target.jsonl", target)


def run(argv: list[str]) -> int:
    return main([str(a) for a in argv])


@pytest.mark.parametrize("method", ["gotd", "matching", "knn", "dsir"])
@pytest.mark.slow
def test_select_finds_the_target_topics(files: tuple[Path, Path], tmp_path: Path, method: str) -> None:
    pool, target = files
    out = tmp_path / f"{method}.jsonl"
    code = run(["select", "--pool", pool, "--target", target, "--target-field", "review", "--budget", 15,
                "--method", method, "--out", out, "--quiet", "--cache-dir", tmp_path / "cache"])
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["rank"] for r in rows] == list(range(1, 16))
    domains = Counter(r["domain"] for r in rows)
    # 10% of the pool is cooking or space; every targeted method must find mostly those.
    assert domains["cooking"] + domains["space"] >= 12
    meta = json.loads(Path(str(out) + ".json").read_text())
    assert meta["method"] == method and meta["seed"] == 0
    if method == "gotd":
        assert meta["diagnostics"]["converged"] is True
        assert meta["extra"]["encoder"]["pooling"] == "mean"


def test_random_selection_is_seeded(files: tuple[Path, Path], tmp_path: Path) -> None:
    pool, target = files
    outs = []
    for seed in (1, 1, 2):
        out = tmp_path / f"r{len(outs)}.csv"
        assert run(["select", "--pool", pool, "--target", target, "--target-field", "review", "--budget", 20,
                    "--method", "random", "--seed", seed, "--out", out, "--quiet"]) == 0
        outs.append(out.read_text())
    assert outs[0] == outs[1] and outs[0] != outs[2]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target-field", "review", "--budget", "100000"], "budget"),
        (["--target-field", "review", "--budget", "5", "--method", "nope"], "unknown method"),
        (["--budget", "5", "--target-field", "missing"], "--target-field"),
        (["--target-field", "review", "--budget", "5", "--option", "oops"], "KEY=VALUE"),
    ],
)
def test_errors_are_one_line(files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                             extra: list[str], message: str) -> None:
    pool, target = files
    code = run(["select", "--pool", pool, "--target", target, "--method", "random", "--out", tmp_path / "x.jsonl",
                "--quiet", *extra] if "--method" not in extra else
               ["select", "--pool", pool, "--target", target, "--out", tmp_path / "x.jsonl", "--quiet", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("gotd: error:") and message in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert not (tmp_path / "x.jsonl").exists()


def test_missing_pool_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["select", "--pool", tmp_path / "nope.jsonl", "--target", tmp_path / "t.jsonl", "--budget", 1,
                "--out", tmp_path / "o.jsonl"])
    assert code == 2
    assert "nope.jsonl" in capsys.readouterr().err


@pytest.mark.slow
def test_embed_writes_matrix_and_sidecar(files: tuple[Path, Path], tmp_path: Path) -> None:
    pool, _ = files
    out = tmp_path / "pool.npy"
    assert run(["embed", "--input", pool, "--out", out, "--quiet", "--no-cache", "--normalize"]) == 0
    vectors = np.load(out)
    meta = json.loads(Path(str(out) + ".json").read_text())
    assert vectors.shape == (200, 384) and meta["rows"] == 200 and meta["encoder"]["normalize"] is True
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_methods_lists_every_selector(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["methods"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert {"gotd", "gotd_contrast", "random", "dsir", "knn", "matching"} <= listed


@pytest.mark.slow
def test_embed_stores_bf16_shards_when_asked(files: tuple[Path, Path], tmp_path: Path) -> None:
    pool, _ = files
    cache = tmp_path / "cache"
    out = tmp_path / "pool.npy"
    assert run(["embed", "--input", pool, "--out", out, "--quiet", "--cache-dir", cache,
                "--storage-dtype", "bfloat16", "--tokenize-workers", "1"]) == 0
    manifests = list(cache.rglob("manifest.json"))
    assert len(manifests) == 1
    assert json.loads(manifests[0].read_text())["storage_dtype"] == "bfloat16"
    vectors = np.load(out)
    assert vectors.dtype == np.float32 and vectors.shape == (200, 384)
    # bf16 keeps ~3 significant digits: the stored copy agrees with a float32 run to that precision.
    again = tmp_path / "again.npy"
    assert run(["embed", "--input", pool, "--out", again, "--quiet", "--no-cache"]) == 0
    np.testing.assert_allclose(vectors, np.load(again), atol=2e-2)


# ---------------------------------------------------------------------------------------------------
# bad input never loses data (issue 15)
# ---------------------------------------------------------------------------------------------------


def _link(kind: str, source: Path, dest: Path) -> Path:
    if kind == "symlink":
        dest.symlink_to(source)
    elif kind == "hardlink":
        dest.hardlink_to(source)
    return dest


@pytest.mark.parametrize("which", ["pool", "target", "symlink", "hardlink", "sidecar"])
def test_select_refuses_to_write_over_an_input(files: tuple[Path, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str], which: str) -> None:
    pool, target = files
    before = pool.read_bytes(), target.read_bytes()
    out = {"pool": pool, "target": target, "symlink": _link("symlink", pool, tmp_path / "link.jsonl"),
           "hardlink": _link("hardlink", pool, tmp_path / "hard.jsonl"), "sidecar": Path(str(target)[:-5])}[which]
    if which == "sidecar":  # the sidecar <out>.json would be the target file
        target.rename(tmp_path / "target.jsonl.json")
        target = tmp_path / "target.jsonl.json"
        out = tmp_path / "target.jsonl"
        before = pool.read_bytes(), target.read_bytes()
    code = run(["select", "--pool", pool, "--target", target, "--target-field", "review", "--budget", 5,
                "--method", "random", "--out", out, "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--out" in err and "the input" in err and str(out) in err
    assert (pool.read_bytes(), target.read_bytes()) == before


def test_embed_refuses_its_input_and_a_folder(files: tuple[Path, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    pool, _ = files
    npy = tmp_path / "pool.npy"
    npy.write_bytes(b"not embeddings")
    assert run(["embed", "--input", npy, "--out", npy, "--quiet", "--no-cache"]) == 2
    assert "is the input --input" in capsys.readouterr().err and npy.read_bytes() == b"not embeddings"
    folder = tmp_path / "some" / "folder"
    folder.mkdir(parents=True)
    assert run(["embed", "--input", pool, "--out", folder, "--quiet", "--no-cache"]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert not (tmp_path / "some" / "folder.npy").exists()


def test_train_evaluate_and_data_pool_refuse_an_input_as_output(files: tuple[Path, Path], tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    pool, _ = files
    before = pool.read_bytes()
    # train --out replaces a folder: the folder holding the selection would be removed with it.
    assert run(["train", "--selection", pool, "--out", tmp_path, "--quiet"]) == 2
    assert "contains the input --selection" in capsys.readouterr().err
    prompts = tmp_path / "prompts.csv"
    prompts.write_text("text\nhello\n")
    assert run(["evaluate", "--model", "tiny", "--metrics", "toxicity", "--prompts", prompts, "--out", prompts]) == 2
    assert "is the input --prompts" in capsys.readouterr().err and prompts.read_text() == "text\nhello\n"
    assert run(["data", "pool", "--data-dir", tmp_path, "--sources", "wiki-leads", "--out",
                tmp_path / "wiki-leads"]) == 2
    assert "is the input data set wiki-leads" in capsys.readouterr().err
    assert pool.read_bytes() == before


def _terminal(argv: list[object]) -> str:
    """What ``gotd ARGV`` prints on a terminal (stdout and stderr), run as its own process: the logging of a
    command line without handlers, which pytest's own log capture would hide from capsys."""
    done = subprocess.run([sys.executable, "-c", "import sys; from gotd.cli import main; sys.exit(main(sys.argv[1:]))",
                           *map(str, argv)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def _duplicate_lines(text: str, folder: Path) -> list[str]:
    """The lines that speak of duplicates (the folder's name, which holds the test's, left out)."""
    lines = [line.replace(str(folder), "<tmp>") for line in text.splitlines()]
    return [line for line in lines if "exact" in line or "duplicate" in line]


def test_select_says_the_exact_duplicates_once_each_with_what_was_done_and_how_to_change_it(tmp_path: Path) -> None:
    # the pool: "a b c" three times (2 duplicates); the target: "x y" twice (1 duplicate)
    pool = write_jsonl(tmp_path / "pool.jsonl", [{"text": t} for t in ["a b c", "d e f", "a b c", "g h", "a b c"]])
    target = write_jsonl(tmp_path / "target.jsonl", [{"text": t} for t in ["x y", "z", "x y"]])
    out = tmp_path / "sel.jsonl"
    select = ["select", "--pool", pool, "--target", target, "--budget", 2, "--method", "random", "--out", out,
              "--quiet"]
    lines = _duplicate_lines(_terminal(select), tmp_path)
    assert len(lines) == 2, lines  # one about the pool, one about the target: no count said twice
    pool_line, target_line = sorted(lines)
    assert pool_line.startswith("pool: 2 of 5 chunks repeat an earlier chunk's text exactly and are kept")
    assert "--dedup" in pool_line
    assert target_line.startswith("target: 1 of 3 texts repeat an earlier text exactly and are kept")
    assert json.loads(Path(f"{out}.json").read_text())["extra"]["n_exact_duplicates"] == 2

    lines = [line for line in _duplicate_lines(_terminal([*select, "--dedup"]), tmp_path) if line.startswith("pool:")]
    assert lines == ["pool: dedup dropped 2 of 5 documents as duplicates (same text up to whitespace)"]
    sidecar = json.loads(Path(f"{out}.json").read_text())["extra"]
    assert sidecar["n_exact_duplicates"] == 0 and sidecar["n_duplicates_removed"] == 2


@pytest.mark.parametrize("flags", [["--eps", "inf"], ["--eps", "nan"], ["--eps", "0"], ["--eps-rel", "-1"],
                                   ["--tol", "inf"], ["--max-iter", "0"]])
def test_select_refuses_non_finite_or_non_positive_solver_settings(
        files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str]) -> None:
    pool, target = files
    with pytest.raises(SystemExit) as exit_info:
        run(["select", "--pool", pool, "--target", target, "--budget", 5, "--out", tmp_path / "x.jsonl", *flags])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert flags[0] in err and ("finite number > 0" in err or ">= 1" in err) and "Traceback" not in err
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.slow
def test_unconverged_solve_writes_nothing_unless_allowed(files: tuple[Path, Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    pool, target = files
    out = tmp_path / "x.jsonl"
    argv = ["select", "--pool", pool, "--target", target, "--target-field", "review", "--budget", 5, "--out", out,
            "--quiet", "--cache-dir", tmp_path / "cache", "--tol", "1e-12", "--max-iter", "2"]
    assert run(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("gotd: error: method gotd: the OT solve did not converge")
    assert "--allow-unconverged" in err[-1]
    assert not out.exists() and not Path(f"{out}.json").exists()
    assert run([*argv, "--allow-unconverged"]) == 0
    assert "NOT CONVERGED" in capsys.readouterr().out.strip().splitlines()[-1]
    meta = json.loads(Path(f"{out}.json").read_text())
    assert meta["extra"]["converged"] is False and meta["diagnostics"]["converged"] is False


def test_one_row_pool_and_unwritable_out_name_the_input_and_the_fix(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    pool = write_jsonl(tmp_path / "pool.jsonl", [{"text": "only one candidate"}])
    target = write_jsonl(tmp_path / "target.jsonl", [{"text": "a target"}, {"text": "another"}])
    assert run(["select", "--pool", pool, "--target", target, "--budget", 1, "--out", tmp_path / "o.jsonl",
                "--quiet", "--no-cache"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(pool) in err and "at least 2" in err and "potential" not in err
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = blocker / "sel.jsonl"  # its folder is a file: nothing can be written there (also as root)
    assert run(["select", "--pool", target, "--target", target, "--budget", 1, "--method", "random", "--out", out,
                "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"cannot write {out}" in err and ".tmp" not in err and "choose an output path" in err


@pytest.mark.slow
def test_select_paper_preset_sets_the_encoder_and_is_recorded(files: tuple[Path, Path], tmp_path: Path) -> None:
    pool, target = files
    common = ["select", "--pool", pool, "--target", target, "--target-field", "review", "--budget", 5,
              "--method", "knn", "--quiet", "--cache-dir", tmp_path / "cache", "--preset", "paper"]
    assert run([*common, "--out", tmp_path / "p.jsonl"]) == 0
    meta = json.loads((tmp_path / "p.jsonl.json").read_text())
    assert meta["extra"]["preset"] == "paper"
    assert meta["extra"]["encoder"]["pooling"] == "mean_with_padding" and meta["extra"]["encoder"]["normalize"] is False
    # An option given on the command line wins over the preset.
    assert run([*common, "--pooling", "mean", "--out", tmp_path / "m.jsonl"]) == 0
    assert json.loads((tmp_path / "m.jsonl.json").read_text())["extra"]["encoder"]["pooling"] == "mean"


@pytest.mark.slow
def test_select_paper_preset_reaches_the_solver(files: tuple[Path, Path], tmp_path: Path) -> None:
    """--preset paper reaches gotd.ot: eps 0.1 absolute, recorded in the sidecar."""
    pool, target = files
    out = tmp_path / "g.jsonl"
    assert run(["select", "--pool", pool, "--target", target, "--target-field", "review", "--budget", 5,
                "--quiet", "--cache-dir", tmp_path / "cache", "--preset", "paper", "--out", out]) == 0
    meta = json.loads(Path(f"{out}.json").read_text())
    assert meta["extra"]["preset"] == "paper" and meta["diagnostics"]["eps"] == pytest.approx(0.1)


def test_embed_shard_size_lets_an_interrupted_run_resume(files: tuple[Path, Path], tmp_path: Path) -> None:
    pool, _ = files
    cache = tmp_path / "cache"
    assert run(["embed", "--input", pool, "--out", tmp_path / "e.npy", "--quiet", "--cache-dir", cache,
                "--shard-size", 64]) == 0
    manifest = json.loads(next(cache.rglob("manifest.json")).read_text())
    assert manifest["shard_size"] == 64 and len(manifest["shards"]) == 4  # 200 texts: 64 + 64 + 64 + 8
