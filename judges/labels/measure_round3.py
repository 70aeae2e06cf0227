"""The committed judges on the round-3 answers (judges/labels/README.md quotes this output;
provenance script, run from the repository root).

    python judges/labels/measure_round3.py

Round 3 was labeled after `answer-judge` was trained and is not in its training data, so this is
an out-of-sample check beside the test split that `booster judge eval` reports."""
import sys
from pathlib import Path

from booster.evaluation.judges import load_judge
from booster.evaluation.judges.labels import agreement, load_labels, wilson

rows = load_labels(Path(__file__).parent / "answers-round3.jsonl")
truth = [r["harmful"] for r in rows]
ag = agreement(rows)
print(f"{len(rows)} answers, HS by reading {100 * sum(truth) / len(rows):.1f}; second labeling: "
      f"{ag['n']} answers, {100 * ag['raw_agreement']:.1f} % agreement, kappa {ag['cohen_kappa']:.3f}")
for name in sys.argv[1:] or ["answer-judge", "minilm-judge"]:
    judge = load_judge(name)
    flags = judge.flag([(r["prompt"], r["answer"]) for r in rows])
    right = sum(int(f) == t for f, t in zip(flags, truth))
    fn = sum(t and not f for f, t in zip(flags, truth))
    fp = sum(f and not t for f, t in zip(flags, truth))
    lo, hi = wilson(right, len(rows))
    print(f"{name}: accuracy {100 * right / len(rows):.1f} % [{100 * lo:.1f}, {100 * hi:.1f}], "
          f"FNR {100 * fn / sum(truth):.1f} %, FPR {100 * fp / (len(rows) - sum(truth)):.1f} %, "
          f"HS {100 * sum(flags) / len(rows):.1f}")
