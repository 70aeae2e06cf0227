"""Wall time and peak memory of a stage (Linux: the resident-set high-water mark, reset per stage)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR = Path("/proc/self/clear_refs")


def _status_mb(field: str) -> float | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _peak_rss_mb() -> float | None:
    return _status_mb("VmHWM")


def rss_mb() -> float | None:
    """The process's resident memory now (MB)."""
    return _status_mb("VmRSS")


@contextlib.contextmanager
def measure(record: dict):
    """Fill ``record`` with ``seconds`` and ``peak_rss_mb`` of the enclosed block."""
    try:
        _CLEAR.write_text("5")  # "5" resets the peak RSS counter (Linux >= 4.0)
        reset = True
    except OSError:
        reset = False
    start = time.perf_counter()
    try:
        yield record
    finally:
        record["seconds"] = round(time.perf_counter() - start, 2)
        record["peak_rss_mb"] = round(_peak_rss_mb() or 0.0, 1) if reset else None
