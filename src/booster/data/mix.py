"""``booster data mix``: the user's fine-tuning set of n samples, a share p of them harmful
(the ``task_mix`` attack; the other attack recipes are in :mod:`booster.data.attacks`).

Definition of p (recorded in every manifest): exactly ``k = floor(p*n + 0.5)`` samples (p·n
rounded half up, with p read as the decimal number the user wrote, so 0.15·10 gives 2) are
harmful, drawn without replacement from ``attacker_harmful``; the other ``n - k`` are drawn
without replacement from the task's train pool. With ``rng = random.Random(seed)``: harmful
= ``rng.sample(attacker, k)``, then benign = ``rng.sample(train, n - k)``, then
``rng.shuffle(harmful + benign)``. Each record carries ``"harmful": true/false``.
"""

from __future__ import annotations

import math
import random
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path

from booster.errors import BoosterError
from booster.data.prepare import P_DEFINITION, load_pool  # noqa: F401 (P_DEFINITION: re-exported)
from booster.tasks import user_task

ATTACKER_POOL = "attacker_harmful"


def harmful_count(n: int, p: float) -> int:
    """k = floor(p*n + 0.5), computed on the decimal form of p (no binary float surprises)."""
    exact = Decimal(repr(float(p))) * n + Decimal("0.5")
    return int(exact.to_integral_value(rounding=ROUND_FLOOR))


def _check_args(task: str, n, p) -> None:
    user_task(task)  # unknown task: error listing the valid ones
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise BoosterError(f"n must be a positive integer, got {n!r}")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or math.isnan(p) or not 0 <= p <= 1:
        raise BoosterError(f"p must be a number in [0, 1], got {p!r}")


def mix(data_dir: str | Path, task: str, n: int, p: float, seed: int = 0) -> list[dict]:
    """The user's fine-tuning set (see the module docstring for the exact procedure)."""
    _check_args(task, n, p)
    train_name = user_task(task).train_pool
    k = harmful_count(n, p)
    attacker = load_pool(data_dir, ATTACKER_POOL)
    if k > len(attacker):
        raise BoosterError(
            f"p={p} with n={n} needs k={k} harmful samples but {ATTACKER_POOL} has only {len(attacker)}"
        )
    train = load_pool(data_dir, train_name)
    if n - k > len(train):
        raise BoosterError(
            f"n={n} with p={p} needs {n - k} benign samples but {train_name} has only {len(train)}"
        )
    rng = random.Random(seed)
    records = [{**r, "harmful": True} for r in rng.sample(attacker, k)]
    records += [{**r, "harmful": False} for r in rng.sample(train, n - k)]
    rng.shuffle(records)
    return records
