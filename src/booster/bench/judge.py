"""Judge throughput: seconds to score answers of our own models, for each committed judge.

The answers are the hand-labeled ones of the committed runs (judges/labels, calibration and
test splits: real lengths, real prompts), cut to ``n``; every judge scores the same pairs once
after a warm-up. Ratios between judges measured in one run are the numbers to quote.
"""

from __future__ import annotations

import time

import torch


def main_judge(judges: list[str], n: int, threads: int | None) -> dict:
    from booster.evaluation.judges import load_judge
    from booster.evaluation.judges.labels import load_labels
    from booster.protocol import base_protocol

    if threads:
        torch.set_num_threads(threads)
    rows = [r for r in load_labels() if r["split"] != "train"][:n]
    pairs = [(r["prompt"], r["answer"]) for r in rows]
    out = []
    for name in judges:
        judge = load_judge(name)
        judge.score(pairs[:8])  # warm-up
        start = time.perf_counter()
        judge.score(pairs)
        seconds = time.perf_counter() - start
        out.append({"judge": name, "sha256": judge.identity().get("sha256"), "pairs": len(pairs),
                    "seconds": round(seconds, 2), "pairs_per_second": round(len(pairs) / seconds, 1)})
    return {"protocol": {**base_protocol(), "threads": torch.get_num_threads()}, "rows": out}
