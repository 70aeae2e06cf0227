"""``booster eval``: evaluate a model (and adapter) on harmful-score and accuracy tasks."""

from __future__ import annotations

import json
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a model: harmful score, fine-tune accuracy, over-refusal",
                       description="Generate greedy answers and score them; writes a run folder "
                                   "(metrics.json, samples/TASK.jsonl, protocol.json).")
    p.add_argument("--model", help="short name, local folder or hub id (required unless --rescore)")
    p.add_argument("--rescore", metavar="RUN_DIR",
                   help="judge the saved answers of an earlier `booster eval` run folder again (with --judge)")
    p.add_argument("--adapter", help="LoRA adapter folder (safetensors) to apply")
    p.add_argument("--tasks", default="hs,sst2", help="comma-separated: hs,hs_val,advbench,sst2,agnews,gsm8k,over_refusal")
    p.add_argument("--data", default="work/data", help="prepared data folder (default: work/data)")
    p.add_argument("--judge", default="answer-judge",
                   help="moderation judge: answer-judge (default), minilm-judge (the first, for comparison), a judge folder, an HF id, or none (score later with --rescore)")
    p.add_argument("--limit", type=int, help="prompts per task (default: the task's own)")
    p.add_argument("--max-new-tokens", type=int, default=128, help="new tokens per answer of hs/hs_val/advbench/over_refusal (default 128; paper 512); "
                        "sst2 and agnews use 8, gsm8k 256")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--device", help="where the model generates and the judge scores: cpu, cuda, cuda:1, ... "
                                    "(default: cuda when a GPU is visible, else cpu)")
    p.add_argument("--out", help="run folder (default: work/eval/<model>)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from booster.config import from_dict
    from booster.errors import BoosterError
    from booster.evaluation.harness import EvalConfig, rescore, run_eval

    if args.rescore:
        if args.judge == "none":
            raise BoosterError("--rescore needs a judge (--judge minilm, a folder or an HF id)")
        result = rescore(Path(args.rescore), args.judge)
        print(json.dumps(result["summary"], indent=2))
        print(f"rescored: {args.rescore}")
        return 0
    if not args.model:
        raise BoosterError("booster eval: --model is required (or --rescore RUN_DIR)")
    if args.limit is not None and args.limit < 1:
        raise BoosterError(f"--limit must be >= 1, got {args.limit}")
    if args.max_new_tokens < 1 or args.batch_size < 1:
        raise BoosterError("--max-new-tokens and --batch-size must be >= 1")
    if args.adapter is not None:  # a bad adapter folder fails now, not after minutes of loading
        from booster.models.adapters import check_adapter_folder

        check_adapter_folder(Path(args.adapter))
    cfg = from_dict(EvalConfig, {k: getattr(args, k) for k in (
        "model", "adapter", "tasks", "data", "judge", "limit", "max_new_tokens", "batch_size", "dtype",
        "device")})
    out = Path(args.out) if args.out else Path("work/eval") / Path(args.model).name
    result = run_eval(cfg, out, progress=not args.no_progress)
    print(json.dumps(result["summary"], indent=2))
    print(f"run folder: {out}")
    return 0
