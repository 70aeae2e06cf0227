"""``booster judge train | eval``: the moderation judge behind the harmful score.

    booster judge train [--data DIR] [--out DIR]     # reproduces judges/answer-judge (see its judge.json for the time)
    booster judge eval  [--data DIR] [--judge NAME]  # hand-labeled test split, suites, eval half (docs/judging.md)
"""

from __future__ import annotations

import json
from pathlib import Path


def register(subparsers) -> None:
    judge = subparsers.add_parser(
        "judge", help="train or evaluate the moderation judge of the harmful score",
        description="The harmful score is the share of answers to harmful prompts that a moderation "
                    "judge flags. 'train' reproduces the committed CPU judge; 'eval' measures a judge on "
                    "hand-labeled answers of this project's models, behavioural suites and the BeaverTails "
                    "eval half, beside beaver-dam-7b's published error rates.",
    )
    sub = judge.add_subparsers(dest="judge_command", metavar="SUBCOMMAND", parser_class=type(judge))
    sub.required = True

    t = sub.add_parser("train", help="train the MiniLM judge (LoRA + head) and calibrate its threshold",
                       description="Start from the first judge (judges/minilm-judge), train on the judge's "
                                   "data (judge_half, provider_harmful, alignment, benign answers, SafeRLHF, "
                                   "counterfactual safe answers, the train split of judges/labels; never "
                                   "eval_half, attacker_harmful or validation prompts), calibrate the "
                                   "threshold on the calibration split of judges/labels, and write "
                                   "OUT/judge.safetensors + OUT/judge.json.")
    t.add_argument("--data", type=Path, default=None, help="prepared data folder (default: work/data)")
    t.add_argument("--source", type=Path, default=None,
                   help="raw-data folder with saferlhf/safe_rlhf_2000.jsonl (default: $BOOSTER_DATA_SOURCE "
                        "or ../shared/data)")
    t.add_argument("--out", type=Path, default=None, help="judge folder to write (default: work/judge/answer-judge)")
    t.add_argument("--epochs", type=float, default=None, help="passes over the weighted mixture (default 1)")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    t.add_argument("--extra-labels", type=Path, action="append", default=[], metavar="FILE",
                   help="another hand-labeled JSONL file whose train rows are trained on too (repeatable; "
                        "e.g. judges/labels/answers-round3.jsonl)")
    t.add_argument("--no-progress", action="store_true", help="hide progress bars")
    t.set_defaults(func=_train)

    e = sub.add_parser("eval", help="error on hand-labeled answers, behavioural suites, eval-half metrics",
                       description="Score the test split of the hand-labeled answers (judges/labels), a suite "
                                   "of degenerate answers and one of unseen refusal wordings under the "
                                   "harmful-score prompts, the attacker's held-out harmful answers and the eval "
                                   "half of BeaverTails 30k_test; none of them is used for training or selection.")
    e.add_argument("--data", type=Path, default=None, help="prepared data folder (default: work/data)")
    e.add_argument("--judge", default="answer-judge",
                   help="'answer-judge' (committed default), 'minilm-judge' (the first judge), a judge folder, or a hub id "
                        "(PKU-Alignment/beaver-dam-7b, a Llama Guard id)")
    e.add_argument("--out", type=Path, default=None,
                   help="JSON file for the results (default: work/judge/eval-<judge name>.json)")
    e.add_argument("--no-progress", action="store_true", help="hide progress bars")
    e.set_defaults(func=_eval)


def _data_dir(arg: Path | None) -> Path:
    from booster.data import load_manifest
    from booster.paths import default_work_dir

    data = arg if arg is not None else default_work_dir() / "data"
    load_manifest(data)  # one-line error with a hint when the folder is not prepared
    return data


def _train(args) -> int:
    from booster.errors import BoosterError
    from booster.evaluation.judges.labels import require_labels
    from booster.paths import default_work_dir

    require_labels("train")
    data = _data_dir(args.data)
    if args.epochs is not None and not args.epochs > 0:
        raise BoosterError(f"--epochs must be > 0, got {args.epochs}")
    if args.threads is not None and args.threads < 1:
        raise BoosterError(f"--threads must be >= 1, got {args.threads}")
    if args.source is not None and not args.source.is_dir():
        raise BoosterError(f"--source {args.source}: folder does not exist")
    out = args.out if args.out is not None else default_work_dir() / "judge" / "answer-judge"

    import torch

    from booster.evaluation.judges.train import default_train_config, train_judge

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = default_train_config()
    if args.epochs is not None:
        cfg.epochs = args.epochs
    for f in args.extra_labels:  # read now: a bad file fails before any training
        from booster.evaluation.judges.labels import load_labels

        load_labels(f)
    record = train_judge(data, out, args.source, cfg, progress=not args.no_progress,
                         extra_labels=args.extra_labels)
    v = record["validation"]["calibration"]
    print(json.dumps({"out": str(out), "sha256": record["sha256"], "threshold": record["threshold"],
                      "calibration_accuracy": v["accuracy"], "calibration_fnr": v["fnr"],
                      "calibration_fpr": v["fpr"], "train_seconds": record["training"]["train_seconds"]}, indent=2))
    if "evaluation" in record:
        from booster.evaluation.judges.train import format_report

        print(format_report({"judge": {"name": record["name"], "sha256": record["sha256"]}, **record["evaluation"]}))
    return 0


def _eval(args) -> int:
    from booster import io
    from booster.evaluation.judges.labels import require_labels
    from booster.paths import default_work_dir

    require_labels("eval")
    data = _data_dir(args.data)

    from booster.evaluation.judges import load_judge
    from booster.evaluation.judges.train import evaluate_judge, format_report

    judge = load_judge(args.judge, progress=not args.no_progress)
    res = evaluate_judge(judge, data)
    name = str(res["judge"].get("name", "judge")).replace("/", "--")
    out = args.out if args.out is not None else default_work_dir() / "judge" / f"eval-{name}.json"
    io.write_json(out, res)
    print(format_report(res))
    print(f"wrote {out}")
    return 0
