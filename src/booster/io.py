"""Atomic file output, hashing and an inter-process lock.

Every artifact is written to a temporary name in the destination folder and renamed into
place at the end, so an interrupted or failed step never leaves a file that a later step
could mistake for complete (``os.replace`` is atomic on POSIX within one filesystem).
What lands there has the permissions of any file the user creates (``0666 & ~umask``, folders
``0777 & ~umask``), not the private 0600/0700 of the temporary names.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator


def umask() -> int:
    """The process's umask. Linux shows it in /proc; elsewhere it is read by setting it, which
    changes it for a moment for every thread, so that is only the fallback."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _usual_mode(path: Path, *, folder: bool) -> None:
    """Give a temporary file (mkstemp: 0600) or folder (mkdtemp: 0700) the mode a plain
    open()/mkdir() would have, so that results are readable by whom the user's umask allows."""
    os.chmod(path, (0o777 if folder else 0o666) & ~umask())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # the caller may have replaced the file (e.g. a library saving to this path): chmod last
        _usual_mode(tmp_path, folder=False)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; swap it into place on success only.

    An existing folder at ``path`` is replaced (moved aside under a temporary name and removed
    after the new one is in place, so readers never see a half-written folder). Two processes
    writing the same folder at once both succeed; the last one's folder stays.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        _usual_mode(tmp, folder=True)
        _swap_in(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_in(tmp: Path, path: Path, tries: int = 100) -> None:
    """Rename folder ``tmp`` onto ``path``, moving whatever is there aside first. Retried, since
    another process may put its own folder at ``path`` between our move and our rename; each
    failed try means another writer succeeded, so this ends."""
    olds = []
    try:
        for attempt in range(tries):
            try:
                os.replace(tmp, path)  # succeeds when nothing (or an empty folder) is there
                return
            except OSError as e:
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR) or attempt == tries - 1:
                    raise
            olds.append(Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent)))
            with contextlib.suppress(FileNotFoundError):  # another writer moved it aside first
                os.replace(path, olds[-1] / "x")
    finally:
        for old in olds:
            shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the ``with`` block.

    An advisory POSIX lock (``flock``) between processes: the kernel releases it when the holder
    exits, even by SIGKILL, so a killed run never leaves a stale lock behind. ``on_wait`` is
    called once, before blocking, when another process holds the lock. Not re-entrant: a
    process that takes the same lock twice waits for itself.
    """
    import fcntl  # POSIX only, like the atomic renames above

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Write one JSON object per line, atomically; return the number of records."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSONL file written by this package (trusted). User files go through
    :mod:`booster.data.userdata`, which validates every line."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
