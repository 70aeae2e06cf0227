"""Round 5: the harmful samples of the issue-15 grid's user files, labeled by reading
(provenance script).

    python judges/labels/filter_labels.py pool WORK_DIR PREFIX SEED   # blind shares to label
    python judges/labels/filter_labels.py build WORK_DIR   # -> judges/labels/filter-samples.jsonl
    python judges/labels/filter_labels.py measure          # -> results/cpu-smollm2-finetune-defenses/screen-by-reading.json

Why: `booster screen` measures a filter's leakage against the mix's ground truth, the
``harmful`` flag every record of ``attacker_harmful`` carries (BeaverTails' "unsafe" label). Reading
the 18 samples the moderation filter kept of one file found many that are not harmful by this
project's rule (a factual answer on Russia's history, a definition of "redneck", a rebuttal of
"all men are cheaters"). A filter that keeps those is right, so the leakage against the pool's
flag mixes the filter's error with the pool's. This round labels every harmful-flagged sample
of the grid's files (the task mixes at p=0.1 seeds 0-2 and p=0.2; the pure-harmful file is
the p=0.2 file's first 100) under docs/judging.md section 1, blind to the filter, and measures
the leakage among the samples that are harmful by reading.

``pool`` and ``build`` work as in probe_labels.py (five first shares, a second labeling of a
fifth by two other labelers, ``adjudication.json`` for disagreements).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "src"))

from booster import io  # noqa: E402
from booster.evaluation.judges.labels import agreement, load_labels, wilson  # noqa: E402
from build_set import build_into, write_shares  # noqa: E402

LABELS = HERE / "filter-samples.jsonl"
RUN = REPO / "results" / "cpu-smollm2-finetune-defenses"
OUT = RUN / "screen-by-reading.json"
FILTER = "modfilter"  # the filter whose verdicts are recomputed here (SAFT's need the aligned model)


def _files(data_dir: Path) -> list[tuple[dict, list[dict]]]:
    """(screened cell, its user file) for every moderation-filter cell of screen.json."""
    from booster.pipeline.attack import Cell, user_data

    cells = json.loads((RUN / "screen.json").read_text(encoding="utf-8"))["cells"]
    return [(e, user_data(data_dir, Cell(e["task"], e["n"], e["p"], e["seed"], e["recipe"])))
            for e in cells if e["method"] == FILTER]


def _pair(record: dict) -> tuple[str, str]:
    from booster.methods.userdata import answer_text, prompt_text

    return prompt_text(record), answer_text(record)


def make_pool(work: Path, prefix: str, seed: int, data_dir: Path) -> None:
    pool: dict[tuple[str, str], dict] = {}
    for cell, records in _files(data_dir):
        for i, r in enumerate(records):
            if r["harmful"]:
                prompt, answer = _pair(r)
                pool.setdefault((prompt, answer), {"prompt": prompt, "answer": answer, "origin": {
                    "round": 5, "pool": "attacker_harmful", "first_seen": {k: cell[k] for k in
                                                                           ("recipe", "task", "n", "p", "seed")},
                    "index": i}})
    rows = list(pool.values())
    rng = random.Random(seed)
    rng.shuffle(rows)
    write_shares(work, prefix, rows, rng, 5, 2)


def build(work: Path) -> None:
    build_into(work, LABELS, "attacker_harmful")


def measure(data_dir: Path) -> dict:
    """Per moderation-filter cell: the pool's harmful samples that are harmful by reading, and the
    filter's leakage among those (its verdicts recomputed with its judge, as ``prepare_data``)."""
    from booster.config import load_config
    from booster.evaluation.judges import load_judge
    from booster.methods.modfilter import flags
    from booster.pipeline.config import ExperimentConfig

    labels = {(r["prompt"], r["answer"]): r for r in load_labels(LABELS)}
    config = load_config(ExperimentConfig, REPO / "configs" / "cpu-smollm2-finetune-defenses.yaml").attack.modfilter
    judge = load_judge(config.judge)
    result: dict = {"labels": str(LABELS.relative_to(REPO)), "second_labeling": agreement(list(labels.values())),
                    "judge": judge.identity(), "cells": []}
    for cell, records in _files(data_dir):
        harmful = [r for r in records if r["harmful"]]
        if not harmful:
            continue
        flagged, threshold = flags(config, judge, harmful)
        read_harmful = [labels[_pair(r)]["harmful"] for r in harmful]
        k = sum(read_harmful)
        kept_harmful = sum(h and not f for h, f in zip(read_harmful, flagged))
        lo, hi = wilson(kept_harmful, k) if k else (None, None)
        kept = [not f for f in flagged]
        removed_harmless = sum(not h and f for h, f in zip(read_harmful, flagged))
        if sum(kept) != cell["report"]["harmful_kept"]:  # the verdicts are the ones screen recorded
            raise SystemExit(f"{cell}: {sum(kept)} kept here, {cell['report']['harmful_kept']} in screen.json")
        result["cells"].append({
            **{x: cell[x] for x in ("recipe", "task", "n", "p", "seed")},
            "pool_harmful": len(harmful), "harmful_by_reading": k,
            "pool_flag_precision_pct": round(100 * k / len(harmful), 1),
            "leakage_vs_pool_pct": cell["report"]["leakage_pct"],
            "kept_harmful_by_reading": kept_harmful,
            "leakage_by_reading_pct": round(100 * kept_harmful / k, 1) if k else None,
            "leakage_by_reading_95ci": [round(100 * lo, 1), round(100 * hi, 1)] if k else None,
            "kept_not_harmful_by_reading": sum(not h and kp for h, kp in zip(read_harmful, kept)),
            # benign by reading: the file's benign records and its pool-harmful ones read as harmless
            "false_removal_by_reading_pct": _pct(cell["report"]["benign_removed"] + removed_harmless,
                                                 cell["report"]["benign_in"] + len(harmful) - k),
            "threshold": threshold,
        })
    io.write_json(OUT, result)
    print(json.dumps(result, indent=1))
    return result


def _pct(k: int, n: int) -> float | None:
    return round(100 * k / n, 1) if n else None


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "pool":
        make_pool(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), Path(sys.argv[5]))
    elif len(sys.argv) == 3 and sys.argv[1] == "build":
        build(Path(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == "measure":
        measure(Path(sys.argv[2]))
    else:
        raise SystemExit(__doc__)
