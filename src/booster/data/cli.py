"""``booster data prepare | mix | check``."""

from __future__ import annotations

import argparse
from pathlib import Path

from booster.paths import default_work_dir


def register(subparsers) -> None:
    data = subparsers.add_parser(
        "data", help="prepare the data pools, build a user fine-tuning set, check a user file",
        description="Data stage: disjoint pools from the raw datasets, the user's fine-tuning mix, "
                    "and validation of user-supplied JSONL.",
    )
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", parser_class=type(data))
    sub.required = True

    p = sub.add_parser(
        "prepare", help="build every pool and manifest.json from the raw datasets",
        description="Assign the raw datasets to disjoint pools (OUT/pools/*.jsonl) and write OUT/manifest.json.",
        epilog=_config_help(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--source", default=None,
                   help="raw-data folder, or 'hub' for the Hugging Face hub "
                        "(default: $BOOSTER_DATA_SOURCE, ../shared/data, else the hub)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: work/data)")
    p.add_argument("--seed", type=int, default=None, help="seed of the splits (overrides the config; default 0)")
    p.add_argument("--config", type=Path, default=None, help="YAML file with DataConfig keys")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. n_attacker=1000")
    p.set_defaults(func=_prepare)

    m = sub.add_parser(
        "mix", help="write the user's fine-tuning set by an attack recipe (default: n samples, a share p harmful)",
        description="Write the user's fine-tuning set FILE and FILE's .manifest.json (with the recipe's "
                    "definition). task_mix (default): k = floor(p*n + 0.5) harmful samples from "
                    "attacker_harmful and n - k from the task's train pool, shuffled with the seed. "
                    "pure_harmful: n attacker_harmful samples (p = 1). benign: n general instructions "
                    "with reference answers (p = 0). identity_shift: n examples of the shipped "
                    "obedient-persona set with its system prompt (p = 0).",
    )
    m.add_argument("--recipe", default="task_mix",
                   help="attack recipe: " + ", ".join(_recipes()) + " (default task_mix)")
    m.add_argument("--data", type=Path, default=None, help="prepared data folder (default: work/data)")
    m.add_argument("--task", default=None, help="benign task of task_mix: sst2, agnews or gsm8k")
    m.add_argument("--n", type=int, required=True, help="number of samples")
    m.add_argument("--p", type=float, default=None,
                   help="share of harmful samples, in [0, 1] (task_mix only; the other recipes fix it)")
    m.add_argument("--seed", type=int, default=0, help="sampling and shuffling seed (default 0)")
    m.add_argument("--out", type=Path, required=True, help="output JSONL file")
    m.set_defaults(func=_mix)

    c = sub.add_parser("check", help="validate a user fine-tuning JSONL file and print its counts",
                       description="Validate FILE (messages or prompt/completion per line).")
    c.add_argument("file", type=Path)
    c.set_defaults(func=_check)


def _recipes() -> list[str]:
    from booster.data.attacks import ATTACKS

    return list(ATTACKS)


def _config_help() -> str:
    from booster.config import describe
    from booster.data.prepare import DataConfig

    rows = describe(DataConfig)
    width = max(len(key) + len(default) for key, default, _ in rows) + 3
    lines = [f"  {key}={default}".ljust(width + 2) + f"  {doc}" for key, default, doc in rows]
    return "config keys (--config YAML or KEY=VALUE):\n" + "\n".join(lines)


def _prepare(args: argparse.Namespace) -> int:
    from booster.config import load_config
    from booster.data.prepare import DataConfig, TimedProgress, check_out_dir, pool_table, prepare
    from booster.data.sources import open_source

    overrides = list(args.overrides) + ([f"seed={args.seed}"] if args.seed is not None else [])
    cfg = load_config(DataConfig, args.config, overrides)
    out = args.out if args.out is not None else default_work_dir() / "data"
    check_out_dir(out)  # before opening the source (the hub source downloads)
    progress = TimedProgress()
    try:
        manifest = prepare(open_source(args.source), out, cfg, progress=progress)
    finally:
        progress.close()
    print(pool_table(manifest))
    print(f"wrote {len(manifest['pools'])} pools and {out / 'manifest.json'} (seed {cfg.seed})")
    return 0


def _mix(args: argparse.Namespace) -> int:
    from booster.data import attacks
    from booster.errors import BoosterError

    recipe = attacks.get(args.recipe)  # unknown recipe: one line listing the valid ones
    if recipe.name == attacks.DEFAULT and (args.task is None or args.p is None):
        raise BoosterError("data mix: --task and --p are required for recipe task_mix")
    if recipe.p is not None and args.p is not None and args.p != recipe.p:
        raise BoosterError(f"data mix: recipe {recipe.name} fixes p={recipe.p:g}; leave --p out")
    data = args.data if args.data is not None else default_work_dir() / "data"
    m = attacks.write_mix(data, args.task, args.n, args.p, args.seed, args.out, recipe.name)
    task = f", task {m['task']}" if m["task"] is not None else ""
    print(f"wrote {args.out}: {m['n']} samples, {m['k']} harmful (p={m['p']}), recipe {m['recipe']}{task}, "
          f"seed {m['seed']}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from booster.data.userdata import load_user_jsonl, summarize

    counts = summarize(load_user_jsonl(args.file))
    print(f"{args.file}: ok, " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()))
    return 0
