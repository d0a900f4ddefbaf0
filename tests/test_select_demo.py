"""`gotd select-demo` on a small stand-in for the built-in data (the real fetch is tested in test_assets)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from gotd import assets
from gotd import select_demo as demo


def _stand_in_data(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = pd.DataFrame({
        "id": [f"p{i}" for i in range(60)],
        "text": [f"The film had a moving plot and great acting, review {i}" if i % 6 == 0 else
                 f"Parliament voted on the budget bill and the minister spoke, item {i}" for i in range(60)],
        "domain": ["film" if i % 6 == 0 else "politics" for i in range(60)],
    })
    target = pd.DataFrame({"id": [f"t{i}" for i in range(12)],
                           "text": [f"A charming movie with a clever script and fine actors {i}" for i in range(12)]})
    monkeypatch.setattr(assets, "fetch", lambda name, data_dir="data", **_: Path(data_dir) / name)
    monkeypatch.setattr(assets, "build_builtin_pool", lambda data_dir="data", **_: pool)
    monkeypatch.setattr(assets, "load", lambda name, data_dir="data", split=None: target)


@pytest.mark.slow
def test_demo_writes_every_selection_and_a_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _stand_in_data(monkeypatch)
    table = demo.run_select_demo(tmp_path / "report", budget=8, chunk_chars=200, cache_dir=tmp_path / "cache",
                          progress=False)

    # The main job compares GOT-D with every registered baseline (gotd_contrast needs a negative set).
    from gotd.selectors import available_methods

    assert demo.select_demo_methods()[0] == "gotd"
    assert set(demo.select_demo_methods()) == set(available_methods()) - {"gotd_contrast"}
    for method in demo.select_demo_methods():
        rows = (tmp_path / "report" / f"{method}.jsonl").read_text().splitlines()
        assert len(rows) == 8
        assert json.loads((tmp_path / "report" / f"{method}.jsonl.json").read_text())["method"] == method
    # 1 in 6 pool texts is about film, like the target: the embedding methods must find them.
    assert table.loc["gotd", "film"] >= 0.75 and table.loc["knn", "film"] >= 0.75
    assert table.loc["pool", "film"] == pytest.approx(10 / 60, abs=1e-3)
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "Domain make-up" in summary and "gotd" in summary
    # The demo's record has its own name: `gotd run demo` writes run.json into reports/demo/.
    assert not (tmp_path / "report" / "run.json").exists()
    run = json.loads((tmp_path / "report" / demo.RECORD_FILE).read_text())
    assert run["budget"] == 8 and run["encoder"]["pooling"] == "mean" and "versions" in run


def test_demo_with_only_text_methods_embeds_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """dsir and random read no embeddings: the demo must neither embed nor fail (it left pool_emb unset)."""
    from gotd import embed

    _stand_in_data(monkeypatch)

    def no_encoder(*args: object, **kwargs: object) -> None:
        raise AssertionError("no method here reads embeddings: the encoder must not be built")

    monkeypatch.setattr(embed.Encoder, "__init__", no_encoder)
    table = demo.run_select_demo(tmp_path / "report", budget=8, chunk_chars=200, methods=("dsir", "random"), progress=False)
    assert set(table.index) == {"dsir", "random", "pool"}
    for method in ("dsir", "random"):
        meta = json.loads((tmp_path / "report" / f"{method}.jsonl.json").read_text())
        assert meta["extra"]["encoder"] == {} and meta["extra"]["inputs"]["target"] == demo.SELECT_DEMO_TARGET
    assert json.loads((tmp_path / "report" / demo.RECORD_FILE).read_text())["encoder"] == {}


def test_gotd_demo_and_gotd_run_demo_write_different_folders() -> None:
    from gotd.cli import build_parser
    from gotd.runner.config import load_config

    default_out = build_parser().parse_args(["select-demo"]).out
    assert Path(default_out) != Path("reports") / load_config("demo").name
