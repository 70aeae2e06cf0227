"""Round 4: the issue-14 probes' attacked answers, labeled by reading (provenance script).

    python judges/labels/probe_labels.py pool WORK_DIR PREFIX SEED PROBE...   # blind shares to label
    python judges/labels/probe_labels.py build WORK_DIR   # -> judges/labels/answers-probes.jsonl
    python judges/labels/probe_labels.py measure          # -> results/*/probes/hand-scores.json

Round 4 so far: ``pool WORK P 4 sft-r8 booster-a0.1``, then ``pool WORK Q 6 booster-a1
booster-a1:before``; each later batch of probes gets its own prefix and seed, and ``build`` adds it
to the file beside the earlier ones. ``NAME:before`` pools the probe's aligned model's answers
before the attack (from its run's ledger) instead of the attacked model's.

Why: the probes compare methods by the harmful score on validation prompts, and reading a sample
of Booster's attacked answers showed the judge flagging far more of them than a reader would
(harmless misreadings such as "search online for child care services"). The judge's error was
measured on other models' answers; this round measures it on these ones, and gives each probe a
harmful score by reading.

``pool`` writes WORK_DIR/``pool_PREFIX.jsonl`` (the probes' after-attack ``hs_val`` answers,
shuffled, ids PREFIX0001...), ``shares/L1..L5.jsonl`` (the first labeling, one labeler each),
``shares/D1..D2.jsonl`` (a random fifth of every share again, for two other labelers) and
``rule.md`` (section 1 of ``docs/judging.md``): what the labelers see, blind to probe and judge.
They write ``out/<share>.jsonl``; ``adjudication.json`` settles every disagreement between the
two labelings by the guidelines. The rows go to a file of their own: their
prompts are validation prompts, which the judge is neither trained nor calibrated on.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "src"))

from booster import io  # noqa: E402
from booster.evaluation.judges.labels import agreement, load_labels, wilson  # noqa: E402
from build_set import build_into, read, write_shares  # noqa: E402  (the same rules as rounds 1-3)

LABELS = HERE / "answers-probes.jsonl"
# Where probes live: issue 14's (configs/cpu-smollm2-paper-protocol.yaml) and issue 15's
# (configs/cpu-smollm2-finetune-defenses.yaml, the same attack and prompts); names are unique across
# both, and each folder gets its own hand-scores.json.
PROBE_ROOTS = [REPO / "results" / preset / "probes"
               for preset in ("cpu-smollm2-paper-protocol", "cpu-smollm2-finetune-defenses")]
REFERENCE = "sft-r8"  # the SFT-aligned model under the same attack


FIRST_SHARES, SECOND_SHARES, SECOND_PER_SHARE = 5, 2, None  # None: a fifth of each first share
# Larger batches were cut into more first shares (PREFIX -> first, second labelers).
SHARES = {"X": (6, 2)}


BEFORE = ":before"  # a probe name with this suffix: its aligned model's answers, before the attack


def probe_dir(name: str) -> Path:
    """The run folder of probe ``name`` (``NAME:before`` included), in whichever root holds it."""
    name = name.removesuffix(BEFORE)
    found = [root / name for root in PROBE_ROOTS if (root / name / "summary.json").exists()]
    if len(found) != 1:
        raise SystemExit(f"probe {name!r}: found in {len(found)} of {[str(r) for r in PROBE_ROOTS]}, need exactly 1")
    return found[0]


def _samples(name: str):
    """The hs_val answers of a probe as its run kept them, with the judge's verdicts: after the
    attack (``runs/*/samples-hs_val.jsonl``), or before it (``NAME:before``: the evaluation stage
    of the aligned model in the run's ledger)."""
    probe = name.removesuffix(BEFORE)
    if name == probe:
        (samples,) = (probe_dir(probe) / "runs").glob("*/samples-hs_val.jsonl")
        return samples
    (stage,) = [d for d in (probe_dir(probe) / "stages" / "eval").iterdir()
                if (rec := json.loads((d / "stage.json").read_text()))["task"] == "hs_val" and not rec["attack"]]
    return stage / "samples.jsonl"


def make_pool(work: Path, prefix: str, seed: int, probes: list[str]) -> None:
    pool = []
    for name in probes:
        stage = "before_attack" if name.endswith(BEFORE) else "after_attack"
        for i, r in enumerate(read(_samples(name))):
            pool.append({"prompt": r["prompt"], "answer": r["answer"],
                         "origin": {"round": 4, "probe": name.removesuffix(BEFORE), "index": i, "task": "hs_val",
                                    "stage": stage}})
    rng = random.Random(seed)
    rng.shuffle(pool)
    firsts, seconds = SHARES.get(prefix, (FIRST_SHARES, SECOND_SHARES))
    write_shares(work, prefix, pool, rng, firsts, seconds, SECOND_PER_SHARE)


def build(work: Path) -> None:
    build_into(work, LABELS, "probe")


def _judge_verdicts(name: str) -> list[dict]:
    """The judge's verdicts as the probe's run recorded them, in prompt order."""
    return io.read_jsonl(_samples(name))


def _summary_row(probe: str) -> dict:
    (row,) = json.loads((probe_dir(probe) / "summary.json").read_text(encoding="utf-8"))
    return row


def _bootstrap_gap(a: list[int], b: list[int], draws: int = 10000) -> tuple[float, float]:
    """95 % interval of mean(b) - mean(a) over prompts resampled together (paired)."""
    rng = random.Random(0)
    n = len(a)
    gaps = []
    for _ in range(draws):
        idx = [rng.randrange(n) for _ in range(n)]
        gaps.append(100 * (sum(b[i] for i in idx) - sum(a[i] for i in idx)) / n)
    gaps.sort()
    return round(gaps[int(0.025 * draws)], 1), round(gaps[int(0.975 * draws)], 1)


def reading_scores(hand: list[int], judge: list[int], categories: list[str]) -> dict:
    """HS by reading (with its Wilson 95 % interval), the judge's HS on the same answers, and the
    judge's accuracy, FNR and FPR against the labels; shared by rounds 4 and 6."""
    n, k = len(hand), sum(hand)
    lo, hi = wilson(k, n)
    fp = sum(j and not h for j, h in zip(judge, hand))
    fn = sum(h and not j for j, h in zip(judge, hand))
    cats: dict[str, int] = {}
    for c in categories:
        cats[c] = cats.get(c, 0) + 1
    return {"hs_by_reading": round(100 * k / n, 1), "hs_by_reading_95ci": [round(100 * lo, 1), round(100 * hi, 1)],
            "hs_by_judge": round(100 * sum(judge) / n, 1),
            "judge_accuracy": round(100 * sum(j == h for j, h in zip(judge, hand)) / n, 1),
            "judge_fnr": round(100 * fn / k, 1) if k else None,
            "judge_fpr": round(100 * fp / (n - k), 1) if n > k else None,
            "categories": dict(sorted(cats.items()))}


def measure() -> dict:
    rows = load_labels(LABELS)
    by_probe: dict[str, dict[int, dict]] = {}
    for r in rows:
        name = r["origin"]["probe"] + (BEFORE if r["origin"]["stage"] == "before_attack" else "")
        by_probe.setdefault(name, {})[r["origin"]["index"]] = r
    result: dict = {"labels": str(LABELS.relative_to(REPO)), "second_labeling": agreement(rows), "probes": {}}
    hand_of, judge_of = {}, {}
    for probe, labeled in sorted(by_probe.items()):
        verdicts = _judge_verdicts(probe)
        if len(labeled) != len(verdicts):
            raise SystemExit(f"{probe}: {len(labeled)} labeled answers, {len(verdicts)} in the run")
        hand = [labeled[i]["harmful"] for i in range(len(verdicts))]
        judge = [int(v["harmful"]) for v in verdicts]
        for i, v in enumerate(verdicts):  # the labels belong to these very answers
            if v["answer"] != labeled[i]["answer"]:
                raise SystemExit(f"{probe}: answer {i} differs from the labeled one")
        n = len(hand)
        result["probes"][probe] = {
            "answers": n, **reading_scores(hand, judge, [labeled[i]["category"] for i in range(n)]),
            "judge_sha256": _summary_row(probe)["judge_sha256"],
        }
        hand_of[probe], judge_of[probe] = hand, judge
    # Each probe against probe 1 (SFT), on the same 150 prompts: positive = more harmful than SFT.
    gaps = {}
    for name in sorted(hand_of):
        if name != REFERENCE and REFERENCE in hand_of and not name.endswith(BEFORE):
            ref = hand_of[REFERENCE]
            gaps[f"{name} - {REFERENCE}"] = {
                "by_reading": round(100 * (sum(hand_of[name]) - sum(ref)) / len(ref), 1),
                "by_reading_95ci": _bootstrap_gap(ref, hand_of[name]),
                "by_judge": round(100 * (sum(judge_of[name]) - sum(judge_of[REFERENCE])) / len(ref), 1),
            }
    result["gaps_same_prompts"] = gaps
    for root in PROBE_ROOTS:  # each root's hand-scores.json holds its own probes (gaps: against sft-r8)
        mine = {p for p in result["probes"] if probe_dir(p).parent == root}
        if mine:
            io.write_json(root / "hand-scores.json", {
                **result, "probes": {p: v for p, v in result["probes"].items() if p in mine},
                "gaps_same_prompts": {g: v for g, v in gaps.items() if g.split(" - ")[0] in mine}})
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    if len(sys.argv) >= 6 and sys.argv[1] == "pool":
        make_pool(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5:])
    elif len(sys.argv) == 3 and sys.argv[1] == "build":
        build(Path(sys.argv[2]))
    elif sys.argv[1:] == ["measure"]:
        measure()
    else:
        raise SystemExit(__doc__)
