"""``booster bench ...``: speed measurements recorded in BENCHMARKS.md."""

from __future__ import annotations

import json
from pathlib import Path


def _ints(text: str) -> list[int]:
    from booster.errors import BoosterError

    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise BoosterError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise BoosterError(f"expected positive integers, got {text!r}")
    return values


def register(sub) -> None:
    bench = sub.add_parser("bench", help="speed benchmarks (results go to BENCHMARKS.md)")
    bsub = bench.add_subparsers(dest="bench_command", metavar="BENCHMARK")
    bsub.required = True
    g = bsub.add_parser("generation", help="generated tokens/s at several batch sizes")
    g.add_argument("--model", default="smollm2-135m-instruct")
    g.add_argument("--data", default="work/data")
    g.add_argument("--prompts", type=int, default=32)
    g.add_argument("--pool", default="validation_prompts", choices=["validation_prompts", "benign_validation"],
                   help="validation_prompts (harmful: long answers) or benign_validation (answer lengths vary)")
    g.add_argument("--max-new-tokens", type=int, default=64)
    g.add_argument("--batch-sizes", default="1,8,32")
    g.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    g.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    g.add_argument("--out", help="write the result JSON here too")
    g.set_defaults(func=_generation)

    s = bsub.add_parser("step", help="wall time of a step of each defense the table gives passes for (Booster) against SFT, FLOP/s share of peak")
    s.add_argument("--model", default="smollm2-135m-instruct")
    s.add_argument("--data", default="work/data")
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--length", type=int, default=128, help="tokens per example (padded to exactly this)")
    s.add_argument("--steps", type=int, default=5, help="timed steps per method (median reported)")
    s.add_argument("--dtype", choices=["float32", "bfloat16"], default="bfloat16")
    s.add_argument("--mixed-precision", choices=["no", "bf16"], default="bf16")
    s.add_argument("--lora-rank", type=int, default=8)
    s.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    s.add_argument("--out", help="write the result JSON here too")
    s.set_defaults(func=_step)

    b = bsub.add_parser("bf16", help="one training step in float32, in bf16 with float32 products, and in "
                                     "PyTorch's bf16 kernels: time and gradient distance")
    b.add_argument("--model", default="smollm2-135m-instruct")
    b.add_argument("--data", default="work/data")
    b.add_argument("--batch-size", type=int, default=2)
    b.add_argument("--length", type=int, default=64, help="tokens per example at most")
    b.add_argument("--steps", type=int, default=2, help="timed steps per mode (median reported)")
    b.add_argument("--lora-rank", type=int, default=8)
    b.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    b.add_argument("--out", help="write the result JSON here too")
    b.set_defaults(func=_bf16)

    j = bsub.add_parser("judge", help="seconds to score answers of our own models, per judge")
    j.add_argument("--judges", default="answer-judge,minilm-judge", help="comma-separated judge names or folders")
    j.add_argument("--n", type=int, default=300, help="answers to score (hand-labeled calibration/test answers)")
    j.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    j.add_argument("--out", help="write the result JSON here too")
    j.set_defaults(func=_judge)

    m = bsub.add_parser("methods", help="per-method stage cost (wall time, peak memory) against SFT, "
                                        "under an experiment config's settings")
    m.add_argument("config", help="experiment YAML (or a shipped preset's name) whose model, LoRA, training and method settings are used")
    m.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. threads=1")
    m.add_argument("--methods", help="comma-separated methods (default: every alignment- and fine-tuning-stage "
                                     "defense of booster.methods.registry; SFT of each stage is always the reference)")
    m.add_argument("--steps", type=int, default=4, help="timed optimizer steps per method (after one warm-up)")
    m.add_argument("--out", help="write the result JSON here too")
    m.set_defaults(func=_methods)

    c = bsub.add_parser("cli", help="start-up wall time and peak memory of `booster --help` and `data check`")
    c.add_argument("--runs", type=int, default=7, help="runs per command (median reported)")
    c.add_argument("--out", help="write the result JSON here too")
    c.set_defaults(func=_cli)


def _cli(args) -> int:
    from booster import io
    from booster.bench.startup import bench_cli, format_table
    from booster.errors import BoosterError

    if args.runs < 1:
        raise BoosterError(f"--runs must be at least 1, got {args.runs}")
    result = bench_cli(args.runs)
    print(format_table(result))
    if args.out:
        io.write_json(args.out, result)
    return 0


def _judge(args) -> int:
    from booster import io
    from booster.bench.judge import main_judge
    from booster.errors import BoosterError

    if args.n < 1:
        raise BoosterError(f"--n must be >= 1, got {args.n}")
    result = main_judge([j for j in args.judges.split(",") if j.strip()], args.n, args.threads)
    for row in result["rows"]:
        print(json.dumps(row))
    if args.out:
        io.write_json(args.out, result)
    return 0


def _generation(args) -> int:
    from booster import io
    from booster.bench.generation import main_generation

    result = main_generation(args.model, Path(args.data), args.prompts, args.max_new_tokens,
                             _ints(args.batch_sizes), args.dtype, args.threads, args.pool)
    for row in result["rows"]:
        print(json.dumps(row))
    if args.out:
        io.write_json(args.out, result)
    return 0


def _step(args) -> int:
    from booster import io
    from booster.bench.step import bench_step

    for name in ("batch_size", "length", "steps", "lora_rank"):
        _ints(str(getattr(args, name)))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    result = bench_step(args.model, Path(args.data), args.batch_size, args.length, args.steps, args.dtype,
                        args.mixed_precision, args.lora_rank)
    summary = {k: v for k, v in result.items() if k not in ("protocol", "model")}
    print(json.dumps(summary, indent=2))
    if args.out:
        io.write_json(args.out, result)
    return 0


def _bf16(args) -> int:
    from booster import io
    from booster.bench.bf16 import bench_bf16

    for name in ("batch_size", "length", "steps", "lora_rank"):
        _ints(str(getattr(args, name)))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    result = bench_bf16(args.model, Path(args.data), args.batch_size, args.length, args.steps, args.lora_rank)
    for mode, row in result["results"].items():
        print(json.dumps({"mode": mode, **row}))
    if args.out:
        io.write_json(args.out, result)
    return 0


def _methods(args) -> int:
    from booster import io
    from booster.bench.methods import bench_methods
    from booster.config import load_config
    from booster.errors import BoosterError
    from booster.methods import registry
    from booster.paths import config_path
    from booster.pipeline.config import ExperimentConfig
    from booster.pipeline.grid import ensure_data

    _ints(str(args.steps))
    trainable = registry.names("align") + registry.names("finetune")  # a repair has no training step to time
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods is not None else trainable
    unknown = [m for m in methods if m not in trainable]
    if unknown or not methods:
        raise BoosterError(f"--methods: unknown method {unknown[0] if unknown else '(none)'!r} "
                           f"(choose from {', '.join(trainable)})")
    cfg = load_config(ExperimentConfig, config_path(args.config), args.overrides)
    ensure_data(cfg)
    result = bench_methods(cfg, methods, args.steps)
    for row in result["rows"]:
        print(json.dumps(row))
    if args.out:
        io.write_json(args.out, result)
    return 0
