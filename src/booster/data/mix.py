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

import json
import math
import random
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path

import booster
from booster.errors import BoosterError
from booster.io import atomic_path, sha256_text
from booster.data.prepare import P_DEFINITION, check_folder_path, load_manifest, load_pool
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


def manifest_path(out: str | Path) -> Path:
    """``mix.jsonl`` → ``mix.manifest.json`` (any other name gets ``.manifest.json`` added)."""
    out = Path(out)
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out.with_name(stem + ".manifest.json")


def write_mix(data_dir: str | Path, task: str | None, n: int, p: float | None, seed: int, out: str | Path,
              recipe: str = "task_mix") -> dict:
    """Build the user's set by attack ``recipe`` (:mod:`booster.data.attacks`; the default is
    :func:`mix`) and write ``out`` plus its manifest atomically; return the manifest."""
    from booster.data import attacks

    out = Path(out)
    for path in (out, manifest_path(out)):
        if path.is_dir():
            raise BoosterError(f"{path}: is a folder; --out needs a file name such as mix.jsonl")
    check_folder_path(out.parent, out)
    records = attacks.build(data_dir, recipe, task, n, p, seed)
    pools = load_manifest(data_dir)["pools"]
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    k = sum(r["harmful"] for r in records)
    manifest = {
        "booster_version": booster.__version__,
        "recipe": recipe, "definition": attacks.definition(recipe), "reference": attacks.get(recipe).reference,
        "task": task, "n": n, "p": attacks.cell_p(recipe, p), "k": k, "seed": seed,
        **({"p_definition": P_DEFINITION} if recipe == attacks.DEFAULT else {}),
        "pools": {name: {"path": pools[name]["path"], "sha256": pools[name]["sha256"]}
                  for name in attacks.get(recipe).pools(task)},
        **({"files": attacks.file_hashes(recipe)} if attacks.get(recipe).files else {}),
        "output": {"path": out.name, "count": len(records), "harmful": k, "benign": len(records) - k,
                   "sha256": sha256_text(text)},
    }
    # The data file is renamed into place first, its manifest right after; a failure before
    # either rename leaves neither.
    with atomic_path(manifest_path(out)) as mtmp:
        with atomic_path(out) as tmp:
            tmp.write_text(text, encoding="utf-8")
            mtmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest
