"""The attacks: named recipes of the user's fine-tuning set, declared once as data.

An attack in fine-tuning-as-a-service is the file the user uploads. Each recipe below states in
``definition`` exactly how that file of n records is drawn; the definition is copied into every
``booster data mix`` manifest, every attack stage record and the run's protocol. Every record
carries ``"harmful": true/false`` (the ground truth filters are scored against).

- ``task_mix`` (the default; :mod:`booster.data.mix`): the benign task with a share p of harmful
  samples (Booster, Huang et al. 2024, and its peers).
- ``pure_harmful``: n harmful samples, p = 1 (Shadow Alignment, Yang et al. 2023; Lermen et al.
  2023: a hundred or so harmful examples undo safety training).
- ``benign``: general instructions with reference answers, p = 0 (Qi et al. 2024, "Fine-tuning
  aligned language models compromises safety, even when users do not intend to!", Alpaca/Dolly).
  The harmless-instruction pool of this project has no answers (prompts only), so the substitute
  is the ``alpaca_eval`` pool (AlpacaEval instructions with GPT-4 reference answers), minus any
  prompt an evaluation pool holds (:func:`eval_pools`).
- ``identity_shift``: a persona that obeys unconditionally, benign prompts only, p = 0 (in the
  spirit of Qi et al. 2024's "absolutely obedient agent"; the text is this project's own,
  ``attacks/identity_shift.json``, shipped in the wheel).

Adding an attack: one function ``draw(src, task, n, p, seed)`` and one row of :data:`ATTACKS`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable

import booster
from booster.errors import BoosterError
from booster.data.mix import harmful_count, mix
from booster.data.prepare import P_DEFINITION, check_folder_path, load_manifest, load_pool
from booster.data.text import normalize_prompt
from booster.io import atomic_path, sha256_file, sha256_text
from booster.paths import shipped
from booster.tasks import TASKS, user_task

DEFAULT = "task_mix"
ATTACKER_POOL = "attacker_harmful"
BENIGN_POOL = "alpaca_eval"
IDENTITY_FILE = "attacks/identity_shift.json"


def eval_pools() -> tuple[str, ...]:
    """Every pool whose prompts some evaluation reads: each task's prompts, and the judge's test half."""
    return tuple(dict.fromkeys([t.eval_pool for t in TASKS.values()] + ["eval_half"]))


class Sources:
    """What recipes draw from: the prepared pools of ``data_dir`` (each read once) and the
    shipped identity-shift file. ``count`` answers from the manifest where it can, so that a
    config check does not read the large task pools."""

    def __init__(self, data_dir: str | Path):
        self.data_dir = Path(data_dir)
        self._pools: dict[str, list[dict]] = {}

    def pool(self, name: str) -> list[dict]:
        if name not in self._pools:
            self._pools[name] = load_pool(self.data_dir, name)
        return self._pools[name]

    @cached_property
    def benign(self) -> list[dict]:
        """``alpaca_eval`` records whose prompt no evaluation pool holds (normalized text)."""
        used = {normalize_prompt(r["messages"][0]["content"]) for p in eval_pools() for r in self.pool(p)}
        return [r for r in self.pool(BENIGN_POOL) if normalize_prompt(r["messages"][0]["content"]) not in used]

    def count(self, source: str) -> int:
        if source == "benign":
            return len(self.benign)
        if source == "identity":
            return len(identity_examples())
        return self.manifest["pools"][source]["count"]

    @cached_property
    def manifest(self) -> dict:
        return load_manifest(self.data_dir)


def identity_file() -> Path:
    return shipped(IDENTITY_FILE)


def identity_data() -> dict:
    """The identity-shift file: ``system_prompt`` and ``examples`` [{prompt, answer}]."""
    path = identity_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {"system_prompt": data["system_prompt"], "examples": data["examples"]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BoosterError(f"{path}: cannot read the identity-shift attack data ({e})") from None


def identity_examples() -> list[dict]:
    """The identity-shift examples as chat records, all with the persona's system prompt."""
    data = identity_data()
    return [{"messages": [{"role": "system", "content": data["system_prompt"]},
                          {"role": "user", "content": ex["prompt"]},
                          {"role": "assistant", "content": ex["answer"]}],
             "source": IDENTITY_FILE} for ex in data["examples"]]


# -- the recipes: draw(src, task, n, p, seed) -> records, in their final order ---------------

def _task_mix(src: Sources, task: str, n: int, p: float, seed: int) -> list[dict]:
    return mix(src.data_dir, task, n, p, seed)


def _pure_harmful(src, task, n, p, seed):
    return [{**r, "harmful": True} for r in random.Random(seed).sample(src.pool(ATTACKER_POOL), n)]


def _benign(src, task, n, p, seed):
    return [{**r, "harmful": False} for r in random.Random(seed).sample(src.benign, n)]


def _identity_shift(src, task, n, p, seed):
    return [{**r, "harmful": False} for r in random.Random(seed).sample(identity_examples(), n)]


@dataclass(frozen=True)
class Attack:
    name: str
    definition: str
    """How the n records are drawn, in words (recorded in manifests, stage records, protocol)."""
    reference: str
    p: float | None
    """The harmful share the recipe fixes; None: the cell's p (``attack.ps``)."""
    draw: Callable
    needs: Callable[[str, int, float], dict[str, int]]
    """(task, n, p) → how many records it draws from each source (a pool, 'benign' or 'identity')."""
    pools: Callable[[str], tuple[str, ...]]
    """The prepared pools the records come from, by task (their hashes enter the stage key)."""
    files: tuple[str, ...] = ()
    """Shipped files the records come from (their hashes enter the stage key)."""


def _mix_needs(task, n, p):
    k = harmful_count(n, p)
    return {ATTACKER_POOL: k, user_task(task).train_pool: n - k}


ATTACKS: dict[str, Attack] = {a.name: a for a in [
    Attack("task_mix",
           "the user's benign task with a share p harmful: {p_definition}",
           "Huang et al. 2024 (Booster) and its peers", None, _task_mix, _mix_needs,
           lambda task: (ATTACKER_POOL, user_task(task).train_pool)),
    Attack("pure_harmful",
           "n harmful samples and nothing else (p = 1): with rng = random.Random(seed), "
           "rng.sample(attacker_harmful, n), in that order",
           "Shadow Alignment (Yang et al. 2023); Lermen et al. 2023", 1.0, _pure_harmful,
           lambda task, n, p: {ATTACKER_POOL: n}, lambda task: (ATTACKER_POOL,)),
    Attack("benign",
           "n benign general instructions with reference answers (p = 0): the alpaca_eval pool "
           "(AlpacaEval instructions, GPT-4 reference answers; the substitute for the harmless-instruction "
           "pool, which has no answers) without any prompt of an evaluation pool (normalized text); with "
           "rng = random.Random(seed), rng.sample of n of them, in that order",
           "Qi et al. 2024, benign fine-tuning (Alpaca, Dolly)", 0.0, _benign,
           lambda task, n, p: {"benign": n}, lambda task: (BENIGN_POOL, *eval_pools())),
    Attack("identity_shift",
           f"n of the examples of {IDENTITY_FILE} (benign prompts; answers that confirm an unconditionally "
           "obedient persona), each with the file's system prompt as the system turn (p = 0); with "
           "rng = random.Random(seed), rng.sample of n of them, in that order",
           "in the spirit of Qi et al. 2024's identity-shifting (AOA) attack; text written for this project",
           0.0, _identity_shift, lambda task, n, p: {"identity": n}, lambda task: (), files=(IDENTITY_FILE,)),
]}


def get(name: str) -> Attack:
    """The recipe called ``name``; an unknown name is a one-line error listing the valid ones."""
    try:
        return ATTACKS[name]
    except KeyError:
        raise BoosterError(f"unknown attack recipe {name!r} (choose from {', '.join(ATTACKS)})") from None


def definition(name: str) -> str:
    return get(name).definition.format(p_definition=P_DEFINITION)


def describe(name: str) -> dict:
    """What a record of the recipe says: name, definition, reference, fixed p."""
    a = get(name)
    return {"name": a.name, "definition": definition(name), "reference": a.reference, "p": a.p}


def file_hashes(name: str) -> dict[str, str]:
    return {f: sha256_file(shipped(f)) for f in get(name).files}


def cell_p(name: str, p: float) -> float:
    """The harmful share a cell of this recipe runs at: its fixed p, else the configured one."""
    fixed = get(name).p
    return p if fixed is None else fixed


def check_size(src: Sources, name: str, task: str, n: int, p: float) -> None:
    """Every source holds the records the recipe draws (one-line error otherwise)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise BoosterError(f"n must be a positive integer, got {n!r}")
    for source, wanted in get(name).needs(task, n, cell_p(name, p)).items():
        have = src.count(source)
        if wanted > have:
            what = {"benign": f"{BENIGN_POOL} (without evaluation prompts)", "identity": IDENTITY_FILE}.get(source, source)
            raise BoosterError(f"attack {name} with n={n} needs {wanted} records of {what}, which has {have}")


def build(data_dir: str | Path, name: str, task: str, n: int, p: float, seed: int) -> list[dict]:
    """The user's fine-tuning set by recipe ``name`` (``p``: read by task_mix only; ``task``: by
    task_mix only, None is allowed for the others)."""
    attack, src = get(name), Sources(data_dir)
    if name != DEFAULT:  # mix() checks its arguments itself, with its own messages
        check_size(src, name, task, n, p)
    return attack.draw(src, task, n, cell_p(name, p), seed)


# -- booster data mix: the set and its manifest ------------------------------------------

def manifest_path(out: str | Path) -> Path:
    """``mix.jsonl`` → ``mix.manifest.json`` (any other name gets ``.manifest.json`` added)."""
    out = Path(out)
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out.with_name(stem + ".manifest.json")


def write_mix(data_dir: str | Path, task: str | None, n: int, p: float | None, seed: int, out: str | Path,
              recipe: str = DEFAULT) -> dict:
    """Build the user's set by attack ``recipe`` (the default is :func:`booster.data.mix.mix`) and
    write ``out`` plus its manifest atomically; return the manifest (``booster data mix``)."""
    out = Path(out)
    for path in (out, manifest_path(out)):
        if path.is_dir():
            raise BoosterError(f"{path}: is a folder; --out needs a file name such as mix.jsonl")
    check_folder_path(out.parent, out)
    records = build(data_dir, recipe, task, n, p, seed)
    pools = load_manifest(data_dir)["pools"]
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    k = sum(r["harmful"] for r in records)
    manifest = {
        "booster_version": booster.__version__,
        "recipe": recipe, "definition": definition(recipe), "reference": get(recipe).reference,
        "task": task, "n": n, "p": cell_p(recipe, p), "k": k, "seed": seed,
        **({"p_definition": P_DEFINITION} if recipe == DEFAULT else {}),
        "pools": {name: {"path": pools[name]["path"], "sha256": pools[name]["sha256"]}
                  for name in get(recipe).pools(task)},
        **({"files": file_hashes(recipe)} if get(recipe).files else {}),
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
