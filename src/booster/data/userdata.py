"""Validate a user's fine-tuning file (JSONL) and normalise it to chat messages.

Each non-blank line is one JSON object, either

- ``{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}`` or
- ``{"prompt": "...", "completion": "..."}`` (becomes a user turn and an assistant turn).

Other keys (metadata such as ``"harmful"``) are allowed and ignored. A UTF-8 BOM and CRLF
line endings are accepted; blank lines are skipped. Every problem is a :class:`DataError`
naming the file, the line number (1-based, counting blank lines) and what is wrong, so a user
can fix the file without reading code. Whatever the bytes, the outcome is records or a
DataError: unreadable paths, arrays/objects nested deeper than :data:`MAX_DEPTH` levels and
numbers too long for Python are reported like any other mistake, never as a traceback.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from collections import Counter
from pathlib import Path

from booster.config import quote
from booster.errors import DataError

ROLES = ("system", "user", "assistant")
_BOM = b"\xef\xbb\xbf"

# A chat record is 3 levels deep ({"messages": [{...}]}); metadata may add a few. 64 leaves
# ample room while keeping json's recursive parser far below Python's recursion limit.
MAX_DEPTH = 64
# One token: a JSON string (possibly unterminated: it then runs to the end of the text, so
# every character is scanned once) or a bracket. Brackets inside strings are not nesting.
_DEPTH_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)|[\[\]{}]', re.S)
# os.stat says only "Too many levels of symbolic links"; this says what to look for.
SYMLINK_LOOP = "is a symlink loop (following its links leads back to a link already seen)"


def nesting_exceeds(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON ``text`` nests arrays/objects more than ``limit`` levels deep.

    A linear scan that never recurses, run before :func:`json.loads` (which recurses once per
    level and fails with RecursionError, or worse, on deep input)."""
    if text.count("[") + text.count("{") <= limit:  # the common case: cannot be that deep
        return False
    depth = 0
    for token in _DEPTH_TOKEN.finditer(text):
        c = token.group()[0]
        if c in "[{":
            depth += 1
            if depth > limit:
                return True
        elif c in "]}":
            depth -= 1
    return False


def parse_json(text: str, path: Path, line: int | None = None):
    """``json.loads(text)`` for text from a user's file; every failure is a DataError."""
    if nesting_exceeds(text):
        raise DataError(path, f"nesting deeper than {MAX_DEPTH} levels (arrays/objects inside each other)", line)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(path, f"invalid JSON ({e.msg} at column {e.colno})", line) from None
    except ValueError as e:  # a number with more digits than Python converts (sys.int_info)
        raise DataError(path, f"invalid JSON ({str(e).split(':')[0]})", line) from None
    except RecursionError:  # not reachable after the scan above; kept as a last guard
        raise DataError(path, f"nesting deeper than {MAX_DEPTH} levels (arrays/objects inside each other)", line) from None


def load_json_file(path: Path):
    """The JSON value in a user-supplied file (a config, not JSONL); DataError on any problem."""
    try:
        text = read_user_file(path, "JSON file").decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(path, f"not valid UTF-8 (byte 0x{e.object[e.start]:02x} at offset {e.start})") from None
    return parse_json(text, path)


def read_user_file(path: Path, what: str = "file") -> bytes:
    """The bytes of a user-named regular file; every reason it cannot be read is a DataError."""
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            raise DataError(path, f"is a folder, expected a {what}")
        if not stat.S_ISREG(mode):  # a pipe or device could block or never end
            raise DataError(path, f"is not a regular file (a pipe, socket or device), expected a {what}")
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise DataError(path, _os_problem(path, e)) from None


def _os_problem(path: Path, e: OSError) -> str:
    if e.errno == errno.ENOENT:
        return "is a broken symlink (its target does not exist)" if os.path.islink(path) else "file does not exist"
    if e.errno == errno.ELOOP:
        return SYMLINK_LOOP
    if e.errno in (errno.EACCES, errno.EPERM):
        return "cannot read it: permission denied"
    if e.errno == errno.ENOTDIR:
        return "a folder in this path is a file"
    return f"cannot read it: {e.strerror or e}"


def _text(value, what: str, path: Path, line: int) -> str:
    if not isinstance(value, str):
        raise DataError(path, f"{what} must be a string, got {type(value).__name__}", line)
    if not value.strip():
        raise DataError(path, f"{what} is empty", line)
    return value


def _messages(obj: dict, path: Path, line: int) -> list[dict]:
    has_messages = "messages" in obj
    has_pc = "prompt" in obj or "completion" in obj
    if has_messages and has_pc:
        raise DataError(path, "has both 'messages' and 'prompt'/'completion'; use one format", line)
    if not has_messages and not has_pc:
        raise DataError(path, "needs either 'messages' or 'prompt' and 'completion'", line)
    if has_pc:
        for key in ("prompt", "completion"):
            if key not in obj:
                raise DataError(path, f"missing '{key}' (a prompt/completion record needs both)", line)
        return [{"role": "user", "content": _text(obj["prompt"], "'prompt'", path, line)},
                {"role": "assistant", "content": _text(obj["completion"], "'completion'", path, line)}]
    messages = obj["messages"]
    if not isinstance(messages, list):
        raise DataError(path, f"'messages' must be a list, got {type(messages).__name__}", line)
    if not messages:
        raise DataError(path, "'messages' is empty", line)
    out = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise DataError(path, f"{where} must be an object with 'role' and 'content', got {type(m).__name__}", line)
        for key in ("role", "content"):
            if key not in m:
                raise DataError(path, f"{where} is missing '{key}'", line)
        if m["role"] not in ROLES:
            raise DataError(path, f"{where} has unknown role {quote(m['role'])} (expected one of {', '.join(ROLES)})", line)
        out.append({"role": m["role"], "content": _text(m["content"], f"{where} content", path, line)})
    if not any(m["role"] == "assistant" for m in out):
        raise DataError(path, "conversation has no assistant turn (nothing to train on)", line)
    return out


def load_user_jsonl(path: str | Path) -> list[dict]:
    """Records of ``path`` as ``{"messages": [...]}``; raises DataError on the first problem."""
    path = Path(path)
    data = read_user_file(path, "JSONL file")
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    records = []
    # Split on b"\n" ourselves (not str.splitlines) so that line numbers match what editors
    # show, and so that a non-UTF-8 byte is reported on its own line.
    for number, raw in enumerate(data.split(b"\n"), 1):
        raw = raw.removesuffix(b"\r")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(path, f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})", number) from None
        if not line.strip():
            continue
        obj = parse_json(line, path, number)
        if not isinstance(obj, dict):
            raise DataError(path, f"expected a JSON object, got {type(obj).__name__}", number)
        records.append({"messages": _messages(obj, path, number)})
    if not records:
        raise DataError(path, "no records (the file is empty or has only blank lines)")
    return records


def summarize(records: list[dict]) -> dict:
    """Counts that ``booster data check`` prints."""
    roles = Counter(m["role"] for r in records for m in r["messages"])
    return {
        "records": len(records),
        "turns": sum(roles.values()),
        **{f"{role}_turns": roles.get(role, 0) for role in ROLES},
        "multi_turn_records": sum(1 for r in records if sum(m["role"] != "system" for m in r["messages"]) > 2),
    }
