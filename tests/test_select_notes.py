"""What gotd select tells the user about duplicates says what was done, and the sidecar records it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from gotd.cli import main


def test_dedup_note_and_sidecar_say_what_was_removed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = [f"document number {i} about the plot" for i in range(8)]
    pool = tmp_path / "pool.jsonl"
    # 3 duplicate documents, and 2 distinct documents that chunk to a repeated chunk
    rows = docs + docs[:3] + ["shared opening. first ending", "shared opening. other ending"]
    pool.write_text("".join(json.dumps({"text": t}) + "\n" for t in rows))
    target = tmp_path / "target.jsonl"
    target.write_text("".join(json.dumps({"text": f"target {i}"}) + "\n" for i in range(3)))
    common = ["select", "--pool", str(pool), "--target", str(target), "--budget", "2", "--method", "random",
              "--chunk-chars", "16", "--no-cache"]
    assert main([*common, "--dedup", "--out", str(tmp_path / "d.jsonl")]) == 0
    err = capsys.readouterr().err
    assert "--dedup removed 3 duplicate document(s)" in err
    assert "(kept; --dedup" not in err  # never "kept, use --dedup" once --dedup ran
    assert "repeat an earlier row's text exactly (kept: they come from different documents" in err
    meta = json.loads((tmp_path / "d.jsonl.json").read_text())
    assert meta["extra"]["n_duplicates_removed"] == 3 and meta["extra"]["inputs"]["dedup"] is True
    assert main([*common, "--out", str(tmp_path / "k.jsonl")]) == 0
    assert "(kept; --dedup / dedup=True drops duplicate documents)" in capsys.readouterr().err
    assert json.loads((tmp_path / "k.jsonl.json").read_text())["extra"]["n_duplicates_removed"] is None
