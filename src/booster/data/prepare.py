"""``booster data prepare``: assign raw rows to disjoint pools and write a manifest.

Every record is a chat: ``{"messages": [{"role": "user", ...}, {"role": "assistant", ...}],
...metadata}`` (prompt-only pools have just the user turn). The assignment rules below are
the protocol; :data:`SPLIT_RULES` states them in words in the manifest. All pools list their
records in raw file order, so a pool is a filter of its source files.

Output: ``OUT/pools/<name>.jsonl`` and ``OUT/manifest.json``. Everything is built in memory
first, then the pools folder and the manifest are swapped into place, so a failure (bad
source, too-small source, disk error) leaves the previous output, or none, untouched.
The manifest has no timestamps: same source + config → byte-identical files.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import booster
from booster.config import option, to_dict
from booster.errors import BoosterError, ConfigError, DataError
from booster.io import atomic_dir, atomic_path, sha256_file, sha256_text
from booster import tasks
from booster.data.sources import DATASETS, HubSource, LocalSource
from booster.data.text import normalize_prompt, seeded_order
from booster.data.userdata import SYMLINK_LOOP

# What p means in a fine-tuning mix (booster.data.mix draws it); defined here because every
# prepared manifest records it and mix.py imports this module.
P_DEFINITION = (
    "p is the share of harmful samples in the user's fine-tuning set of n samples: exactly "
    "k = floor(p*n + 0.5) (p*n rounded half up, p taken as the decimal written) are drawn without "
    "replacement from attacker_harmful and n - k from the task's train pool; with "
    "rng = random.Random(seed): rng.sample(attacker_harmful, k), then rng.sample(train, n - k), "
    "then rng.shuffle of the concatenation"
)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
POOLS_DIR = "pools"

# Pools whose prompts must be pairwise disjoint (normalized prompt text).
DISJOINT_POOLS = ("alignment", "provider_harmful", "attacker_harmful", "judge_half", "eval_half",
                  "validation_prompts")

POOL_ROLES = {
    "alignment": "provider's alignment data: harmful prompt with a safe answer",
    "provider_harmful": "provider's own harmful data: harmful prompt with a harmful answer (Booster, Vaccine, RepNoise)",
    "attacker_harmful": "attacker's harmful samples that mix puts into the user's fine-tuning set",
    "validation_prompts": "held-out harmful prompts for choosing hyperparameters",
    "judge_half": "labeled 30k_test rows (both labels) that train the moderation judge",
    "eval_half": "labeled 30k_test rows (both labels) that test the moderation judge",
    "eval_harmful_prompts": "harmful-score prompts: eval_half prompts with at least one unsafe answer",
    "sst2_train": "SST-2 benign fine-tuning data",
    "sst2_eval": "SST-2 fine-tune accuracy (GLUE dev)",
    "agnews_train": "AG News benign fine-tuning data",
    "agnews_eval": "AG News fine-tune accuracy",
    "gsm8k_train": "GSM8K benign fine-tuning data",
    "gsm8k_eval": "GSM8K fine-tune accuracy (test split)",
    "alpaca_eval": "AlpacaEval instructions with GPT-4 reference answers (helpfulness)",
    "benign_instructions": "harmless instructions for the over-refusal rate",
    "benign_validation": "held-out harmless instructions for choosing hyperparameters (over-refusal)",
    "advbench_prompts": "AdvBench harmful behaviors, extra harmful-prompt evaluation",
}
POOL_NAMES = tuple(POOL_ROLES)

SPLIT_RULES = {
    "normalization": 'prompts are compared as " ".join(prompt.casefold().split())',
    "seeded_order": 'unique normalized prompts sorted by sha256(f"{seed}:{salt}:{prompt}").hexdigest() ascending',
    "30k_test": "unique prompts in seeded_order(salt='30k_test'): the first ceil(N/2) go to eval_half, "
                "the rest to judge_half; each half keeps every labeled row of its prompts; "
                "eval_harmful_prompts = eval_half prompts with an unsafe row, one per prompt, in file order "
                "of the first unsafe row, with the union of the unsafe rows' categories",
    "330k": "unsafe rows of subsets a, b, c whose prompt is not in 30k_test; one record per unique prompt "
            "(its first unsafe row in file order a, b, c); in seeded_order(salt='330k') the first "
            "n_validation go to validation_prompts, the next n_attacker to attacker_harmful, the rest to "
            "provider_harmful",
    "alignment": "safety_tuned_llamas (instruction + '\\n\\n' + input when input is non-empty, safe output) "
                 "then subset_a rows with is_safe true; rows whose prompt is in 30k_test or in the 330k "
                 "unsafe prompts are dropped, then duplicates by prompt (first wins)",
    "ag_news": "per class, unique texts in seeded_order(salt='ag_news'): the first n_agnews_eval_per_class "
               "go to agnews_eval, the rest to agnews_train",
    "sst2": "sst2_train = train.tsv, sst2_eval = dev.tsv (GLUE SST-2)",
    "gsm8k": "gsm8k_train = train.jsonl, gsm8k_eval = test.jsonl; label = number after '####' without commas",
    "order": "every pool lists its records in raw file order",
}


def _non_negative(name: str, value: int) -> None:
    if value < 0:
        raise ConfigError(f"key {name!r}: must be >= 0, got {value}")


@dataclass
class DataConfig:
    """Settings of ``booster data prepare`` (YAML via ``--config``, or ``key=value``)."""

    seed: int = option(0, "seed of every seeded_order split")
    n_validation: int = option(500, "harmful prompts held out for choosing hyperparameters")
    n_attacker: int = option(2000, "harmful samples reserved for the attacker's fine-tuning data")
    n_agnews_eval_per_class: int = option(250, "AG News evaluation rows per class (4 classes)")

    def validate(self) -> None:
        for name in ("n_validation", "n_attacker", "n_agnews_eval_per_class"):
            _non_negative(name, getattr(self, name))


# ----------------------------------------------------------------------------- records

def _record(user: str, assistant: str | None, source: str, **meta) -> dict:
    user = user.strip()
    if not user or (assistant is not None and not assistant.strip()):
        raise BoosterError(f"{source}: a row has an empty prompt or answer: {user[:60]!r}")
    messages = [{"role": "user", "content": user}]
    if assistant is not None:
        messages.append({"role": "assistant", "content": assistant.strip()})
    return {"messages": messages, "source": source, **meta}


def _true_categories(category: dict) -> list[str]:
    return [name for name, flag in category.items() if flag]


def _beavertails_record(row: dict, source: str) -> dict:
    return _record(row["prompt"], row["response"], source,
                   is_safe=row["is_safe"], category=_true_categories(row["category"]))


# ----------------------------------------------------------------------------- pools

def _harmful_pools(source, cfg: DataConfig, pools: dict, stats: dict) -> set[str]:
    """30k_test halves and the 330k split; returns every normalized harmful/30k prompt."""
    ds30 = DATASETS["beavertails_30k_test"].path
    rows30 = source.read("beavertails_30k_test")
    order = seeded_order((r["prompt"] for r in rows30), cfg.seed, "30k_test")
    eval_prompts = set(order[: math.ceil(len(order) / 2)])
    pools["eval_half"] = [_beavertails_record(r, ds30) for r in rows30 if normalize_prompt(r["prompt"]) in eval_prompts]
    pools["judge_half"] = [_beavertails_record(r, ds30) for r in rows30 if normalize_prompt(r["prompt"]) not in eval_prompts]

    harmful: dict[str, dict] = {}  # norm -> record, in file order of the first unsafe row
    for r in rows30:
        norm = normalize_prompt(r["prompt"])
        if norm in eval_prompts and not r["is_safe"]:
            if norm not in harmful:
                harmful[norm] = {"rec": _record(r["prompt"], None, ds30), "cat": {}}
            for name, flag in r["category"].items():  # union of categories over unsafe rows
                harmful[norm]["cat"][name] = harmful[norm]["cat"].get(name, False) or flag
    pools["eval_harmful_prompts"] = [{**h["rec"], "category": _true_categories(h["cat"])} for h in harmful.values()]
    stats["30k_test_unique_prompts"] = len(order)

    # 330k: one record per unique unsafe prompt outside 30k_test.
    in_30k = set(order)
    first: dict[str, tuple[dict, str]] = {}
    dropped_30k: set[str] = set()
    for name in ("beavertails_330k_a", "beavertails_330k_b", "beavertails_330k_c"):
        path = DATASETS[name].path
        for r in source.read(name):
            if r["is_safe"]:
                continue
            norm = normalize_prompt(r["prompt"])
            if norm in in_30k:
                dropped_30k.add(norm)
            elif norm not in first:
                first[norm] = (r, path)
    order330 = seeded_order(first, cfg.seed, "330k")
    need = cfg.n_validation + cfg.n_attacker
    if len(order330) <= need:
        raise BoosterError(
            f"the BeaverTails 330k subsets have {len(order330)} unique unsafe prompts outside 30k_test; "
            f"n_validation ({cfg.n_validation}) + n_attacker ({cfg.n_attacker}) = {need} leaves none for "
            f"provider_harmful (lower n_validation or n_attacker)"
        )
    validation = set(order330[: cfg.n_validation])
    attacker = set(order330[cfg.n_validation: need])
    pools["validation_prompts"], pools["attacker_harmful"], pools["provider_harmful"] = [], [], []
    for norm, (r, path) in first.items():
        if norm in validation:
            pools["validation_prompts"].append(
                _record(r["prompt"], None, path, category=_true_categories(r["category"])))
        else:
            pools["attacker_harmful" if norm in attacker else "provider_harmful"].append(_beavertails_record(r, path))
    stats["330k_unique_unsafe_prompts_outside_30k_test"] = len(order330)
    stats["330k_unsafe_prompts_dropped_in_30k_test"] = len(dropped_30k)
    return in_30k | set(first)


def _alignment_pool(source, harmful: set[str], pools: dict, stats: dict) -> None:
    stl = DATASETS["safety_tuned_llamas"].path
    candidates = []
    for r in source.read("safety_tuned_llamas"):
        prompt = r["instruction"].strip()
        if r["input"].strip():
            prompt += "\n\n" + r["input"].strip()
        candidates.append(_record(prompt, r["output"], stl, is_safe=True))
    for r in source.read("beavertails_330k_a"):
        if r["is_safe"]:
            candidates.append(_beavertails_record(r, DATASETS["beavertails_330k_a"].path))
    seen: set[str] = set()
    overlap = duplicate = 0
    pools["alignment"] = []
    for rec in candidates:
        norm = normalize_prompt(rec["messages"][0]["content"])
        if norm in harmful:
            overlap += 1
        elif norm in seen:
            duplicate += 1
        else:
            seen.add(norm)
            pools["alignment"].append(rec)
    stats["alignment_dropped_overlap"] = overlap
    stats["alignment_dropped_duplicate"] = duplicate


def _task_pools(source, cfg: DataConfig, pools: dict) -> None:
    for pool, name in (("sst2_train", "sst2_train"), ("sst2_eval", "sst2_dev")):
        path, pools[pool] = DATASETS[name].path, []
        for r in source.read(name):
            if r["label"] not in (0, 1):
                raise DataError(path, f"SST-2 label must be 0 or 1, got {r['label']}")
            label = tasks.SST2_LABELS[r["label"]]
            pools[pool].append(_record(tasks.sst2_prompt(r["sentence"]), label, path, label=label))

    classes = [r["name"] for r in source.read("ag_news_classes")]
    path = DATASETS["ag_news_test"].path
    rows = source.read("ag_news_test")
    texts = [tasks.agnews_text(r["title"], r["description"]) for r in rows]
    eval_keys: set[str] = set()
    for cls in range(1, len(classes) + 1):
        order = seeded_order((t for t, r in zip(texts, rows) if r["class"] == cls), cfg.seed, "ag_news")
        if len(order) <= cfg.n_agnews_eval_per_class:
            raise BoosterError(
                f"{path}: class {classes[cls - 1]!r} has {len(order)} unique texts; "
                f"n_agnews_eval_per_class ({cfg.n_agnews_eval_per_class}) leaves none for agnews_train"
            )
        eval_keys.update(order[: cfg.n_agnews_eval_per_class])
    pools["agnews_train"], pools["agnews_eval"] = [], []
    for text, r in zip(texts, rows):
        if not 1 <= r["class"] <= len(classes):
            raise DataError(path, f"class must be 1-{len(classes)}, got {r['class']}")
        label = classes[r["class"] - 1]
        rec = _record(tasks.agnews_prompt(text, classes), label, path, label=label)
        pools["agnews_eval" if normalize_prompt(text) in eval_keys else "agnews_train"].append(rec)

    for pool, name in (("gsm8k_train", "gsm8k_train"), ("gsm8k_eval", "gsm8k_test")):
        path, pools[pool] = DATASETS[name].path, []
        for r in source.read(name):
            label = tasks.gsm8k_final_answer(r["answer"])
            if label is None:
                raise DataError(path, f"answer has no final '#### <number>': {r['question'][:60]!r}")
            pools[pool].append(_record(tasks.gsm8k_prompt(r["question"]), r["answer"], path, label=label))

    path = DATASETS["alpaca_eval"].path
    pools["alpaca_eval"] = [_record(r["instruction"], r["output"], path, dataset=r["dataset"], generator=r["generator"])
                            for r in source.read("alpaca_eval")]
    path = DATASETS["harmless_test"].path
    pools["benign_instructions"] = [_record(r["instruction"], None, path) for r in source.read("harmless_test")]
    path = DATASETS["harmless_val"].path
    pools["benign_validation"] = [_record(r["instruction"], None, path) for r in source.read("harmless_val")]
    path = DATASETS["advbench"].path
    pools["advbench_prompts"] = [_record(r["goal"], None, path, target=r["target"]) for r in source.read("advbench")]


# ----------------------------------------------------------------------------- API

def unique_prompts(records: list[dict]) -> set[str]:
    """Normalized first user turns of ``records``."""
    return {normalize_prompt(r["messages"][0]["content"]) for r in records}


def build_pools(source: LocalSource | HubSource, config: DataConfig | None = None,
                progress: Callable[[str], None] | None = None) -> tuple[dict[str, list[dict]], dict]:
    """All pools in memory (name → records) and the statistics the manifest records."""
    cfg = config or DataConfig()
    pools: dict[str, list[dict]] = {}
    stats: dict = {}
    step = progress or (lambda _name: None)
    step("harmful pools")
    harmful = _harmful_pools(source, cfg, pools, stats)
    step("alignment")
    _alignment_pool(source, harmful, pools, stats)
    step("benign tasks")
    _task_pools(source, cfg, pools)
    # Guard the protocol's invariant here too: a user folder with unexpected content must
    # never silently produce overlapping pools.
    seen: dict[str, str] = {}
    for name in DISJOINT_POOLS:
        for norm in unique_prompts(pools[name]):
            if norm in seen:  # pragma: no cover - impossible by construction
                raise AssertionError(f"prompt in both {seen[norm]} and {name}: {norm[:60]!r}")
            seen[norm] = name
    return {name: pools[name] for name in POOL_NAMES}, stats


def prepare(source: LocalSource | HubSource | str | Path, out_dir: str | Path,
            config: DataConfig | None = None, progress: Callable[[str], None] | None = None) -> dict:
    """Build every pool from ``source`` and write them plus ``manifest.json`` under ``out_dir``."""
    cfg = config or DataConfig()
    out_dir = Path(out_dir)
    check_out_dir(out_dir)  # before minutes of building pools that could not be written
    if isinstance(source, (str, Path)):
        source = LocalSource(source)
    pools, stats = build_pools(source, cfg, progress)
    manifest = {
        "format_version": FORMAT_VERSION,
        "booster_version": booster.__version__,
        "seed": cfg.seed,
        "config": to_dict(cfg),
        "source": source.provenance(),
        "p_definition": P_DEFINITION,
        "split_rules": SPLIT_RULES,
        "stats": stats,
        "pools": {},
    }
    # Manifest temp file outside, pools folder inside: both are renamed into place only after
    # every pool has been written.
    with atomic_path(out_dir / MANIFEST) as manifest_tmp:
        with atomic_dir(out_dir / POOLS_DIR) as pools_tmp:
            for name, records in pools.items():
                text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
                (pools_tmp / f"{name}.jsonl").write_text(text, encoding="utf-8")
                manifest["pools"][name] = {
                    "path": f"{POOLS_DIR}/{name}.jsonl",
                    "count": len(records),
                    "unique_prompts": len(unique_prompts(records)),
                    "sha256": sha256_text(text),
                    "role": POOL_ROLES[name],
                }
            manifest_tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest


def check_out_dir(out_dir: str | Path) -> None:
    """Refuse an output folder that cannot be one: the path, a folder above it, or the
    pools folder / manifest inside it is of the wrong kind (BoosterError naming the path)."""
    out_dir = Path(out_dir)
    check_folder_path(out_dir, out_dir)
    if (out_dir / POOLS_DIR).exists() and not (out_dir / POOLS_DIR).is_dir():
        raise BoosterError(f"{out_dir / POOLS_DIR} exists and is a file (prepare writes its pools folder there)")
    if (out_dir / MANIFEST).is_dir():
        raise BoosterError(f"{out_dir / MANIFEST} is a folder (prepare writes its manifest file there)")


def check_folder_path(folder: Path, out: Path) -> None:
    """``folder`` exists or can be created, and can be written into: no file, symlink loop or
    read-only folder on the way. ``out`` is the ``--out`` value the message names."""
    failed = None  # (path, error) of the last path that could not be looked at
    for path in (folder, *folder.parents):
        try:
            mode = os.stat(path).st_mode
        except OSError as e:
            failed = (path, e)
            continue
        if not stat.S_ISDIR(mode):
            where = "--out must be a folder" if path == out else f"a folder above --out {out}"
            raise BoosterError(f"{path} exists and is a file ({where})")
        if failed is not None and failed[1].errno != errno.ENOENT:  # ENOENT: created later
            bad, e = failed
            problem = SYMLINK_LOOP if e.errno == errno.ELOOP else f"cannot be used: {e.strerror or e}"
            raise BoosterError(f"{bad} {problem} (--out {out})")
        if not os.access(path, os.W_OK | os.X_OK):  # the first existing folder gets the new files
            raise BoosterError(f"cannot write into {path}: permission denied (--out {out})")
        return


def _hint(out_dir: Path) -> str:
    return f"run 'booster data prepare --out {out_dir}' first"


def load_manifest(out_dir: str | Path) -> dict:
    out_dir = Path(out_dir)
    path = out_dir / MANIFEST
    if not path.is_file():
        raise BoosterError(f"{path}: no prepared data (manifest missing); {_hint(out_dir)}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(path, f"not a valid manifest ({e}); {_hint(out_dir)}") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise DataError(path, f"unsupported manifest format (expected format_version {FORMAT_VERSION}); {_hint(out_dir)}")
    return manifest


def load_pool(out_dir: str | Path, name: str, verify: bool = True) -> list[dict]:
    """Records of pool ``name``; checks the file against the manifest's sha256."""
    out_dir = Path(out_dir)
    manifest = load_manifest(out_dir)
    entry = manifest["pools"].get(name)
    if entry is None:
        raise BoosterError(f"{out_dir}: no pool {name!r} (pools: {', '.join(manifest['pools'])})")
    path = out_dir / entry["path"]
    if not path.is_file():
        raise BoosterError(f"{path}: pool file missing; {_hint(out_dir)}")
    if verify and sha256_file(path) != entry["sha256"]:
        raise BoosterError(f"{path}: pool file changed since it was prepared (sha256 differs); {_hint(out_dir)}")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def pool_table(manifest: dict) -> str:
    """The compact summary ``booster data prepare`` prints."""
    rows = [("pool", "records", "prompts", "role")]
    rows += [(n, str(e["count"]), str(e["unique_prompts"]), e["role"]) for n, e in manifest["pools"].items()]
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{a:<{w[0]}}  {b:>{w[1]}}  {c:>{w[2]}}  {d}" for a, b, c, d in rows)


class TimedProgress:
    """Progress callback that shows a tqdm bar only once preparation has been slow (the local
    folder takes about two seconds; the hub can take minutes)."""

    def __init__(self, threshold_s: float = 2.0, total: int = 3):
        self.start, self.threshold_s, self.total, self.bar = time.monotonic(), threshold_s, total, None
        self.done = 0

    def __call__(self, name: str) -> None:
        if self.bar is None and time.monotonic() - self.start > self.threshold_s:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=self.done, desc="data prepare", unit="step", leave=False)
        if self.bar is not None:
            self.bar.set_postfix_str(name)
            self.bar.update(1)
        self.done += 1

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
