"""The stage cache: keys, records, locks and the ledger. It knows stage kinds, not methods.

Each stage's output lives in ``CACHE/<kind>/<key>/`` where ``key`` hashes every input that
can change the output (model identity, data pool hashes, method and training configs, the
upstream stage's key). A stage is done when its folder holds ``stage.json``: it is built in
``<key>.work/`` (which also holds the training checkpoint, so a killed stage resumes) and
renamed into place at the end. An aligned model is therefore trained once and reused by every
attack, and a grid killed at any point restarts where it stopped.

The cache lives on one machine. A run folder also keeps a *ledger* (``OUT/stages``): every
stage's records (stage.json, training history, answers, scored samples) without its weights.
A fresh checkout imports the ledger into its cache (and those of the sibling run folders, for the
stages two presets share), so a grid that spans sessions never redoes a finished stage; when a
new stage needs the weights of an imported one, the recipe of its kind rebuilds them from the
same inputs under the same key (``booster.pipeline.recipes``).

Several runs may share one cache: each stage is computed under a lock
(``CACHE/<kind>/<key>.lock``), so a run that reaches a stage another run is computing waits for
it, then reuses what it wrote instead of computing it again.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from booster import io

# Bumped whenever a stage's behaviour changes for the same inputs, so older cache entries are
# not reused (2: LoRA initialisation seeded per stage).
STAGE_VERSION = 2

# Every stage kind, in pipeline order: align → attack → repair → generate (answers) → eval (scores).
STAGE_KINDS = ("align", "attack", "repair", "generate", "eval")

# What a ledger leaves out: weights, checkpoints, unfinished stages.
LEDGER_SKIP = ("adapter", "checkpoint", "*.work")


def digest(obj: dict) -> str:
    """A stage key: the hash of every input of the stage."""
    return io.sha256_text(json.dumps({"stage_version": STAGE_VERSION, **obj}, sort_keys=True, default=str))[:16]


def key_identity(identity: dict) -> dict:
    """The part of a model's or judge's identity that stage keys hash: its content (weight
    hashes, source), not where it lies on this machine or when it was converted, so that a
    ledger written on another machine matches. An identity without weight hashes keeps its path."""
    if not (identity.get("weights_sha256") or identity.get("sha256")):
        return identity

    def strip(d: dict) -> dict:
        return {k: strip(v) if isinstance(v, dict) else v for k, v in d.items() if k not in ("path", "created")}

    return strip(identity)


@dataclass
class StageResult:
    kind: str
    key: str
    path: Path
    record: dict

    @property
    def adapter(self) -> Path:
        return self.path / "adapter"


class Cache:
    """``CACHE/<kind>/<key>/`` folders, their locks, and the ledger.

    ``state``: accelerate's ``PartialState``; only its main process writes and takes locks."""

    def __init__(self, root: Path, state):
        self.root, self.state = Path(root), state

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    def work(self, kind: str, key: str, fresh: bool = False) -> Path:
        """The stage's build folder (``fresh``: emptied first, for stages that are not resumed)."""
        work = self.root / kind / f"{key}.work"
        if fresh:
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
        return work

    def has(self, kind: str, key: str) -> bool:
        return (self.path(kind, key) / "stage.json").exists()

    def load(self, kind: str, key: str) -> StageResult:
        path = self.path(kind, key)
        return StageResult(kind, key, path, json.loads((path / "stage.json").read_text()))

    def reusable(self, kind: str, key: str, rebuild: bool = False) -> StageResult | None:
        """The finished stage, or None when it must be computed (``rebuild``: its adapter is missing)."""
        if not self.has(kind, key) or (rebuild and not (self.path(kind, key) / "adapter").exists()):
            return None
        return self.load(kind, key)

    @contextlib.contextmanager
    def lock(self, kind: str, key: str, *, every_process: bool = False):
        """Compute one stage alone: another run on this cache that holds the stage's lock is
        waited for (with a message), and the caller then checks the cache again.

        Only the main process takes the lock (the others of a distributed run would otherwise
        wait for it); with ``every_process``, for stages every process computes, the others wait
        at a barrier until it holds the lock, so that all of them then see the same cache."""
        def say_waiting():
            print(f"booster: waiting for stage {kind}/{key} (locked by another run on {self.root})",
                  file=sys.stderr, flush=True)

        lock = (io.file_lock(self.root / kind / f"{key}.lock", on_wait=say_waiting)
                if self.state.is_main_process else contextlib.nullcontext())
        with lock:
            if every_process:
                self.state.wait_for_everyone()
            yield

    def finish(self, kind: str, key: str, work: Path, record: dict) -> StageResult:
        """Move a built stage into place (main process). A stage imported from a ledger that
        was rebuilt for its weights keeps its recorded results: only the adapter moves in."""
        shutil.rmtree(work / "checkpoint", ignore_errors=True)
        final = self.path(kind, key)
        if (final / "stage.json").exists():
            os.replace(work / "adapter", final / "adapter")
            shutil.rmtree(work)
            return self.load(kind, key)
        io.write_json(work / "stage.json", record)
        os.replace(work, final)
        return StageResult(kind, key, final, record)

    # -- ledger: the cache without its weights ----------------------------------------------
    def export_ledger(self, results: list[StageResult], dest: Path) -> None:
        """Write the records of ``results`` and of the answers they scored (not their adapters)
        to ``dest/<kind>/<key>/``."""
        paths = {(r.kind, r.key): r.path for r in results}
        for r in results:
            if r.kind == "eval":  # the answers, so that another judge rescores without the weights
                paths[("generate", r.record["generate"])] = self.path("generate", r.record["generate"])
        with io.atomic_dir(dest) as tmp:
            for (kind, key), path in sorted(paths.items()):
                shutil.copytree(path, tmp / kind / key, ignore=shutil.ignore_patterns(*LEDGER_SKIP))

    def import_ledgers(self, out: Path) -> dict[Path, int]:
        """Import the run folder's own ledger, then those of its sibling run folders (the other
        presets under the same results folder): presets that share stages (one SFT alignment,
        the SFT cells two grids have in common) find them on a fresh checkout even when the stage
        was finished by the other preset's run. Keys hash every input, so a sibling's stage is
        only ever found by a run that would compute exactly it. Returns {ledger: stages imported}
        for the ledgers that added any."""
        own = Path(out) / "stages"
        siblings = sorted(p for p in Path(out).parent.glob("*/stages") if p != own) if Path(out).parent.is_dir() else []
        counts = {src: self.import_ledger(src) for src in ([own] if own.is_dir() else []) + siblings}
        return {src: n for src, n in counts.items() if n}

    def import_ledger(self, src: Path) -> int:
        """Copy the ledger's stages that this cache lacks; returns how many were imported."""
        n = 0
        for stage_json in sorted(Path(src).glob("*/*/stage.json")):
            kind, key = stage_json.parent.parent.name, stage_json.parent.name
            if kind not in STAGE_KINDS or self.has(kind, key):
                continue
            with self.lock(kind, key):  # not under another run that is computing or importing it
                if not self.has(kind, key):
                    with io.atomic_dir(self.path(kind, key)) as tmp:
                        shutil.copytree(stage_json.parent, tmp, dirs_exist_ok=True)
                    n += 1
        return n
