"""Rounds 6 and 7: a grid's evaluation answers, labeled by reading (provenance script).

    python judges/labels/grid_labels.py [--round R] pool WORK_DIR PREFIX SEED RUN[:K]...   # blind shares
    python judges/labels/grid_labels.py [--round R] build WORK_DIR   # -> the round's labels file
    python judges/labels/grid_labels.py [--round R] measure          # -> the preset's hand-scores.json
                                                                     #    and hs_by_reading.png

Round 6 (the default) is the issue-14 grid, ``results/cpu-smollm2-paper-protocol``, labeled into
``answers-grid.jsonl``; round 7 the issue-15 grid, ``results/cpu-smollm2-finetune-defenses``,
labeled into ``answers-grid-defenses.jsonl`` (``GRIDS``). The two grids share their SFT and Lisa
cells through the stage cache, so round 7's measure also counts round 6's labels of a run with the
same name, after checking that every one of those answers is the very answer round 7's run kept.

RUN is a run folder of the grid (``results/<preset>/runs/RUN``); ``RUN:K`` pools
K of its harmful-prompt answers instead of all of them. The K are the first K of one fixed seeded
order of the prompt indices (``SAMPLE_SEED``), the same for every run, so that any two runs
labeled with K answers each share their first min(K, K') prompts and compare paired.

Why: the grid's rows are scored by the default judge, whose error on this model's attacked
answers was measured at 70-78 % accuracy in round 4 (mostly false alarms on harmless or
nonsensical answers), too large to read a few points' difference between methods from it. The
labels give each labeled run a harmful score by reading and measure the judge on its very answers.
The shares, rules and adjudication are those of rounds 1-5 (``build_set.py``); the rows go to a
file of their own, since their prompts are the evaluation prompts no judge trains on.
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(HERE))

from booster import io  # noqa: E402
from booster.evaluation.judges.labels import agreement, load_labels  # noqa: E402
from booster.report.summary import pyplot, save_png  # noqa: E402
from build_set import build_into, write_shares  # noqa: E402
from probe_labels import _bootstrap_gap, reading_scores  # noqa: E402

GRIDS = {
    6: {"preset": "cpu-smollm2-paper-protocol", "labels": "answers-grid.jsonl", "title": "Issue-14 grid"},
    7: {"preset": "cpu-smollm2-finetune-defenses", "labels": "answers-grid-defenses.jsonl",
        "title": "Issue-15 grid"},
}
SAMPLE_SEED = 5  # the one order of prompt indices every partial labeling takes its first K from
# Pools here are about 500 answers: six first labelers (one share each) and two second ones, each
# taking a fifth of every first share again.
FIRST_SHARES, SECOND_SHARES = 6, 2
RUN_NAME = re.compile(r"^(?P<method>.+)-(?P<task>[^-]+)-n(?P<n>\d+)-p(?P<p>[\d.]+)-seed(?P<seed>\d+)(?:-(?P<recipe>.+))?$")


def preset_dir(round_: int = 6) -> Path:
    return REPO / "results" / GRIDS[round_]["preset"]


def labels_file(round_: int = 6) -> Path:
    return HERE / GRIDS[round_]["labels"]


PRESET, LABELS = preset_dir(6), labels_file(6)  # round 6's, as the tests and docs name them


def _answers(run: str, round_: int = 6) -> list[dict]:
    path = preset_dir(round_) / "runs" / run / "samples-hs.jsonl"
    if not path.is_file():
        raise SystemExit(f"run {run!r}: no {path.relative_to(REPO)}")
    return io.read_jsonl(path)


def sample_order(n: int) -> list[int]:
    order = list(range(n))
    random.Random(SAMPLE_SEED).shuffle(order)
    return order


def make_pool(work: Path, prefix: str, seed: int, runs: list[str], round_: int = 6) -> None:
    pool = []
    for spec in runs:
        run, _, k = spec.partition(":")
        answers = _answers(run, round_)
        picked = sample_order(len(answers))[: int(k)] if k else range(len(answers))
        for i in sorted(picked):
            r = answers[i]
            pool.append({"prompt": r["prompt"], "answer": r["answer"],
                         "origin": {"round": round_, "run": run, "index": i, "task": "hs", "stage": "after_attack"}})
    rng = random.Random(seed)
    rng.shuffle(pool)
    write_shares(work, prefix, pool, rng, FIRST_SHARES, SECOND_SHARES)


def _row(run: str, round_: int = 6) -> dict:
    """The run's method, recipe, p and seed (from its folder name) and the judge's HS over all its
    answers (its ``metrics.json``, written as the cell finishes)."""
    m = RUN_NAME.match(run)
    if m is None:
        raise SystemExit(f"run {run!r}: not a grid run name (method-task-nN-pP-seedS[-recipe])")
    metrics = json.loads((preset_dir(round_) / "runs" / run / "metrics.json").read_text(encoding="utf-8"))
    return {"method": m["method"], "recipe": m["recipe"] or "task_mix", "p": float(m["p"]), "seed": int(m["seed"]),
            "hs": metrics["hs"]["hs"]}


def _labeled_rows(round_: int) -> tuple[list[dict], dict]:
    """The round's labels, and for round 7 also round 6's labels of the runs the two grids share
    (identical answers, checked in ``measure``). One label per distinct answer across the rounds:
    a round-7 answer identical to a round-6 one takes round 6's settled label (counted)."""
    rows = load_labels(labels_file(round_)) if labels_file(round_).is_file() else []
    settled = {"identical_to_round_6": 0, "harmful_differed": [], "category_differed": []}
    if round_ == 7:
        earlier = load_labels(labels_file(6))
        by_answer = {(r["prompt"], r["answer"]): r for r in earlier}
        for r in rows:
            twin = by_answer.get((r["prompt"], r["answer"]))
            if twin is not None:
                settled["identical_to_round_6"] += 1
                if twin["harmful"] != r["harmful"]:
                    settled["harmful_differed"].append(f"{r['id']}={twin['id']}")
                elif twin["category"] != r["category"]:
                    settled["category_differed"].append(f"{r['id']}={twin['id']}")
                r.update(harmful=twin["harmful"], category=twin["category"])
        runs = {p.name for p in (preset_dir(7) / "runs").iterdir()}
        rows += [r for r in earlier if r["origin"]["run"] in runs]
    return rows, settled


def measure(round_: int = 6) -> dict:
    rows, settled = _labeled_rows(round_)
    preset = preset_dir(round_)
    by_run: dict[str, dict[int, dict]] = {}
    for r in rows:
        by_run.setdefault(r["origin"]["run"], {})[r["origin"]["index"]] = r
    judge_sha = json.loads((preset / "protocol.json").read_text(encoding="utf-8"))["judge"]["sha256"]
    own = [r for r in rows if r["origin"]["round"] == round_]
    result: dict = {"labels": str(labels_file(round_).relative_to(REPO)), "sample_seed": SAMPLE_SEED,
                    "second_labeling": agreement(own), "runs": {}}
    if round_ != 6:
        result["one_label_per_answer"] = settled
    if len(own) < len(rows):
        result["shared_labels"] = {"from": str(labels_file(6).relative_to(REPO)), "answers": len(rows) - len(own),
                                   "runs": sorted({r["origin"]["run"] for r in rows if r["origin"]["round"] != round_})}
    for run, labeled in sorted(by_run.items()):
        answers = _answers(run, round_)
        idx = sorted(labeled)
        for i in idx:  # the labels belong to these very answers
            if answers[i]["answer"] != labeled[i]["answer"]:
                raise SystemExit(f"{run}: answer {i} differs from the labeled one")
        hand = [labeled[i]["harmful"] for i in idx]
        judge = [int(answers[i]["harmful"]) for i in idx]
        row = _row(run, round_)
        scores = reading_scores(hand, judge, [labeled[i]["category"] for i in idx])
        result["runs"][run] = {
            "method": row["method"], "recipe": row["recipe"], "p": row["p"], "seed": row["seed"], "labeled": len(hand), "of": len(answers),
            "hs_by_reading": scores["hs_by_reading"], "hs_by_reading_95ci": scores["hs_by_reading_95ci"],
            "hs_by_judge_same_answers": scores["hs_by_judge"], "hs_by_judge_all": row["hs"],
            **{k: scores[k] for k in ("judge_accuracy", "judge_fnr", "judge_fpr", "categories")},
            "judge_sha256": judge_sha,
        }
    # Every labeled run against SFT at the same p and seed, on the prompts both have labeled.
    gaps = {}
    for run, rec in result["runs"].items():
        m = RUN_NAME.match(run)
        ref = f"sft-{m['task']}-n{m['n']}-p{m['p']}-seed{m['seed']}" + (f"-{m['recipe']}" if m["recipe"] else "")
        if rec["method"] == "sft" or ref not in by_run:
            continue
        common = sorted(set(by_run[run]) & set(by_run[ref]))
        a = [by_run[ref][i]["harmful"] for i in common]
        b = [by_run[run][i]["harmful"] for i in common]
        gaps[f"{run} - {ref}"] = {"prompts": len(common),
                                  "hs_by_reading": round(100 * sum(b) / len(common), 1),
                                  "sft_by_reading": round(100 * sum(a) / len(common), 1),
                                  "by_reading": round(100 * (sum(b) - sum(a)) / len(common), 1),
                                  "by_reading_95ci": _bootstrap_gap(a, b)}
    result["gaps_same_prompts"] = gaps
    # Over seeds: a method against SFT at the same p, on the prompts every seed of both labeled,
    # the prompts resampled together with all their seeds (one prompt's answers are not independent).
    pooled = {}
    cells: dict[tuple[str, str, float], dict[int, str]] = {}
    for run, rec in result["runs"].items():
        cells.setdefault((rec["method"], rec["recipe"], rec["p"]), {})[rec["seed"]] = run
    for (method, recipe, p), seeds in cells.items():
        ref = cells.get(("sft", recipe, p), {})
        both = sorted(set(seeds) & set(ref))
        if method == "sft" or len(both) < 2:
            continue
        common = sorted(set.intersection(*(set(by_run[seeds[s]]) & set(by_run[ref[s]]) for s in both)))
        a = [sum(by_run[ref[s]][i]["harmful"] for s in both) for i in common]
        b = [sum(by_run[seeds[s]][i]["harmful"] for s in both) for i in common]
        lo, hi = _bootstrap_gap(a, b)
        k = len(both)
        pooled[f"{method} - sft, p={p}" + ("" if recipe == "task_mix" else f", {recipe}")] = {
            "seeds": both, "prompts": len(common), "sft_by_reading": round(100 * sum(a) / (k * len(common)), 1),
            "by_reading": round(100 * sum(b) / (k * len(common)), 1),
            "gap": round(100 * (sum(b) - sum(a)) / (k * len(common)), 1), "gap_95ci": [round(lo / k, 1), round(hi / k, 1)]}
    result["gaps_over_seeds"] = pooled
    # Every run on the prompts that all labeled runs share (the first K of the sample order), so
    # that runs labeled in full compare with runs labeled in part on the very same prompts.
    common = set.intersection(*(set(v) for v in by_run.values()))
    result["common_prompts"] = {"prompts": len(common), "hs_by_reading": {
        run: round(100 * sum(by_run[run][i]["harmful"] for i in common) / len(common), 1) for run in sorted(by_run)}}
    io.write_json(preset / "hand-scores.json", result)
    plot(result["runs"], preset / "hs_by_reading.png", GRIDS[round_]["title"])
    print(json.dumps(result, indent=1))
    return result


def plot(runs: dict, path: Path, title: str = GRIDS[6]["title"]) -> None:
    """Each labeled run's HS by reading (95 % interval) beside the judge's HS on all its answers."""
    plt = pyplot()
    names = sorted(runs, key=lambda r: (runs[r].get("recipe", "task_mix"), runs[r]["method"] != "sft", runs[r]["method"],
                                        runs[r]["p"], runs[r]["seed"]))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(names) + 2), 4.0))
    x = range(len(names))
    hs = [runs[r]["hs_by_reading"] for r in names]
    lo = [h - runs[r]["hs_by_reading_95ci"][0] for h, r in zip(hs, names)]
    hi = [runs[r]["hs_by_reading_95ci"][1] - h for h, r in zip(hs, names)]
    ax.bar(x, hs, color="tab:blue", alpha=0.75, label="by reading (labeled answers, 95 % CI)")
    ax.errorbar(x, hs, yerr=[lo, hi], fmt="none", ecolor="black", capsize=3, lw=1)
    ax.scatter(x, [runs[r]["hs_by_judge_all"] for r in names], color="tab:red", marker="_", s=250, zorder=3,
               label="by the judge (all answers)")
    ax.set_xticks(list(x))
    ax.set_xticklabels([f"{runs[r]['method']}\np={runs[r]['p']} s{runs[r]['seed']}"
                        + ("" if runs[r].get("recipe", "task_mix") == "task_mix" else f"\n{runs[r]['recipe']}")
                        + f"\n({runs[r]['labeled']})" for r in names], fontsize=7)
    ax.set_ylabel("harmful score (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{title}: harmful score by reading and by the judge", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


if __name__ == "__main__":
    args = sys.argv[1:]
    round_ = 6
    if args[:1] == ["--round"] and len(args) >= 2:
        if not args[1].isdigit() or int(args[1]) not in GRIDS:
            raise SystemExit(f"--round: one of {sorted(GRIDS)}")
        round_, args = int(args[1]), args[2:]
    if len(args) >= 5 and args[0] == "pool":
        make_pool(Path(args[1]), args[2], int(args[3]), args[4:], round_)
    elif len(args) == 2 and args[0] == "build":
        build_into(Path(args[1]), labels_file(round_), "grid" if round_ == 6 else "grid-defenses")
    elif args == ["measure"]:
        measure(round_)
    else:
        raise SystemExit(__doc__)
