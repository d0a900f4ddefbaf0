"""Selections that must not change: gotd, gotd_contrast (negative set only) and random, for fixed seeds.

``tests/data/selectors_regression.json`` holds the selections the single-module ``gotd/selectors.py``
made on a seeded synthetic problem before the module became a package (the commit is recorded in the
file); the package must reproduce them.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gotd.selectors import select

CASES = json.loads((Path(__file__).parent / "data" / "selectors_regression.json").read_text())


def problem() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2024)
    pool = np.vstack([rng.normal([0, 0, 0], 0.6, (400, 3)), rng.normal([3, 0, 1], 0.6, (100, 3))])
    target = np.vstack([rng.normal([0, 0, 0], 0.6, (40, 3)), rng.normal([3, 0, 1], 0.6, (40, 3))])
    negative = rng.normal([3, 0, 1], 0.6, (50, 3))
    return {"pool": pool, "target": target, "negative": negative}


@pytest.mark.parametrize("case", CASES["cases"], ids=lambda c: f"{c['method']}-seed{c['seed']}-{c['options']}")
def test_selection_is_unchanged(case):
    data = problem()
    got = select(data["pool"], data[case["target"]], len(case["indices"]), method=case["method"], seed=case["seed"],
                 **case["options"])
    np.testing.assert_array_equal(got, case["indices"])
