"""The ``booster`` command.

Each stage package contributes its subcommands through a ``register(subparsers)`` function in
its ``cli`` module; heavy imports (torch, transformers) happen inside the handlers so that
``booster --help`` and input validation stay fast.

Errors caused by the user's input are printed as one line, ``booster: error: ...``, with exit
code 2 (see :mod:`booster.errors`).

The command works offline: it sets the Hugging Face libraries' offline switches before any of
them is imported, unless the user opts in with ``BOOSTER_ONLINE=1``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from booster import __version__
from booster.errors import EXIT_USAGE, BoosterError

# Stage packages that add subcommands, in the order ``booster --help`` lists them.
COMMAND_MODULES = [
    "booster.data.cli",
    "booster.models.cli",
    "booster.evaluation.cli",
    "booster.evaluation.judges.cli",
    "booster.pipeline.cli",
    "booster.bench.cli",
]


# Read by huggingface_hub, transformers and datasets once, when they are imported.
OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
ONLINE_VAR = "BOOSTER_ONLINE"

EPILOG = (f"Offline by default: models and datasets come from local files and the local Hugging Face "
          f"cache only. Set {ONLINE_VAR}=1 to let booster download from the hub.")


def offline_by_default(environ=os.environ) -> None:
    """Switch the hub libraries offline, unless ``BOOSTER_ONLINE=1`` or the user set them.

    A command that would download (an unknown model name, the raw datasets) then fails at once
    with a one-line error instead of trying the network."""
    if environ.get(ONLINE_VAR, "").strip().lower() in {"1", "true", "yes", "on"}:
        return
    for var in OFFLINE_VARS:
        environ.setdefault(var, "1")


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2 like every other input error."""

    def error(self, message: str):  # noqa: D102 - argparse API
        raise BoosterError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="booster",
        description="Defend LLMs against harmful fine-tuning: prepare data, align, attack, evaluate.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"booster {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:  # a real import error inside the module
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    offline_by_default()
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        # argparse cannot take positionals after an option (`run CONFIG --check K=V`): commands
        # with an ``overrides`` list collect the KEY=VALUE words it left over.
        if extra and hasattr(args, "overrides") and all("=" in w and not w.startswith("-") for w in extra):
            args.overrides = [*(args.overrides or []), *extra]
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return int(args.func(args) or 0)
    except BoosterError as e:
        # a file name with undecodable bytes must not turn the one-line error into a traceback
        enc = getattr(sys.stderr, "encoding", None) or "utf-8"
        print(f"booster: error: {e}".encode(enc, "backslashreplace").decode(enc), file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `booster run --describe | head`: the reader left, nothing is wrong
        # Python would complain again while flushing stdout at exit; point it at devnull
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("booster: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
