"""Fingerprints of a finished testbed run, to show that a change of code left its numbers unchanged.

Usage::

    python scripts/testbed_fingerprint.py reports/testbed-smoke

Prints one SHA-256 over the per-text NLL of every prepare and warm-up folder (the columns ``nll_sum``,
``n_tokens``, ``text_index``, ``budget``, ``seed`` as their numpy bytes, then ``method`` and ``split`` as
text; a run written before the per-text schema named the sum ``nll`` is read under the new name), one over
the probe's 0/1 answers, and one per saved selection (``selections/<method>-<budget>.jsonl``: the selected
pool rows in rank order, int64). Two runs of the same config and seeds whose lines agree computed the same
scores bit for bit and selected the same rows.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def per_text_digest(run: Path) -> tuple[str, str]:
    """SHA-256 of the per-text NLL columns and of the probe answers, over the run's folders in name order."""
    nll, correct = hashlib.sha256(), hashlib.sha256()
    files = sorted(run.glob("05a*/nll_base.parquet")) + sorted(run.glob("05b*/nll.parquet"))
    for path in files:
        frame = pd.read_parquet(path).rename(columns={"nll": "nll_sum"})
        for column in ("nll_sum", "n_tokens", "text_index", "budget", "seed"):
            nll.update(column.encode())
            nll.update(np.ascontiguousarray(frame[column].to_numpy()).tobytes())
        for column in ("method", "split"):
            nll.update(frame[column].astype(str).str.cat(sep="|").encode())
    # probe answers (correct.parquet) or, since the certified testbed, the fine-tuned classifier's per-text
    # answers and true-label cross-entropy (downstream.parquet)
    for path in sorted(run.glob("05b*/correct.parquet")) + sorted(run.glob("05b*/downstream.parquet")):
        frame = pd.read_parquet(path)
        for column in ("correct", "true_label_nll"):
            if len(frame) and column in frame.columns:
                correct.update(np.ascontiguousarray(frame[column].to_numpy()).tobytes())
    return nll.hexdigest(), correct.hexdigest()


def selection_digests(run: Path) -> list[tuple[str, str]]:
    """``(folder/file, sha256 of the selected rows in rank order)`` of every saved selection."""
    out = []
    for path in sorted(run.glob("05b*/selections/*.jsonl")):
        frame = pd.read_json(path, lines=True).sort_values("rank")
        rows = frame["index"].to_numpy().astype(np.int64)
        out.append((f"{path.parent.parent.name}/{path.name}", hashlib.sha256(rows.tobytes()).hexdigest()))
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: python scripts/testbed_fingerprint.py RUN_FOLDER (e.g. reports/testbed-smoke)", file=sys.stderr)
        return 2
    run = Path(argv[0])
    nll, correct = per_text_digest(run)
    print(f"per-text nll  {nll}")
    print(f"per-text probe {correct}")
    for name, digest in selection_digests(run):
        print(f"selection {name} {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
