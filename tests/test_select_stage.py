"""The select stage (gotd.stages.select_stage): one implementation behind gotd select, gotd select-demo and 01_select."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gotd import selectors
from gotd.errors import GotdConvergenceError, GotdInputError
from gotd.stages import PARAMETER_CHECKS, available_methods, check_select_parameters, methods_taking, select_stage
from gotd.stages._registry import selector_specs


def _frames(n: int = 40) -> tuple[pd.DataFrame, pd.DataFrame]:
    pool = pd.DataFrame({"id": [f"p{i}" for i in range(n)],
                         "text": [f"film review {i}" if i % 4 == 0 else f"budget vote {i}" for i in range(n)]})
    target = pd.DataFrame({"id": ["t0", "t1"], "text": ["a film review", "another film review"]})
    return pool, target


class _FakeEncoder:
    """Bag-of-two-words embeddings: 'film' rows and 'budget' rows apart; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: list[str], **_: object) -> np.ndarray:
        self.calls += 1
        return np.array([[t.count("film"), t.count("budget")] for t in texts], dtype=np.float32) + \
            np.linspace(0, 1e-3, len(texts), dtype=np.float32)[:, None]

    def settings(self) -> dict:
        return {"model": "fake", "pooling": "mean"}


def test_every_registered_method_reads_one_declared_input_kind() -> None:
    kinds = {m: s.inputs for m, s in selector_specs(available_methods()).items()}
    assert set(kinds.values()) <= {"embeddings", "texts", "none"}
    assert sorted(m for k in ("embeddings", "texts", "none") for m in methods_taking(k)) == available_methods()


def test_stage_embeds_once_and_gives_each_method_its_input(tmp_path: Path) -> None:
    pool, target = _frames()
    encoder = _FakeEncoder()
    result = select_stage(pool, target, 5, methods=["gotd", "knn", "dsir", "random"], out=tmp_path, encoder=encoder,
                          progress=False)
    assert encoder.calls == 2  # pool and target, once for both embedding methods
    for method in ("gotd", "knn"):
        assert set(pool.iloc[result.selections[method].indices]["text"].str.startswith("film")) == {True}
    for method, path in result.paths.items():
        meta = json.loads(Path(f"{path}.json").read_text())
        assert path == tmp_path / f"{method}.jsonl" and meta["method"] == method
        assert meta["extra"]["encoder"] == ({"model": "fake", "pooling": "mean"} if method in ("gotd", "knn") else {})
        assert meta["extra"]["n_exact_duplicates"] == 0 and meta["extra"]["preset"] is None


def test_stage_gives_the_same_selection_as_the_selector_itself(tmp_path: Path) -> None:
    pool, target = _frames()
    result = select_stage(pool, target, 7, methods=["gotd", "random"], out=tmp_path, encoder=_FakeEncoder(), seed=3,
                          progress=False)
    emb = _FakeEncoder()
    direct = selectors.select(emb.encode(pool["text"].tolist()), emb.encode(target["text"].tolist()), 7, seed=3)
    np.testing.assert_array_equal(result.selections["gotd"].indices, direct)
    np.testing.assert_array_equal(result.selections["random"].indices,
                                  selectors.select(np.zeros((40, 1)), np.zeros((2, 1)), 7, method="random", seed=3))


def test_stage_without_embedding_methods_builds_no_encoder(tmp_path: Path) -> None:
    pool, target = _frames()
    result = select_stage(pool, target, 5, methods=["dsir", "random"], out=tmp_path,
                          encoder={"model": "no-such-model-folder"}, progress=False)
    assert result.embeddings is None and result.encoder_settings == {}


def test_stage_unconverged_solve_raises_and_writes_nothing(tmp_path: Path) -> None:
    pool, target = _frames()
    with pytest.raises(GotdConvergenceError, match="allow_unconverged=True"):
        select_stage(pool, target, 5, methods=["gotd"], out=tmp_path, encoder=_FakeEncoder(), progress=False,
                     ot_options={"tol": 1e-14, "max_iter": 1})
    assert not (tmp_path / "gotd.jsonl").exists()
    notes: list[str] = []
    result = select_stage(pool, target, 5, methods=["gotd"], out=tmp_path, encoder=_FakeEncoder(), progress=False,
                          ot_options={"tol": 1e-14, "max_iter": 1}, allow_unconverged=True, log=notes.append)
    assert result.unconverged == ["gotd"] and "did NOT converge" in notes[-1]
    assert json.loads((tmp_path / "gotd.jsonl.json").read_text())["extra"]["converged"] is False


def test_stage_parameter_checks_are_what_gotd_run_applies_at_plan_time() -> None:
    assert PARAMETER_CHECKS["01_select"] is check_select_parameters
    check_select_parameters({"budget": 5, "methods": ["gotd", "random"], "eps_rel": 0.05, "preset": ""})
    for bad, message in [({"budget": -5}, "budget=-5"), ({"budget": True}, "budget=True"),
                         ({"methods": ["gotd", "nope"]}, "nope"), ({"eps_rel": float("inf")}, "finite"),
                         ({"tol": 0}, "tol=0"), ({"preset": "nope"}, "unknown preset"),
                         ({"methods": ["gotd", "gotd"]}, "twice")]:
        with pytest.raises(GotdInputError, match=message):
            check_select_parameters(bad)


def test_stage_refuses_an_output_that_is_an_input_before_loading(tmp_path: Path) -> None:
    pool = tmp_path / "pool.jsonl"
    pool.write_text('{"text": "a"}\n{"text": "b"}\n')
    with pytest.raises(GotdInputError, match="is the input pool"):
        select_stage(pool, pool, 1, methods=["random"], out={"random": pool}, progress=False)
    assert pool.read_text() == '{"text": "a"}\n{"text": "b"}\n'


def test_stage_takes_its_settings_as_one_object_or_as_keywords(tmp_path: Path) -> None:
    from gotd.stages import SelectConfig

    pool, target = _frames()
    config = SelectConfig(methods=["gotd", "random"], seed=3, ot_options={"eps_rel": 0.1})
    by_object = select_stage(pool, target, 7, config, out=tmp_path / "a", encoder=_FakeEncoder(), progress=False)
    by_keywords = select_stage(pool, target, 7, methods=["gotd", "random"], seed=3, ot_options={"eps_rel": 0.1},
                               out=tmp_path / "b", encoder=_FakeEncoder(), progress=False)
    mixed = select_stage(pool, target, 7, config, seed=4, out=tmp_path / "c", encoder=_FakeEncoder(), progress=False)
    for method in ("gotd", "random"):
        np.testing.assert_array_equal(by_object.selections[method].indices, by_keywords.selections[method].indices)
    assert json.loads((tmp_path / "c" / "random.jsonl.json").read_text())["seed"] == 4  # the keyword wins
    with pytest.raises(GotdInputError, match=r"SelectConfig has no field\(s\) \['method'\]; fields: methods, seed"):
        select_stage(pool, target, 7, method="gotd", out=tmp_path / "d", progress=False)
    with pytest.raises(GotdInputError, match="config must be a SelectConfig, got dict"):
        select_stage(pool, target, 7, {"methods": ["gotd"]}, out=tmp_path / "d", progress=False)
    assert not (tmp_path / "d").exists()


def test_notebook_path_says_the_pool_and_target_duplicates_once_each(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """01_select's path (the loaders, then the stage on their frames) says each count once, not per layer."""
    from gotd.stages import inputs

    pool_file = tmp_path / "pool.jsonl"
    pool_file.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["a b c", "d e f", "a b c", "g h", "a b c"]))
    target_file = tmp_path / "target.jsonl"
    target_file.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["x y", "z", "x y"]))
    with caplog.at_level("INFO", logger="gotd"):
        pool = inputs.load_pool(str(pool_file), progress=False)
        target = inputs.load_target(str(target_file))
        select_stage(pool, target, 2, methods=["random"], out=tmp_path / "sel", log=print, progress=False)
    said = [r.getMessage() for r in caplog.records] + capsys.readouterr().out.splitlines()
    about = [line for line in said if "exact" in line or "duplicate" in line]
    assert len(about) == 2, about
    assert sum(line.startswith("pool: 2 of 5 chunks repeat an earlier chunk's text exactly") for line in about) == 1
    assert sum(line.startswith("target: 1 of 3 texts repeat an earlier text exactly") for line in about) == 1
    assert pool.attrs["exact_duplicates"] == 2
    assert not any("(frame)" in line for line in said), said  # the notebook has said the frames' sizes itself


def test_stage_says_the_duplicates_of_a_frame_it_did_not_load(tmp_path: Path) -> None:
    pool, target = _frames()
    pool.loc[1, "text"] = pool.loc[0, "text"]
    notes: list[str] = []
    select_stage(pool, target, 2, methods=["random"], out=tmp_path / "sel", log=notes.append, progress=False)
    assert [n for n in notes if "exact" in n] == [
        "pool: 1 of 40 rows repeat an earlier row's text exactly and are kept (a method may select both copies); "
        "dedup=True (gotd select --dedup) drops duplicate documents before chunking"]
