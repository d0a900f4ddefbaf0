"""The one sharded-array layout (gotd.shards) behind the embedding cache and the c-transform scores."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gotd import shards


def _write(folder: Path, arrays: list[np.ndarray], **manifest_fields) -> dict:
    done, start = {}, 0
    for index, array in enumerate(arrays):
        sha = shards.save_shard(folder / f"part-{index}.npy", array)
        done[index] = shards.shard_entry(index, f"part-{index}.npy", start, start + len(array), sha, n_truncated=index)
        start += len(array)
    manifest = {"format": 7, "kind": "test", "n_shards": len(arrays) + 1, **manifest_fields}
    shards.update_manifest(folder, manifest, done)
    return manifest


def test_entries_mark_finished_shards_and_load_back_checked(tmp_path: Path) -> None:
    arrays = [np.arange(6, dtype=np.float32).reshape(3, 2), np.ones((2, 2), dtype=np.float32)]
    manifest = _write(tmp_path, arrays)
    assert not manifest["complete"] and manifest["n_truncated"] == 1  # one of three shards is missing
    read = shards.read_manifest(tmp_path, format=7, kind="test", label="test")
    assert read == json.loads((tmp_path / shards.MANIFEST_NAME).read_text())
    assert [entry["index"] for entry in read["shards"]] == [0, 1]
    for entry, array in zip(read["shards"], arrays):
        np.testing.assert_array_equal(shards.load_shard(tmp_path, entry, shape=array.shape, dtype=np.float32), array)
    assert set(shards.intact_shards(tmp_path, read)) == {0, 1}


def test_a_damaged_or_reshaped_shard_is_refused(tmp_path: Path) -> None:
    manifest = _write(tmp_path, [np.zeros((3, 2), dtype=np.float32), np.zeros((2, 2), dtype=np.float32)])
    first, second = manifest["shards"]
    with pytest.raises(shards.DamagedShard, match="shape"):
        shards.load_shard(tmp_path, first, shape=(4, 2))
    (tmp_path / second["file"]).write_bytes(b"not the same bytes")
    with pytest.raises(shards.DamagedShard, match="checksum"):
        shards.load_shard(tmp_path, second)
    with pytest.warns(UserWarning, match="part-1.npy is missing or differs"):
        assert set(shards.intact_shards(tmp_path, manifest)) == {0}
    (tmp_path / first["file"]).unlink()
    with pytest.raises(shards.DamagedShard):
        shards.load_shard(tmp_path, first)


@pytest.mark.parametrize(("text", "reason"), [("{not json", "Expecting"), ('{"format": 6, "kind": "test"}', "format 6"),
                                              ('{"format": 7, "kind": "other"}', "kind 'other'"), ("[1]", "format")])
def test_an_unusable_manifest_is_recomputed_with_a_warning(tmp_path: Path, text: str, reason: str) -> None:
    (tmp_path / shards.MANIFEST_NAME).write_text(text)
    with pytest.warns(UserWarning, match=f"test manifest .* is unreadable .*{reason}"):
        assert shards.read_manifest(tmp_path, format=7, kind="test", label="test") is None
    assert shards.read_manifest(tmp_path / "absent", format=7, label="test") is None


def test_embedding_cache_and_scores_use_the_one_layout() -> None:
    """Neither user of the layout reads or writes a manifest or a shard by itself."""
    root = Path(shards.__file__).parent
    for path in (root / "distributed.py", root / "embed" / "_cache.py", root / "embed" / "_encoder.py"):
        source = path.read_text()
        assert "json.loads" not in source and "np.save(" not in source and "file_sha256" not in source, path
