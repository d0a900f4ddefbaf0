"""The scale benchmark runs at reduced sizes on a CPU and records what it measured next to the goals."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest


BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_scale.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_scale", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_ot_figures_record_goal_reference_and_agreement(bench, tmp_path: Path, capsys) -> None:
    assert bench.main(["--quick", "--device", "cpu", "--only", "ot-1e6", "ot-1e7", "--n", "3000",
                       "--out-dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "goal <= 5" in printed and "goal <= 120" in printed and "reference, same run" in printed
    small = json.loads((tmp_path / "scale_ot_1e6_cpu_quick.json").read_text())
    assert small["quick"] and small["n"] == 3000 and small["goal"]["value"] == 5.0
    paper = small["runs"]["paper_eps_0.1"]
    assert paper["converged"] and paper["eps"] == 0.1 and small["measured"] == paper["seconds"]
    assert small["reference"]["gemm_pass_seconds"] > 0 and small["provenance"]["device"] == "cpu"
    large = json.loads((tmp_path / "scale_ot_1e7_cpu_quick.json").read_text())
    assert large["subsample"]["size"] == 300 and large["full"]["converged"]
    agreement = large["agreement_subsample_vs_full"]
    assert 0.9 <= agreement["spearman"] <= 1.0 and 0.5 <= agreement["top_0.05_overlap"] <= 1.0


def test_quick_embedding_figure(bench, tmp_path: Path) -> None:
    assert bench.main(["--quick", "--device", "cpu", "--only", "embed", "--n-texts", "24", "--repeats", "1",
                       "--out-dir", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "scale_embed_cpu_quick.json").read_text())
    assert record["n_texts"] == 24 and record["storage_dtype"] == "bfloat16" and record["max_length"] == 128
    assert record["measured"] == record["runs"]["pipelined"]["texts_per_s"] > 0
    assert record["reference"]["raw_encoder_seq_per_s"] > 0


def test_agreement_measures_are_right(bench) -> None:
    import numpy as np

    scores = np.arange(200.0)
    same = bench.ranking_agreement(scores, 3 * scores + 1)
    assert same == {"top_0.01_overlap": 1.0, "top_0.05_overlap": 1.0, "spearman": pytest.approx(1.0)}
    flipped = bench.ranking_agreement(scores, -scores)
    assert flipped["top_0.05_overlap"] == 0.0 and flipped["spearman"] == pytest.approx(-1.0)
