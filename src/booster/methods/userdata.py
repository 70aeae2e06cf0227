"""What the fine-tuning-stage defenses acting on the user's file share: the texts of a record,
the leakage report of a filter, and the seeded draw of provider safety examples.

These defenses train plain SFT; their defense is a transform of the user's records before
encoding (``Defense.prepare_data`` in ``booster.methods.registry``). The transform gets a *view*
of what the provider may use (``booster.pipeline.attack.DataView``): the tokenizer, the model as
it is before fine-tuning, a judge loader, the provider's pools, every evaluation prompt and the
cell's seed. This module imports no torch.
"""

from __future__ import annotations

import random

from booster.errors import BoosterError

# The provider's pool of safety examples (harmful prompt → refusal) that SafeInstr and BEA draw from.
SAFETY_POOL = "alignment"


def prompt_text(record: dict) -> str:
    """The user turn the answer replies to (the last user message)."""
    return next(m["content"] for m in reversed(record["messages"]) if m["role"] == "user")


def answer_text(record: dict) -> str:
    """The final assistant turn (the supervised answer)."""
    return record["messages"][-1]["content"]


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 2) if whole else None


def filter_report(records: list[dict], keep: list[bool]) -> dict:
    """Counts and rates of a filter against the mix's ground truth (each record's ``harmful``):
    leakage = harmful kept / harmful in the file; false removals = benign removed / benign in
    the file (percent; None when the file has none of that kind)."""
    harmful = [bool(r.get("harmful")) for r in records]
    harmful_in, harmful_kept = sum(harmful), sum(h and k for h, k in zip(harmful, keep))
    benign_in = len(records) - harmful_in
    benign_removed = sum(not h and not k for h, k in zip(harmful, keep))
    return {"n_in": len(records), "n_kept": sum(keep), "n_removed": len(records) - sum(keep),
            "harmful_in": harmful_in, "harmful_kept": harmful_kept, "leakage_pct": _pct(harmful_kept, harmful_in),
            "benign_in": benign_in, "benign_removed": benign_removed,
            "false_removal_pct": _pct(benign_removed, benign_in)}


def draw_safety(view, k: int, salt: str) -> list[dict]:
    """``k`` provider safety examples, a sample of the alignment pool seeded by the cell's seed
    and ``salt``, never one whose prompt any evaluation pool holds (matched by prompt text)."""
    pool = [r for r in view.pool(SAFETY_POOL) if prompt_text(r) not in view.eval_prompts]
    if k > len(pool):
        raise BoosterError(f"{salt}: asked for {k} safety examples, the provider pool '{SAFETY_POOL}' has "
                           f"{len(pool)} outside the evaluation prompts")
    return [{**r, "harmful": False, "provider": salt} for r in random.Random(f"{view.seed}:{salt}").sample(pool, k)]


def shuffled(records: list[dict], seed, salt: str) -> list[dict]:
    """``records`` in a seeded order (the user's file with the provider's examples mixed in)."""
    out = list(records)
    random.Random(f"{seed}:{salt}:order").shuffle(out)
    return out
