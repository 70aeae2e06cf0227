"""``booster model info NAME`` and ``booster model generate NAME --prompt TEXT``."""

from __future__ import annotations

import argparse
import json
import logging
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser("model", help="inspect and try models (short names, folders, hub ids)")
    sub = p.add_subparsers(dest="model_command", metavar="ACTION")
    sub.required = True

    from booster.models.registry import BUILTIN_MODELS

    name_help = f"short name ({', '.join(BUILTIN_MODELS)}), local folder, or hub id in the local HF cache"

    info = sub.add_parser("info", help="print where a model lives and what it is")
    info.add_argument("name", metavar="NAME", help=name_help)
    info.add_argument("--json", action="store_true", help="print the identity record as JSON")
    info.set_defaults(func=cmd_info)

    gen = sub.add_parser("generate", help="answer one prompt (chat template, greedy decoding)")
    gen.add_argument("name", metavar="NAME", help=name_help)
    gen.add_argument("--prompt", required=True, help="the user message")
    gen.add_argument("--system", default=None, help="optional system message")
    gen.add_argument("--max-new-tokens", type=_positive_int, default=64, help="default: 64")
    gen.add_argument("--dtype", default="float32", help="float32 (default), bfloat16, float16")
    gen.set_defaults(func=cmd_generate)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return value


def _log_builds_to_stderr() -> None:
    """Let 'building model ...' (a one-time ~20 s conversion) show on stderr."""
    log = logging.getLogger("booster.models")
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("booster: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def cmd_info(args) -> int:
    from booster.data.userdata import load_json_file
    from booster.errors import BoosterError
    from booster.models.registry import resolve_model, safetensors_summary

    _log_builds_to_stderr()
    resolved = resolve_model(args.name)
    config = load_json_file(resolved.path / "config.json")
    if not isinstance(config, dict):
        raise BoosterError(f"{resolved.path / 'config.json'}: expected a JSON object, got {type(config).__name__}")
    weights = safetensors_summary(resolved.path)
    text_cfg = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    # Only informative here (loading checks the config): odd values print as they are.
    archs = [a for a in config.get("architectures") or [] if isinstance(a, str)] \
        if isinstance(config.get("architectures"), list) else []
    has_template = (resolved.path / "chat_template.jinja").is_file() or "chat_template" in _read_json(
        resolved.path / "tokenizer_config.json"
    )
    if args.json:
        out = resolved.identity()
        out.update(
            cache=resolved.cache,
            architecture=(archs or [None])[0],
            parameters=weights["parameters"],
            layers=text_cfg.get("num_hidden_layers"),
            dtype=config.get("dtype") or config.get("torch_dtype"),
            stored_dtypes=weights["dtypes"],
            vocab=text_cfg.get("vocab_size"),
            chat_template=has_template,
        )
        print(json.dumps(out, indent=2))
        return 0
    rows = [
        ("name", resolved.name),
        ("kind", resolved.kind),
        ("folder", str(resolved.path)),
        ("cache", resolved.cache),
    ]
    src = resolved.source
    if resolved.kind == "builtin" and "file" in src:
        rows.append(("source", f"{src['file']} from {src['package']} {src['package_version']} ({src['format']})"))
        rows.append(("source sha256", src["sha256"]))
    elif resolved.kind == "builtin":
        rows.append(("source", f"{src['builder']} seed {src['seed']}, tokenizer {src['tokenizer']}"))
    elif resolved.kind == "hub":
        rows.append(("revision", src["revision"]))
    rows += [
        ("architecture", ", ".join(archs or ["?"])),
        ("parameters", f"{weights['parameters']:,}"),
        ("layers", str(text_cfg.get("num_hidden_layers", "?"))),
        ("hidden size", str(text_cfg.get("hidden_size", "?"))),
        ("dtype", f"{config.get('dtype') or config.get('torch_dtype') or '?'} (stored: {', '.join(weights['dtypes'])})"),
        ("vocab", str(text_cfg.get("vocab_size", "?"))),
        ("chat template", "yes" if has_template else "no"),
    ]
    width = max(len(k) for k, _ in rows) + 1
    for key, value in rows:
        print(f"{key + ':':<{width}} {value}")
    return 0


def _read_json(path) -> dict:
    """An optional JSON file (e.g. tokenizer_config.json): {} when absent or unusable."""
    from booster.data.userdata import load_json_file

    try:
        data = load_json_file(path)
    except ValueError:  # includes DataError: missing, unreadable, invalid, too deeply nested
        return {}
    return data if isinstance(data, dict) else {}


def cmd_generate(args) -> int:
    from booster.models.generation import answer
    from booster.models.loading import load_model, parse_dtype
    from booster.models.registry import resolve_model

    _log_builds_to_stderr()
    resolved = resolve_model(args.name)
    dtype = parse_dtype(args.dtype)
    model, tokenizer = load_model(resolved, dtype=dtype)
    if not tokenizer.chat_template:
        print(f"booster: note: '{args.name}' has no chat template; using the prompt as plain text", file=sys.stderr)
    (reply,) = answer(model, tokenizer, args.prompt, max_new_tokens=args.max_new_tokens, system=args.system)
    print(reply)
    return 0
