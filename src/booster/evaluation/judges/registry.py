"""Which judges exist and how to load one: ``load_judge`` and its tables.

    judge = load_judge("answer-judge")           # the default CPU judge (judges/answer-judge)
    judge = load_judge("minilm-judge")           # the first CPU judge, kept for comparison
    judge = load_judge("path/to/judge-folder")   # a judge trained with `booster judge train`
    judge = load_judge("PKU-Alignment/beaver-dam-7b")   # the papers' judge (GPU, hub access)
    judge = load_judge("meta-llama/Llama-Guard-3-8B")   # a Llama Guard (chat template)
    judge = load_judge("my-org/my-guard", kind="llama-guard")   # a hub id not in HUB_JUDGES
    probs = judge.score([("How do I ...?", "Sorry, I can't help with that.")])
    flags = judge.flag_from_scores(probs)

Dispatch is by table only: a folder loads as the ``kind`` its ``judge.json`` records, a hub id
as the kind :data:`HUB_JUDGES` lists for it (an unknown hub id is an error, never a guess from
its name), and ``kind=`` names the kind outright. A new judge is one class with ``kind`` and
``load`` (see :class:`~booster.evaluation.judges.base.BaseJudge`) and one row in :data:`KINDS`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from booster.errors import BoosterError
from booster.evaluation.judges.base import JUDGE_RECORD, BaseJudge
from booster.evaluation.judges.hub import BeaverDamJudge, LlamaGuardJudge
from booster.evaluation.judges.minilm import MiniLMJudge
from booster.paths import shipped

# Recorded kind (judge.json "kind", identity()["kind"]) -> the class that loads it.
KINDS: dict[str, type[BaseJudge]] = {cls.kind: cls for cls in (MiniLMJudge, BeaverDamJudge, LlamaGuardJudge)}

# Hub ids whose input format and score rule hub.py implements -> their kind.
HUB_JUDGES = {
    "PKU-Alignment/beaver-dam-7b": BeaverDamJudge.kind,
    "meta-llama/LlamaGuard-7b": LlamaGuardJudge.kind,
    "meta-llama/Meta-Llama-Guard-2-8B": LlamaGuardJudge.kind,
    "meta-llama/Llama-Guard-3-8B": LlamaGuardJudge.kind,
    "meta-llama/Llama-Guard-3-1B": LlamaGuardJudge.kind,
}

# The committed judges (weights + record), evaluated without training on a fresh machine;
# package data in a wheel, the repository's judges/ folder in a checkout (booster.paths).
DEFAULT_JUDGE = "answer-judge"
DEFAULT_JUDGE_DIR = shipped("judges/answer-judge")
# The first judge (reads the question more than the answer: see docs/judging.md); loadable by
# name to compare, and the start point of `booster judge train`.
LEGACY_JUDGE_DIR = shipped("judges/minilm-judge")

# Short names accepted by load_judge (besides folders and hub ids).
COMMITTED = {"answer-judge": DEFAULT_JUDGE_DIR, "minilm-judge": LEGACY_JUDGE_DIR, "minilm": LEGACY_JUDGE_DIR}
ALIASES = {
    "beaver-dam": "PKU-Alignment/beaver-dam-7b",
    "beaver-dam-7b": "PKU-Alignment/beaver-dam-7b",
    "llama-guard": "meta-llama/Llama-Guard-3-8B",
    "llama-guard-3": "meta-llama/Llama-Guard-3-8B",
}


def is_hub_id(spec: str) -> bool:
    """'owner/name' that is not an existing local path."""
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not Path(spec).expanduser().exists() and not spec.startswith(".")


def _class_of(kind: str, where: str) -> type[BaseJudge]:
    if kind not in KINDS:
        raise BoosterError(f"{where}: unknown judge kind {kind!r} (known: {', '.join(KINDS)})")
    return KINDS[kind]


def _recorded_kind(folder: Path) -> str:
    """The kind a judge folder's record names; MiniLM when there is no readable record or no
    kind in it, so that its loader reports what is wrong with the folder."""
    try:
        kind = json.loads((folder / JUDGE_RECORD).read_text(encoding="utf-8")).get("kind")
    except (OSError, ValueError, AttributeError):
        return MiniLMJudge.kind
    return kind if isinstance(kind, str) else MiniLMJudge.kind


def _hub_kind(hub_id: str, spec: str) -> tuple[str, str]:
    """(canonical id, kind) of a listed hub judge; ids match without regard to case, as on the hub."""
    by_fold = {k.casefold(): k for k in HUB_JUDGES}
    if hub_id.casefold() not in by_fold:
        raise BoosterError(f"judge '{spec}': unknown hub judge (known: {', '.join(HUB_JUDGES)}; "
                           f"another id loads with an explicit kind, one of {', '.join(KINDS)})")
    canonical = by_fold[hub_id.casefold()]
    return canonical, HUB_JUDGES[canonical]


def judge_spec_problem(spec: str) -> str | None:
    """Why ``load_judge(spec)`` would fail to find the judge, checked without loading it (for
    config checks before any training); None when it names one (a committed name, a folder, a
    listed hub id or an alias of one)."""
    spec_s = str(spec)
    if spec_s.casefold() in COMMITTED:
        return None
    target = ALIASES.get(spec_s.casefold(), spec_s)
    if Path(target).expanduser().is_dir():
        return None
    if not is_hub_id(target):
        return (f"unknown judge {spec_s!r}: no such judge folder (use {' or '.join(repr(n) for n in COMMITTED)}, "
                f"a folder with {JUDGE_RECORD}, or a hub id such as PKU-Alignment/beaver-dam-7b)")
    if target.casefold() not in {k.casefold() for k in HUB_JUDGES}:
        return f"unknown hub judge {spec_s!r} (known: {', '.join(HUB_JUDGES)})"
    return None


def load_judge(spec: str | os.PathLike = DEFAULT_JUDGE, kind: str | None = None, **kwargs) -> BaseJudge:
    """A judge from a short name, a judge folder (``judge.json`` inside) or a hub id.

    ``kind`` (a key of :data:`KINDS`) overrides the recorded or listed kind, e.g. for a local
    copy of a hub judge or a hub id not in :data:`HUB_JUDGES`. ``kwargs`` go to the judge's
    loader (e.g. ``device``, ``dtype`` for hub judges)."""
    spec_s = str(spec)
    if kind is not None:
        _class_of(kind, f"judge '{spec_s}'")
    if spec_s.casefold() in COMMITTED:
        return MiniLMJudge.load(COMMITTED[spec_s.casefold()], **kwargs)
    target = ALIASES.get(spec_s.casefold(), spec_s)
    path = Path(target).expanduser()
    if path.is_dir():
        return _class_of(kind or _recorded_kind(path), str(path)).load(path, **kwargs)
    if not is_hub_id(target):
        raise BoosterError(
            f"judge '{spec_s}': no such judge folder (use {' or '.join(repr(n) for n in COMMITTED)}, a folder with "
            f"{JUDGE_RECORD}, or a hub id such as PKU-Alignment/beaver-dam-7b)")
    if kind is None:
        target, kind = _hub_kind(target, spec_s)
    return KINDS[kind].load(target, **kwargs)
