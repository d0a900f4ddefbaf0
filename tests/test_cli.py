"""The gotd command line on small files: real selections, sidecars, one-line errors."""
from __future__ import annotations

import json
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
