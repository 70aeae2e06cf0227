"""Typed configs: one dataclass per component, loaded from YAML with ``key=value`` overrides.

Validation is strict, as in trl's argument parsing: an unknown key, a wrong type or an
out-of-range value is a :class:`~booster.errors.ConfigError` naming the file and key, raised
before any work starts. Every field carries its documentation (and paper default) in
``metadata["help"]``; :func:`describe` renders it.

The work any config can cause is bounded: files over :data:`MAX_CONFIG_BYTES` and YAML nested
deeper than :data:`MAX_DEPTH` are refused, and so is a document whose anchors and aliases
(``&a`` / ``*a``) expand to more than :data:`MAX_NODES` values or to a cycle: a few hundred
bytes of aliases of aliases expand to gigabytes ("billion laughs"). Plain aliases stay allowed,
since ``yaml.dump`` writes one wherever a Python config shares an object. Values quoted in error
messages are shortened (:func:`quote`).

Numbers are read as people write them: YAML 1.1 reads ``1e-4`` as a string, so a float key
accepts any decimal literal (``1e-4``, ``.5``, ``-2E+3``); a choice key such as
``mixed_precision: no`` gets back the word YAML 1.1 turned into a boolean.

    @dataclass
    class BoosterConfig:
        lam: float = option(5.0, "λ, weight of the harmful-loss reduction term (paper: 5)")
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import reprlib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml

from booster.errors import ConfigError

T = TypeVar("T")

MAX_CONFIG_BYTES = 256 * 1024  # shipped configs are a few KB
MAX_DEPTH = 64  # nesting of YAML collections; configs use 4 levels
MAX_NODES = 10_000  # values of a document with its aliases expanded; shipped configs have ~150
MAX_QUOTE = 80  # characters of a user value quoted in an error message

# A decimal literal as people write it. YAML 1.1 only reads "1.0e-4" as a float, not "1e-4".
_DECIMAL = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
# Words YAML 1.1 reads as booleans, to give a choice key back the word that was written.
_BOOL_WORDS = {False: ("no", "off", "false"), True: ("yes", "on", "true")}

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = _repr.maxlong = MAX_QUOTE
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 6
_repr.maxlevel = 3


def _clip(text: str, limit: int = MAX_QUOTE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quote(value: Any) -> str:
    """``repr(value)`` cut to about :data:`MAX_QUOTE` characters, for error messages.

    reprlib bounds the work on big nested values; the final cut bounds the length."""
    return _clip(_repr.repr(value))


class _Refused(yaml.YAMLError):
    """A YAML document config files do not allow (too deep, or expanding too far through aliases)."""

    def __init__(self, problem: str, mark):
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with bounded expansion and nesting.

    An alias shares a node, so a few aliases of aliases expand exponentially when the value is
    walked or printed. The composed graph is small whatever the aliases do, so it is measured
    (values counted with every alias expanded, and depth) before anything is built from it.
    The depth limit during composition keeps PyYAML's recursive composer off Python's stack limit."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_data(self):
        node = self.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return self.construct_document(node)


def _check_expansion(root) -> None:
    """Refuse a node graph that expands to more than MAX_NODES values, nests (through aliases)
    deeper than MAX_DEPTH, or refers to itself. Linear in the graph: sizes are memoised per node."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise _Refused(f"nested more than {MAX_DEPTH} levels deep (aliases included)", node.start_mark)
        if isinstance(node, yaml.ScalarNode):
            return 1
        if id(node) in open_nodes:
            raise _Refused("an alias refers to a value that contains it (a cycle)", node.start_mark)
        if id(node) not in sizes:
            open_nodes.add(id(node))
            children = [c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode) else node.value
            total = 1
            for child in children:
                total += size(child, depth + 1)
                if total > MAX_NODES:
                    raise _Refused(f"expands to more than {MAX_NODES:,} values (anchors and aliases "
                                   "repeated inside each other)", node.start_mark)
            open_nodes.discard(id(node))
            sizes[id(node)] = total
        return sizes[id(node)]

    size(root, 1)


def _load_yaml(text: str) -> Any:
    """Parse one YAML document with :class:`_BoundedLoader`.

    Raises ``yaml.YAMLError`` for any document it cannot read: PyYAML's constructors raise a
    bare ValueError for some bad scalars (``!!float x``, a 5,000-digit integer, a bad date)."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except (ValueError, OverflowError) as e:
        raise yaml.YAMLError(str(e)) from None
    finally:
        loader.dispose()


def option(default: Any = dataclasses.MISSING, help: str = "", *, factory=None) -> Any:
    """A documented dataclass field. Use ``factory`` for mutable defaults."""
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against annotation ``tp`` (after YAML parsing) and convert it.

    ``where`` reads like ``cfg.yaml: key 'train.lr'`` and prefixes every error."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {quote(value)}")
    if origin is Literal:
        choices = get_args(tp)
        if isinstance(value, bool):
            # `mixed_precision: no` is the word "no", which YAML 1.1 reads as false.
            words = [c for c in choices if isinstance(c, str) and c.lower() in _BOOL_WORDS[value]]
            if len(words) == 1:
                return words[0]
        if isinstance(value, bool) or value not in choices:
            raise ConfigError(f"{where}: must be one of {list(choices)}, got {quote(value)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {quote(value)}")
        (item_tp, *_) = get_args(tp) or (Any,)
        items = [_convert(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {quote(value)}")
        _, val_tp = get_args(tp) or (Any, Any)
        return {str(k): _convert(v, val_tp, f"{where}.{_clip(str(k))}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        source, _, key = where.partition(": key ")
        return from_dict(tp, value, source, prefix=key.strip("'") + ".")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {quote(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {quote(value)}")
        return value
    if tp is float:
        return _to_float(value, where)
    if tp is str:
        if not isinstance(value, str):
            hint = " (YAML reads unquoted yes/no/on/off as true/false: quote it)" if isinstance(value, bool) else ""
            raise ConfigError(f"{where}: expected a string, got {quote(value)}{hint}")
        return _no_nul(value, where)
    if tp is Path:
        if not isinstance(value, (str, os.PathLike)):
            raise ConfigError(f"{where}: expected a path, got {quote(value)}")
        return Path(_no_nul(os.fspath(value), where))
    return value


def _no_nul(text, where: str):
    # Strings end up in paths and model names, where a NUL byte is an OS-level ValueError.
    if "\0" in str(text):
        raise ConfigError(f"{where}: must not contain a NUL character, got {quote(text)}")
    return text


def _to_float(value: Any, where: str) -> float:
    """A finite float from a YAML number or a decimal literal YAML 1.1 left as a string."""
    if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        value = float(value.strip())
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a number (e.g. 1e-4, 0.5), got {quote(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float range
        number = math.inf
    if not math.isfinite(number):
        raise ConfigError(f"{where}: expected a finite number, got {quote(value)}")
    return number


def from_dict(cls: type[T], data: Any, where: str = "config", prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types.

    ``where`` names the source (a file) and ``prefix`` the section, for error messages."""
    section = f"section {quote(prefix[:-1])}" if prefix else "top level"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: {section}: expected a mapping of keys to values, got {quote(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(map(str, data)) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {quote(prefix + unknown[0])} "
            f"(known keys in {section}: {', '.join(sorted(fields))})"
        )
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(value, hints[name], f"{where}: key {prefix + name!r}")
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        keys = ", ".join(repr(prefix + n) for n in missing)
        raise ConfigError(f"{where}: missing required key{'s' if len(missing) > 1 else ''} {keys}")
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ConfigError as e:
            # Validators quote values unshortened (a 4,000-digit integer): cut the message.
            raise ConfigError(f"{where}: {prefix}{_clip(str(e), 4 * MAX_QUOTE)}") from None
    return obj


def to_dict(obj: Any) -> Any:
    """Plain (YAML/JSON-serialisable) form of a config, for manifests and cache keys."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def apply_overrides(data: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML scalars/lists) to a mapping.

    A value YAML cannot read stays a string (``name=a: b``); one it refuses (aliases that
    expand too far, deep nesting) is an error naming the override."""
    data = dict(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {quote(item)}: expected KEY=VALUE (e.g. align.train.lr=1e-4)")
        key, raw = item.split("=", 1)
        try:
            value = _load_yaml(raw) if raw != "" else ""
        except _Refused as e:
            raise ConfigError(f"override {quote(item)}: {e.problem}") from None
        except yaml.YAMLError:
            value = raw
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            child = dict(child) if isinstance(child, dict) else {}
            node[part] = child
            node = child
        node[parts[-1]] = value
    return data


def read_yaml(path: str | os.PathLike) -> dict:
    """The top-level mapping of a config file, within the bounds in the module docstring."""
    path = Path(path)
    text = _read_text(path)
    try:
        data = _load_yaml(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        if isinstance(e, _Refused):
            raise ConfigError(f"{path}{line}: {problem}") from None
        raise ConfigError(f"{path}{line}: invalid YAML ({_clip(problem, 2 * MAX_QUOTE)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys to values")
    return data


def _read_text(path: Path) -> str:
    """The file's text, read only up to the size limit; every OS error names what went wrong."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a config file") from None
    except OSError as e:  # permission denied, a symlink loop, ...
        raise ConfigError(f"{path}: cannot read the config file ({e.strerror or e})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: config file is larger than {MAX_CONFIG_BYTES // 1024} KiB")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None


def load_config(cls: type[T], path: str | os.PathLike | None = None, overrides=()) -> T:
    """Load ``cls`` from an optional YAML file plus ``key=value`` overrides."""
    data = read_yaml(path) if path is not None else {}
    data = apply_overrides(data, list(overrides))
    return from_dict(cls, data, where=str(path) if path is not None else "config")


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, default, help) for every field, nested sections flattened with dots."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows += describe(tp, f"{prefix}{f.name}.")
            continue
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = repr(f.default_factory())
        else:
            default = "(required)"
        rows.append((prefix + f.name, default, f.metadata.get("help", "")))
    return rows
