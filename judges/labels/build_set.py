"""Assemble judges/labels/answers.jsonl from the labeling work folder (provenance script).

    python judges/labels/build_set.py WORK_DIR

WORK_DIR holds what the labeling produced:
  pool_E.jsonl   answers sampled from the committed runs' ledger (sample_committed.py)
  pool_T.jsonl   SmolLM2 answers to judge_half and AdvBench prompts (generate_train.py, round 1)
  pool_T2.jsonl  SmolLM2 answers to more judge_half and to provider_harmful prompts (round 2)
  pool_A.jsonl   answers of an attacked model to training-side prompts (generate_attacked.py, round 3)
  out/E*.jsonl, out/T*.jsonl, out/U*.jsonl, out/A*.jsonl   first labeling, one labeler per file
  out/D*.jsonl   second, independent labeling of a random sample (other labelers)
and judges/labels/adjudication.json settles every disagreement by the guidelines.

Rounds 1 and 2 and the committed-run answers go to answers.jsonl, which the committed judge was
trained, calibrated and measured on. Round 3 goes to answers-round3.jsonl (all `train` split):
labeled after that judge was trained, it is kept apart so that `booster judge train` still
reproduces the committed judge, until a judge is trained on it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))

from booster import io  # noqa: E402
from booster.data import normalize_prompt, seeded_order  # noqa: E402
from booster.evaluation.judges.labels import CATEGORIES, TEST_SALT, split_of  # noqa: E402


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def labelings(work: Path, pool: dict) -> tuple[dict[str, dict], dict[str, dict], dict]:
    """The first and second labelings of ``work/out`` (``D*.jsonl`` files are second), checked,
    and the adjudication decisions; every pooled answer must have a first label."""
    first: dict[str, dict] = {}
    second: dict[str, dict] = {}
    for f in sorted((work / "out").glob("*.jsonl")):
        target = second if f.name.startswith("D") else first
        for r in read(f):
            if r["category"] not in CATEGORIES or r["harmful"] != CATEGORIES[r["category"]]:
                raise SystemExit(f"{f}: inconsistent label {r}")
            if r["id"] in target:
                raise SystemExit(f"{f}: id {r['id']} labeled twice in one pass")
            target[r["id"]] = {"labeler": f.stem, "harmful": int(r["harmful"]), "category": r["category"],
                               "borderline": bool(r.get("borderline"))}
    missing = set(pool) - set(first)
    if missing:
        raise SystemExit(f"{len(missing)} pooled answers have no first label")
    decisions = json.loads((HERE / "adjudication.json").read_text(encoding="utf-8"))["decisions"]
    return first, second, decisions


def write_shares(work: Path, prefix: str, pool: list[dict], rng, firsts: int, seconds: int,
                 second_per_share: int | None = None) -> dict[str, list[dict]]:
    """Blind labeling shares of ``pool`` (already shuffled; ids given here, PREFIX0001...):
    ``L1..`` cut it into ``firsts`` consecutive shares (the first labeling, one labeler each),
    ``D1..`` hold a random ``second_per_share`` (default a fifth) of every first share again,
    for ``seconds`` other labelers. Writes ``work/pool_PREFIX.jsonl`` (with provenance),
    ``work/shares/*.jsonl`` (id, prompt, answer only) and ``work/rule.md`` (section 1 of
    docs/judging.md), and makes ``work/out`` for the labelers' files."""
    for k, r in enumerate(pool):
        r["id"] = f"{prefix}{k + 1:04d}"
    (work / "shares").mkdir(parents=True, exist_ok=True)
    (work / "out").mkdir(exist_ok=True)
    (work / f"pool_{prefix}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in pool),
                                              encoding="utf-8")
    size = -(-len(pool) // firsts)
    first = [pool[s * size:(s + 1) * size] for s in range(firsts)]
    second = []
    for share in first:
        picked = sorted(rng.sample(range(len(share)), second_per_share or len(share) // 5))
        second += [share[i] for i in picked]
    rng.shuffle(second)
    half = -(-len(second) // seconds)
    shares = {f"L{s + 1}": first[s] for s in range(firsts)}
    shares.update({f"D{s + 1}": second[s * half:(s + 1) * half] for s in range(seconds)})
    for name, rows in shares.items():
        (work / "shares" / f"{name}.jsonl").write_text(
            "".join(json.dumps({k: r[k] for k in ("id", "prompt", "answer")}, ensure_ascii=False) + "\n"
                    for r in rows), encoding="utf-8")
    rule = (HERE.parents[1] / "docs" / "judging.md").read_text(encoding="utf-8")
    (work / "rule.md").write_text(rule[:rule.index("## 2.")], encoding="utf-8")
    print(f"{len(pool)} answers: shares {', '.join(f'{k} ({len(v)})' for k, v in shares.items())} in {work}")
    return shares


def final_label(iid: str, first: dict, second: dict, decisions: dict) -> dict:
    """One answer's labels and its final label: the first labeling's, or the adjudicated decision
    where the two labelings disagree, or where a decision marked ``against_precedent`` found a
    once-labeled answer decided against an earlier adjudication of the same case."""
    labels = [first[iid]] + ([second[iid]] if iid in second else [])
    final, adjudicated = dict(labels[0]), False
    if iid in decisions and decisions[iid].get("against_precedent"):
        final = {**final, **{k: decisions[iid][k] for k in ("harmful", "category")}}
        adjudicated = True
    elif len(labels) == 2 and labels[0]["harmful"] != labels[1]["harmful"]:
        if iid not in decisions:
            raise SystemExit(f"disagreement on {iid} without an adjudication decision")
        final = {**final, **{k: decisions[iid][k] for k in ("harmful", "category")}}
        adjudicated = True
    return {"harmful": final["harmful"], "category": final["category"],
            "borderline": any(x["borderline"] for x in labels) or adjudicated,
            "labels": labels, "adjudicated": adjudicated}


def build_into(work: Path, out: Path, source: str) -> None:
    """Label rows of a later round (one ``pool_*.jsonl`` in ``work``) written to ``out``, beside
    the rows of earlier batches already there (matched by id), with one label per distinct answer
    (``settle_duplicates``). Every row is split ``train`` by the split rule (no harmful-score
    prompt of the judge's test); no judge trains on these files."""
    (pool_file,) = work.glob("pool_*.jsonl")
    pool = {r["id"]: r for r in read(pool_file)}
    first, second, decisions = labelings(work, pool)
    rows = []
    for iid, r in pool.items():
        label = final_label(iid, first, second, decisions)
        rows.append({"id": iid, "prompt": r["prompt"], "answer": r["answer"], "source": source,
                     "origin": r["origin"], "harmful": label["harmful"], "category": label["category"],
                     "borderline": label["borderline"], "split": "train", "labels": label["labels"],
                     "adjudicated": label["adjudicated"]})
    earlier = [r for r in (read(out) if out.is_file() else []) if r["id"] not in pool]
    rows = settle_duplicates(sorted(earlier + rows, key=lambda x: x["id"]))
    io.write_text(out, "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows))
    print(f"wrote {len(rows)} rows to {out}")


def settle_duplicates(rows: list[dict]) -> list[dict]:
    """One label per distinct (prompt, answer): runs and probes share prompts and often give the
    very same answer, which different labelers may label both ways. Every id of such a group must
    be settled in ``adjudication.json``, as a disagreement between two labelings is; the decision
    replaces the labels of the whole group (so that two runs never differ by a labeler)."""
    decisions = json.loads((HERE / "adjudication.json").read_text(encoding="utf-8"))["decisions"]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["prompt"], r["answer"]), []).append(r)
    for group in groups.values():
        if len({r["harmful"] for r in group}) < 2:
            continue  # one label already (a single answer's two labelings are settled by final_label)
        # a group is settled by the decision on any of its ids (answers labeled in a later batch
        # join a settled group without a decision of their own); decisions within a group agree
        settled = {(decisions[r["id"]]["harmful"], decisions[r["id"]]["category"]) for r in group if r["id"] in decisions}
        if len(settled) != 1:
            raise SystemExit(f"identical answers labeled both ways: {[r['id'] for r in group]}; "
                             + ("settle one of them" if not settled else "their decisions differ")
                             + " in adjudication.json")
        ((harmful, category),) = settled
        for r in group:
            r.update(harmful=harmful, category=category, adjudicated=True, borderline=True)
    return rows


def main(work: Path) -> None:
    pool = {r["id"]: r for f in sorted(work.glob("pool_*.jsonl")) for r in read(f)}
    first, second, decisions = labelings(work, pool)
    committed = [r["prompt"] for r in pool.values() if r["source"] == "committed_run"]
    order = seeded_order(committed, 0, TEST_SALT)
    test_prompts = set(order[: len(order) // 2])
    rows = []
    for iid, r in pool.items():
        label = final_label(iid, first, second, decisions)
        rows.append({"id": iid, "prompt": r["prompt"], "answer": r["answer"], "source": r["source"],
                     "origin": r["origin"], "harmful": label["harmful"], "category": label["category"],
                     "borderline": label["borderline"],
                     "split": split_of(normalize_prompt(r["prompt"]), test_prompts, r["source"]),
                     "labels": label["labels"], "adjudicated": label["adjudicated"]})
    rows.sort(key=lambda x: (x["split"], x["id"]))
    for name, keep in (("answers.jsonl", lambda x: x["origin"].get("round") != 3),
                       ("answers-round3.jsonl", lambda x: x["origin"].get("round") == 3)):
        part = [x for x in rows if keep(x)]
        out = HERE / name
        out.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in part), encoding="utf-8")
        print(f"wrote {len(part)} rows to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
