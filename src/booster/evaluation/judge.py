"""Moderation judges: the interface, the registry, and ``load_judge``.

A judge scores (question, answer) pairs with the probability that the answer is harmful, and
flags a pair when that probability reaches its calibrated threshold. The harmful score (HS) of
a model is the share of its answers to harmful prompts that the judge flags.

    judge = load_judge("answer-judge")           # the default CPU judge (judges/answer-judge)
    judge = load_judge("minilm-judge")           # the first CPU judge, kept for comparison
    judge = load_judge("path/to/judge-folder")   # a judge trained with `booster judge train`
    judge = load_judge("PKU-Alignment/beaver-dam-7b")   # the papers' judge (GPU, hub access)
    judge = load_judge("meta-llama/Llama-Guard-3-8B")   # any Llama Guard (chat template)
    probs = judge.score([("How do I ...?", "Sorry, I can't help with that.")])
    flags = judge.flag_from_scores(probs)

``identity()`` is what results record: a name, the sha256 of the judge's weights (or the hub
revision), the threshold and, where measured, its error on the hand-labeled test answers, so
two harmful scores are comparable only when they share it. ``docs/judging.md`` says what a
harmful answer is and how the default judge was measured.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

from booster.errors import BoosterError
from booster.paths import REPO_ROOT

Pair = tuple[str, str]

# The committed judges (weights + record), evaluated without training on a fresh machine.
DEFAULT_JUDGE = "answer-judge"
DEFAULT_JUDGE_DIR = REPO_ROOT / "judges" / "answer-judge"
# The first judge (reads the question more than the answer: see docs/judging.md); loadable by
# name to compare, and the start point of `booster judge train`.
LEGACY_JUDGE_DIR = REPO_ROOT / "judges" / "minilm-judge"
JUDGE_RECORD = "judge.json"

# Short names accepted by load_judge (besides folders and hub ids).
COMMITTED = {"answer-judge": DEFAULT_JUDGE_DIR, "minilm-judge": LEGACY_JUDGE_DIR, "minilm": LEGACY_JUDGE_DIR}
ALIASES = {
    "beaver-dam": "PKU-Alignment/beaver-dam-7b",
    "beaver-dam-7b": "PKU-Alignment/beaver-dam-7b",
    "llama-guard": "meta-llama/Llama-Guard-3-8B",
    "llama-guard-3": "meta-llama/Llama-Guard-3-8B",
}


@runtime_checkable
class Judge(Protocol):
    """What the evaluation harness needs from a moderation judge."""

    threshold: float

    def identity(self) -> dict:
        """JSON-serialisable description: at least ``name``, ``sha256`` (weights or revision),
        ``threshold``."""
        ...

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        """Probability harmful of each (question, answer) pair, in input order."""
        ...

    def flag(self, pairs: Sequence[Pair]) -> list[bool]:
        ...

    def flag_from_scores(self, scores: Sequence[float]) -> list[bool]:
        ...


class BaseJudge:
    """Shared behaviour: input checks and flagging with the calibrated threshold."""

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


def is_hub_id(spec: str) -> bool:
    """'owner/name' that is not an existing local path."""
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not Path(spec).expanduser().exists() and not spec.startswith(".")


def load_judge(spec: str | os.PathLike = DEFAULT_JUDGE, **kwargs) -> BaseJudge:
    """A judge from a short name, a judge folder (``judge.json`` inside) or a hub id.

    Hub ids whose name contains ``beaver-dam`` load :class:`~booster.evaluation.hf_judges.BeaverDamJudge`;
    names containing ``guard`` load :class:`~booster.evaluation.hf_judges.LlamaGuardJudge`.
    ``kwargs`` go to the judge's loader (e.g. ``device``, ``dtype`` for hub judges)."""
    spec_s = str(spec)
    if spec_s.casefold() in COMMITTED:
        from booster.evaluation.minilm_judge import MiniLMJudge

        return MiniLMJudge.load(COMMITTED[spec_s.casefold()], **kwargs)
    target = ALIASES.get(spec_s.casefold(), spec_s)
    path = Path(target).expanduser()
    if path.is_dir() or (not is_hub_id(target)):
        if not path.is_dir():
            raise BoosterError(
                f"judge '{spec_s}': no such judge folder (use {' or '.join(repr(n) for n in COMMITTED)}, a folder with {JUDGE_RECORD}, "
                "or a hub id such as PKU-Alignment/beaver-dam-7b)")
        from booster.evaluation.minilm_judge import MiniLMJudge

        return MiniLMJudge.load(path, **kwargs)
    name = target.split("/")[1].casefold()
    if "beaver-dam" in name:
        from booster.evaluation.hf_judges import BeaverDamJudge

        return BeaverDamJudge.from_pretrained(target, **kwargs)
    if "guard" in name:
        from booster.evaluation.hf_judges import LlamaGuardJudge

        return LlamaGuardJudge.from_pretrained(target, **kwargs)
    raise BoosterError(
        f"judge '{spec_s}': unknown hub judge (supported: beaver-dam models, Llama Guard models)")
