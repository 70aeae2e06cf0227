"""``booster bench cli``: how fast the quick commands answer (start-up wall time, peak memory).

Each command runs in a fresh interpreter, as a user starts it, several times; the table shows
the median. The bare interpreter (``python -c pass``) is the floor no command can beat.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ONE_LINE = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def _run_once(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)  # the child's own rusage, not all children's
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}")
    return seconds, usage.ru_maxrss / 1024  # Linux reports KiB


def bench_cli(runs: int = 7) -> dict:
    """Median/min/max wall time and peak RSS of each quick command over ``runs`` runs."""
    booster = [sys.executable, "-m", "booster"]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "one.jsonl"
        data.write_text(json.dumps(ONE_LINE) + "\n", encoding="utf-8")
        commands = {
            "python -c pass (floor)": [sys.executable, "-c", "pass"],
            "booster --help": [*booster, "--help"],
            "booster data check (1 line)": [*booster, "data", "check", str(data)],
        }
        rows = []
        for name, argv in commands.items():
            _run_once(argv)  # warm the file cache: the table is about import work, not the disk
            samples = [_run_once(argv) for _ in range(runs)]
            times = [s for s, _ in samples]
            rows.append({"command": name, "runs": runs, "median_s": statistics.median(times), "min_s": min(times),
                         "max_s": max(times), "peak_rss_mb": max(m for _, m in samples)})
    return {"python": sys.version.split()[0], "cpus": os.cpu_count(), "rows": rows}


def format_table(result: dict) -> str:
    lines = ["| command | median s | min s | max s | peak RSS MB |", "|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| `{r['command']}` | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['max_s']:.3f} | "
                     f"{r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)
