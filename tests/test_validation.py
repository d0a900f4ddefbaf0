"""One text validator and one matrix validator (gotd.validation), and every step that takes texts or a
matrix gives the same message for the same bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gotd.errors import GotdInputError
from gotd.validation import check_matrix, check_texts


def test_check_texts_accepts_any_iterable_of_strings_and_names_the_first_bad_item():
    assert check_texts(("a", "b"), "pool") == ["a", "b"]
    assert check_texts(np.array(["a", "b"]), "pool") == ["a", "b"]
    assert check_texts([], "texts", allow_empty=True) == []
    for bad, message in [("one", "pool: got a single string;"), (b"one", "got a single bytes object"),
                         (np.zeros((2, 3)), r"array of shape \(2, 3\)"), (3, "expected a list of strings, got int"),
                         ([], "pool: has no texts"), (["a", None], r"pool\[1\] is NoneType \(None\), not a string")]:
        with pytest.raises(GotdInputError, match=message):
            check_texts(bad, "pool")
    with pytest.raises(GotdInputError, match=r"pool\[1\] is empty or whitespace only"):
        check_texts(["a", " \n"], "pool", blank="error")
    with pytest.warns(UserWarning, match="1 of 2 pool are empty or whitespace only"):
        assert check_texts(["a", ""], "pool", blank="warn") == ["a", ""]


def test_check_matrix_keeps_the_library_and_accepted_dtypes_without_copies():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)[::-1]
    assert check_matrix(x, "pool") is not None and np.shares_memory(check_matrix(x, "pool"), x)
    t = torch.ones(4, 3, dtype=torch.float16)
    assert check_matrix(t, "pool").data_ptr() == t.data_ptr()  # any float kept by default, no copy
    assert check_matrix(t, "pool", dtype=(torch.float32, torch.float64)).dtype == torch.float32
    assert check_matrix(np.ones((2, 2), dtype=np.int64), "pool").dtype == np.float64
    assert check_matrix(np.ones((2, 2), dtype=np.int64), "pool", dtype=("float32",)).dtype == np.float32


@pytest.mark.parametrize(("bad", "message"), [
    (["some text"], "got text"), (np.array([["a"]]), "expected real numbers"),
    (np.ones((2, 2), dtype=bool), "expected real numbers"), (torch.ones(2, 2, dtype=torch.complex64), "real numbers"),
    (np.ones(3), "expected a 2-D array"), (np.ones((0, 3)), "no rows"),
    (np.array([[0.0, 1.0], [np.nan, 1.0]]), "row 1 holds NaN or infinite values"),
    (torch.tensor([[0.0, 1.0], [1.0, float("inf")]]), "row 1 holds NaN or infinite values"),
])
def test_check_matrix_names_the_problem(bad, message):
    with pytest.raises(GotdInputError, match=message):
        check_matrix(bad, "pool")


def test_a_nan_row_far_into_a_large_matrix_is_found():
    x = np.zeros((40_000, 2), dtype=np.float32)
    x[35_000, 1] = np.nan
    with pytest.raises(GotdInputError, match="row 35000 "):
        check_matrix(x, "pool")


def _text_steps():
    from gotd.data import count_exact_duplicates, texts_fingerprint
    from gotd.evaluate._common import _check_texts
    from gotd.selectors import run_selector
    from gotd.toxicity import _as_text_list

    return {
        "selector (dsir)": lambda texts: run_selector(texts, ["target text"], 1, method="dsir"),
        "fingerprint": texts_fingerprint,
        "duplicate count": count_exact_duplicates,
        "evaluation": lambda texts: _check_texts(texts, "texts"),
        "toxicity": lambda texts: _as_text_list(texts, "score"),
    }


@pytest.mark.parametrize("step", sorted(_text_steps()))
def test_every_text_step_gives_the_one_message(step):
    with pytest.raises(GotdInputError, match=r"\[1\] is NoneType \(None\), not a string; drop or fill missing"):
        _text_steps()[step](["a text", None])


def _matrix_steps():
    from gotd.analysis import pca_2d
    from gotd.ot import c_transform_scores, sinkhorn
    from gotd.selectors import select

    target = np.ones((3, 2))
    return {
        "sinkhorn": lambda x: sinkhorn(x, target),
        "c-transform": lambda x: c_transform_scores(x, target, np.zeros(3), eps=1.0),
        "selector (knn)": lambda x: select(x, target, 1, method="knn"),
        "pca": lambda x: pca_2d(x, target),
    }


@pytest.mark.parametrize("step", sorted(_matrix_steps()))
def test_every_matrix_step_gives_the_one_message(step):
    pool = np.array([[0.0, 1.0], [np.inf, 0.0], [1.0, 1.0]])
    with pytest.raises(GotdInputError, match="row 1 holds NaN or infinite values; drop or re-embed that row"):
        _matrix_steps()[step](pool)
