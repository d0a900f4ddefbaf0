"""Old import paths either still work or fail with one line that names the new home."""
from __future__ import annotations

import pytest


def test_the_testbed_names_its_moved_lm_toolkit() -> None:
    import gotd.testbed as testbed

    for old, new in testbed.MOVED.items():
        with pytest.raises(AttributeError, match=f"gotd.testbed.{old} has moved: use {new.split(' ')[0]}"):
            getattr(testbed, old)
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        testbed.nothing_here  # noqa: B018
