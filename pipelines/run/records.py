"""Reading a run's `metrics.jsonl`: one record per line, as training appends them.

A line cut short by a kill is skipped, not an error: the writer rewrites the file from
its last checkpoint on resume, so every reader (resume, parity, tests) sees the same
records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

METRICS = "metrics.jsonl"


def read_metrics(run: Path) -> list[dict[str, Any]]:
    """The run's records in the order written ([] before the first one)."""
    path = Path(run) / METRICS
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a kill
            continue
    return records
