"""Round 6: the issue-14 grid's evaluation answers, labeled by reading (provenance script).

    python judges/labels/grid_labels.py pool WORK_DIR PREFIX SEED RUN[:K]...   # blind shares to label
    python judges/labels/grid_labels.py build WORK_DIR   # -> judges/labels/answers-grid.jsonl
    python judges/labels/grid_labels.py measure          # -> results/cpu-smollm2-paper-protocol/hand-scores.json
                                                         #    and hs_by_reading.png

RUN is a run folder of the grid (``results/cpu-smollm2-paper-protocol/runs/RUN``); ``RUN:K`` pools
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

PRESET = REPO / "results" / "cpu-smollm2-paper-protocol"
LABELS = HERE / "answers-grid.jsonl"
SAMPLE_SEED = 5  # the one order of prompt indices every partial labeling takes its first K from
# Pools here are about 500 answers: six first labelers (one share each) and two second ones, each
# taking a fifth of every first share again.
FIRST_SHARES, SECOND_SHARES = 6, 2


def _answers(run: str) -> list[dict]:
    path = PRESET / "runs" / run / "samples-hs.jsonl"
    if not path.is_file():
        raise SystemExit(f"run {run!r}: no {path.relative_to(REPO)}")
    return io.read_jsonl(path)


def sample_order(n: int) -> list[int]:
    order = list(range(n))
    random.Random(SAMPLE_SEED).shuffle(order)
    return order


def make_pool(work: Path, prefix: str, seed: int, runs: list[str]) -> None:
    pool = []
    for spec in runs:
        run, _, k = spec.partition(":")
        answers = _answers(run)
        picked = sample_order(len(answers))[: int(k)] if k else range(len(answers))
        for i in sorted(picked):
            r = answers[i]
            pool.append({"prompt": r["prompt"], "answer": r["answer"],
                         "origin": {"round": 6, "run": run, "index": i, "task": "hs", "stage": "after_attack"}})
    rng = random.Random(seed)
    rng.shuffle(pool)
    write_shares(work, prefix, pool, rng, FIRST_SHARES, SECOND_SHARES)


def _row(run: str) -> dict:
    """The run's method, p and seed (from its folder name) and the judge's HS over all its answers
    (its ``metrics.json``, written as the cell finishes)."""
    method, task, n, p, seed = run.rsplit("-", 4)
    metrics = json.loads((PRESET / "runs" / run / "metrics.json").read_text(encoding="utf-8"))
    return {"method": method, "p": float(p.removeprefix("p")), "seed": int(seed.removeprefix("seed")),
            "hs": metrics["hs"]["hs"]}


def measure() -> dict:
    rows = load_labels(LABELS)
    by_run: dict[str, dict[int, dict]] = {}
    for r in rows:
        by_run.setdefault(r["origin"]["run"], {})[r["origin"]["index"]] = r
    judge_sha = json.loads((PRESET / "protocol.json").read_text(encoding="utf-8"))["judge"]["sha256"]
    result: dict = {"labels": str(LABELS.relative_to(REPO)), "sample_seed": SAMPLE_SEED,
                    "second_labeling": agreement(rows), "runs": {}}
    for run, labeled in sorted(by_run.items()):
        answers = _answers(run)
        idx = sorted(labeled)
        for i in idx:  # the labels belong to these very answers
            if answers[i]["answer"] != labeled[i]["answer"]:
                raise SystemExit(f"{run}: answer {i} differs from the labeled one")
        hand = [labeled[i]["harmful"] for i in idx]
        judge = [int(answers[i]["harmful"]) for i in idx]
        row = _row(run)
        scores = reading_scores(hand, judge, [labeled[i]["category"] for i in idx])
        result["runs"][run] = {
            "method": row["method"], "p": row["p"], "seed": row["seed"], "labeled": len(hand), "of": len(answers),
            "hs_by_reading": scores["hs_by_reading"], "hs_by_reading_95ci": scores["hs_by_reading_95ci"],
            "hs_by_judge_same_answers": scores["hs_by_judge"], "hs_by_judge_all": row["hs"],
            **{k: scores[k] for k in ("judge_accuracy", "judge_fnr", "judge_fpr", "categories")},
            "judge_sha256": judge_sha,
        }
    # Every labeled run against SFT at the same p and seed, on the prompts both have labeled.
    gaps = {}
    for run, rec in result["runs"].items():
        ref = f"sft-sst2-n500-p{rec['p']}-seed{rec['seed']}"
        if rec["method"] == "sft" or ref not in by_run:
            continue
        common = sorted(set(by_run[run]) & set(by_run[ref]))
        a = [by_run[ref][i]["harmful"] for i in common]
        b = [by_run[run][i]["harmful"] for i in common]
        gaps[f"{run} - {ref}"] = {"prompts": len(common),
                                  "by_reading": round(100 * (sum(b) - sum(a)) / len(common), 1),
                                  "by_reading_95ci": _bootstrap_gap(a, b)}
    result["gaps_same_prompts"] = gaps
    # Over seeds: a method against SFT at the same p, on the prompts every seed of both labeled,
    # the prompts resampled together with all their seeds (one prompt's answers are not independent).
    pooled = {}
    cells: dict[tuple[str, float], dict[int, str]] = {}
    for run, rec in result["runs"].items():
        cells.setdefault((rec["method"], rec["p"]), {})[rec["seed"]] = run
    for (method, p), seeds in cells.items():
        ref = cells.get(("sft", p), {})
        both = sorted(set(seeds) & set(ref))
        if method == "sft" or len(both) < 2:
            continue
        common = sorted(set.intersection(*(set(by_run[seeds[s]]) & set(by_run[ref[s]]) for s in both)))
        a = [sum(by_run[ref[s]][i]["harmful"] for s in both) for i in common]
        b = [sum(by_run[seeds[s]][i]["harmful"] for s in both) for i in common]
        lo, hi = _bootstrap_gap(a, b)
        k = len(both)
        pooled[f"{method} - sft, p={p}"] = {
            "seeds": both, "prompts": len(common), "sft_by_reading": round(100 * sum(a) / (k * len(common)), 1),
            "by_reading": round(100 * sum(b) / (k * len(common)), 1),
            "gap": round(100 * (sum(b) - sum(a)) / (k * len(common)), 1), "gap_95ci": [round(lo / k, 1), round(hi / k, 1)]}
    result["gaps_over_seeds"] = pooled
    # Every run on the prompts that all labeled runs share (the first K of the sample order), so
    # that runs labeled in full compare with runs labeled in part on the very same prompts.
    common = set.intersection(*(set(v) for v in by_run.values()))
    result["common_prompts"] = {"prompts": len(common), "hs_by_reading": {
        run: round(100 * sum(by_run[run][i]["harmful"] for i in common) / len(common), 1) for run in sorted(by_run)}}
    io.write_json(PRESET / "hand-scores.json", result)
    plot(result["runs"], PRESET / "hs_by_reading.png")
    print(json.dumps(result, indent=1))
    return result


def plot(runs: dict, path: Path) -> None:
    """Each labeled run's HS by reading (95 % interval) beside the judge's HS on all its answers."""
    plt = pyplot()
    names = sorted(runs, key=lambda r: (runs[r]["method"] != "sft", runs[r]["method"], runs[r]["p"], runs[r]["seed"]))
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
    ax.set_xticklabels([f"{runs[r]['method']}\np={runs[r]['p']} s{runs[r]['seed']}\n({runs[r]['labeled']})"
                        for r in names], fontsize=7)
    ax.set_ylabel("harmful score (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Issue-14 grid: harmful score by reading and by the judge", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


if __name__ == "__main__":
    if len(sys.argv) >= 6 and sys.argv[1] == "pool":
        make_pool(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5:])
    elif len(sys.argv) == 3 and sys.argv[1] == "build":
        build_into(Path(sys.argv[2]), LABELS, "grid")
    elif sys.argv[1:] == ["measure"]:
        measure()
    else:
        raise SystemExit(__doc__)
