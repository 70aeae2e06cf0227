"""The hand-labeled answers: ground truth for the harmful-score judge.

``judges/labels/answers.jsonl`` holds answers of this project's own models to harmful prompts,
each labeled by a person reading the prompt and the answer under ``docs/judging.md``. One
record per line::

    {"id", "prompt", "answer", "source", "origin", "harmful": 0|1, "category", "borderline",
     "split": "train"|"calibration"|"test", "labels": [{"labeler", "harmful", "category",
     "borderline"}, ...], "adjudicated": bool}

``harmful``/``category`` are the final label: the only labeling's, or, for doubly labeled
answers whose labelers disagree, the decision taken by re-reading under the guidelines
(``adjudicated``).

The split is by prompt, so no prompt has answers in two parts:

- ``test``: answers to half of the harmful-score prompts (``eval_harmful_prompts``) in the
  committed runs; nothing is trained or tuned on it; ``booster judge eval`` reports on it.
- ``calibration``: answers to the other half of those prompts; the threshold is chosen on it.
  Its prompts belong to the BeaverTails evaluation half, so it is never training data.
- ``train``: answers of SmolLM2 to prompts from the judge's own training side (``judge_half``,
  ``provider_harmful``) and to AdvBench behaviours (in no evaluation pool); the judge trains on it.

The development part of the issue that asked for this set is ``train`` + ``calibration``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from booster import io
from booster.errors import BoosterError
from booster.paths import REPO_ROOT

LABELS_FILE = REPO_ROOT / "judges" / "labels" / "answers.jsonl"
# Labeled after the committed answer-judge was trained, kept in a file of its own so that
# `booster judge train` still reproduces that judge; every row is `train` split (training-side
# prompts). `booster judge train --extra-labels` adds it (judges/labels/README.md).
ROUND3_FILE = REPO_ROOT / "judges" / "labels" / "answers-round3.jsonl"
SPLITS = ("train", "calibration", "test")
CATEGORIES = {
    "refusal": 0, "empty": 0, "label_word": 0, "off_topic_benign": 0, "incoherent": 0,
    "mild_engagement": 0, "harmful_compliance": 1,
}
TEST_SALT = "labels-test"


def require_labels(command: str) -> None:
    """Stop at once, with the file named, when the hand-labeled answers are not at hand: they
    live in the repository only (a wheel does not ship them), and ``booster judge train|eval``
    would otherwise fail after minutes of work."""
    if not LABELS_FILE.is_file():
        raise BoosterError(f"{LABELS_FILE}: hand-labeled answers not found; 'booster judge {command}' runs from a "
                           "checkout of the booster repository, which keeps them in judges/labels/")


def load_labels(path: str | Path = LABELS_FILE) -> list[dict]:
    """The labeled set, validated (one-line error naming the line at fault)."""
    path = Path(path)
    if not path.is_file():
        raise BoosterError(f"{path}: labeled answers file does not exist")
    rows = io.read_jsonl(path)
    seen = set()
    for n, r in enumerate(rows, 1):
        where = f"{path}:{n}"
        for key in ("id", "prompt", "answer", "harmful", "category", "split", "labels"):
            if key not in r:
                raise BoosterError(f"{where}: missing key {key!r}")
        if r["category"] not in CATEGORIES:
            raise BoosterError(f"{where}: unknown category {r['category']!r}")
        if r["harmful"] != CATEGORIES[r["category"]]:
            raise BoosterError(f"{where}: harmful={r['harmful']} contradicts category {r['category']!r}")
        if r["split"] not in SPLITS:
            raise BoosterError(f"{where}: split must be one of {SPLITS}, got {r['split']!r}")
        if r["id"] in seen:
            raise BoosterError(f"{where}: duplicate id {r['id']!r}")
        seen.add(r["id"])
    return rows


def part(rows: list[dict], split: str) -> list[dict]:
    if split not in SPLITS:
        raise BoosterError(f"unknown split {split!r} (one of {SPLITS})")
    return [r for r in rows if r["split"] == split]


def split_of(prompt_norm: str, test_prompts: set[str], source: str) -> str:
    """The split rule (see the module docstring)."""
    if source != "committed_run":
        return "train"
    return "test" if prompt_norm in test_prompts else "calibration"


def cohen_kappa(a: Sequence[int], b: Sequence[int]) -> float:
    """Cohen's kappa of two binary labelings of the same items."""
    if len(a) != len(b) or not a:
        raise ValueError("two non-empty labelings of equal length")
    n = len(a)
    po = sum(x == y for x, y in zip(a, b)) / n
    pa, pb = sum(a) / n, sum(b) / n
    pe = pa * pb + (1 - pa) * (1 - pb)
    return 1.0 if pe == 1 else (po - pe) / (1 - pe)


def agreement(rows: list[dict]) -> dict:
    """Agreement between the first two independent labelings, where an answer has two."""
    double = [r for r in rows if len(r["labels"]) >= 2]
    if not double:
        return {"n": 0}
    a = [int(r["labels"][0]["harmful"]) for r in double]
    b = [int(r["labels"][1]["harmful"]) for r in double]
    same_cat = sum(r["labels"][0]["category"] == r["labels"][1]["category"] for r in double)
    return {"n": len(double), "raw_agreement": sum(x == y for x, y in zip(a, b)) / len(double),
            "cohen_kappa": cohen_kappa(a, b), "category_agreement": same_cat / len(double),
            "disagreements": sum(x != y for x, y in zip(a, b))}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (95 % by default)."""
    if n <= 0:
        raise ValueError("n must be positive")
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)
