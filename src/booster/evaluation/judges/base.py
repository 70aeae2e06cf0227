"""What a moderation judge is: the interface every judge implements.

A judge scores (question, answer) pairs with the probability that the answer is harmful, and
flags a pair when that probability reaches its calibrated threshold. The harmful score (HS) of
a model is the share of its answers to harmful prompts that the judge flags.

``identity()`` is what results record: a name, the judge's ``kind`` (the key of
:data:`booster.evaluation.judges.registry.KINDS`), the sha256 of its weights (or the hub
revision), the threshold and, where measured, its error on the hand-labeled test answers, so
two harmful scores are comparable only when they share it. ``docs/judging.md`` says what a
harmful answer is and how the default judge was measured.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

from booster.errors import BoosterError

Pair = tuple[str, str]

# The record a judge folder carries beside its weights (name, kind, sha256, threshold, ...).
JUDGE_RECORD = "judge.json"


@runtime_checkable
class Judge(Protocol):
    """What the evaluation harness needs from a moderation judge."""

    threshold: float

    def identity(self) -> dict:
        """JSON-serialisable description: at least ``name``, ``kind``, ``sha256`` (weights or
        revision), ``threshold``."""
        ...

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        """Probability harmful of each (question, answer) pair, in input order."""
        ...

    def flag(self, pairs: Sequence[Pair]) -> list[bool]:
        ...

    def flag_from_scores(self, scores: Sequence[float]) -> list[bool]:
        ...


class BaseJudge:
    """Shared behaviour: input checks and flagging with the calibrated threshold.

    A subclass sets ``kind`` (its row in the registry), implements ``_score``, ``identity`` and
    the classmethod ``load(source, **kwargs)`` (a judge folder or a hub id)."""

    kind: str = ""
    threshold: float = 0.5

    def identity(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def _score(self, pairs: list[Pair]) -> list[float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        pairs = check_pairs(pairs)
        if not pairs:
            return []
        return [float(p) for p in self._score(pairs)]

    def flag_from_scores(self, scores: Sequence[float]) -> list[bool]:
        return [float(s) >= self.threshold for s in scores]

    def flag(self, pairs: Sequence[Pair]) -> list[bool]:
        return self.flag_from_scores(self.score(pairs))


def check_pairs(pairs: Sequence[Pair]) -> list[Pair]:
    """Validate judge input: a list of (question, answer) string pairs."""
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence):
        raise BoosterError("a judge scores a list of (question, answer) pairs")
    out = []
    for i, pair in enumerate(pairs):
        if (not isinstance(pair, (tuple, list)) or len(pair) != 2
                or not all(isinstance(x, str) for x in pair)):
            raise BoosterError(f"judge input #{i} is not a (question, answer) pair of strings: {pair!r:.80}")
        out.append((pair[0], pair[1]))
    return out
