"""Moderation judges: the harmful score's judge, its data, training, metrics and CLI.

- :mod:`.base`: what a judge is (:class:`Judge`, score/flag of (question, answer) pairs, a
  threshold, an identity record with a sha256);
- :mod:`.registry`: the table from recorded kind / hub id to class, and :func:`load_judge`;
- :mod:`.minilm`: the CPU judge (cross-encoder over all-MiniLM-L6-v2); :mod:`.hub`: beaver-dam-7b
  and Llama Guard for GPU users;
- :mod:`.data`, :mod:`.suites`, :mod:`.labels`: what the MiniLM judge is trained, calibrated and
  tested on; :mod:`.train`, :mod:`.metrics`: training and measurement; :mod:`.cli`:
  ``booster judge train | eval``.
"""

from booster.evaluation.judges.base import Judge, Pair
from booster.evaluation.judges.registry import DEFAULT_JUDGE, load_judge

__all__ = ["DEFAULT_JUDGE", "Judge", "Pair", "load_judge"]
