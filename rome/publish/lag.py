"""The publish lag: from caesar's commit to the file in the folder, kept for /metrics.

The publisher appends each publish's lags to a small file in the published folder
(a dot file: never served); /metrics and the benchmark read their quantiles back.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from rome.publish.files import write_atomic

LAG_FILE = ".publish-lag.json"
KEEP = 1000  # the newest samples kept


def record_lags(root: Path, lags: list[float]) -> None:
    """Add lags (seconds) to the folder's record, keeping the newest KEEP."""
    if not lags:
        return
    record = read_lags(root)
    samples = (record["samples"] + [round(lag, 4) for lag in lags])[-KEEP:]
    write_atomic(root / LAG_FILE, json.dumps(
        {"samples": samples, "count": record["count"] + len(lags)}).encode())


def read_lags(root: Path) -> dict:
    """The newest samples and how many were ever recorded; empty without a record."""
    try:
        record = json.loads((root / LAG_FILE).read_bytes())
        return {"samples": [float(s) for s in record["samples"]], "count": int(record["count"])}
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return {"samples": [], "count": 0}


def quantile(samples: list[float], q: float) -> float | None:
    """The q-quantile of samples (nearest rank), None for none."""
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]
