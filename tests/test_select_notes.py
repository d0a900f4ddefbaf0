"""What gotd select tells the user about duplicates says what was done, and the sidecar records it."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from gotd.cli import main


def _said(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The warnings gotd logged about duplicates: what a terminal shows on stderr (pytest captures them here)."""
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("gotd") and r.levelno >= logging.WARNING]
    caplog.clear()
    return [line for line in lines if "duplicate" in line or "exact" in line]


def test_dedup_note_and_sidecar_say_what_was_removed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    docs = [f"document number {i} about the plot" for i in range(8)]
    pool = tmp_path / "pool.jsonl"
    # 3 duplicate documents, and 2 distinct documents that chunk to a repeated chunk
    rows = docs + docs[:3] + ["shared opening. first ending", "shared opening. other ending"]
    pool.write_text("".join(json.dumps({"text": t}) + "\n" for t in rows))
    target = tmp_path / "target.jsonl"
    target.write_text("".join(json.dumps({"text": f"target {i}"}) + "\n" for i in range(3)))
    common = ["select", "--pool", str(pool), "--target", str(target), "--budget", "2", "--method", "random",
              "--chunk-chars", "16", "--no-cache"]
    caplog.set_level("INFO", logger="gotd")
    assert main([*common, "--dedup", "--out", str(tmp_path / "d.jsonl")]) == 0
    [line] = _said(caplog)
    assert line.startswith("pool: dedup dropped 3 of 13 documents as duplicates")
    assert "--dedup" not in line  # never "kept, use --dedup" once --dedup ran
    assert "still repeat an earlier chunk's text exactly (from different documents) and are kept" in line
    meta = json.loads((tmp_path / "d.jsonl.json").read_text())
    assert meta["extra"]["n_duplicates_removed"] == 3 and meta["extra"]["inputs"]["dedup"] is True
    assert main([*common, "--out", str(tmp_path / "k.jsonl")]) == 0
    [line] = _said(caplog)
    assert "are kept (a method may select both copies); dedup=True (gotd select --dedup) drops" in line
    assert json.loads((tmp_path / "k.jsonl.json").read_text())["extra"]["n_duplicates_removed"] is None
