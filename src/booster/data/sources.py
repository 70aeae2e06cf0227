"""Readers for the raw datasets, from a local folder or from the Hugging Face hub.

Every logical dataset is declared once in :data:`DATASETS`: where it lives in a local folder
(original file format, as published), which hub dataset holds the same rows, and how hub
columns map onto the logical fields. Both sources return the same plain row dicts, with the
declared fields converted to the declared types, so the rest of the data stage never knows
where the rows came from. A user's own folder with the same layout is just a
:class:`LocalSource`.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from booster.errors import BoosterError, DataError
from booster.io import sha256_file, sha256_text

BEAVERTAILS_FIELDS = {"prompt": str, "response": str, "category": dict, "is_safe": bool}
AGNEWS_CLASSES = ("World", "Sports", "Business", "Sci/Tech")  # the hub's ClassLabel names


@dataclass(frozen=True)
class HubSpec:
    """Where a logical dataset lives on the hub and how its columns map onto our fields.

    ``columns`` maps a logical field to a hub column name or to a function of the hub row
    (for renamed or re-encoded fields). ``constant`` rows are returned without any download
    (small fixed tables such as class names)."""

    repo: str
    split: str
    config: str | None = None
    kwargs: tuple[tuple[str, Any], ...] = ()
    columns: dict[str, str | Callable[[dict], Any]] = field(default_factory=dict)
    constant: tuple[dict, ...] | None = None


@dataclass(frozen=True)
class Dataset:
    """One logical dataset: local relative path + format, typed fields, hub equivalent."""

    name: str
    path: str  # relative to the source root; also the record's "source" in every pool
    fmt: str  # jsonl | jsonl.gz | json | tsv | csv | csv-noheader | lines
    fields: dict[str, type]
    hub: HubSpec | None = None
    no_hub: str = ""  # why there is no hub equivalent (shown in the error)


def _beavertails(name: str, path: str, hub: HubSpec | None = None, no_hub: str = "") -> Dataset:
    return Dataset(name, path, "jsonl", BEAVERTAILS_FIELDS, hub, no_hub)


_RP = "a de-duplicated BeaverTails 330k subset published with a RepNoise reproduction, not on the hub"

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in [
        _beavertails(
            "beavertails_30k_test", "beavertails/30k_test.jsonl",
            HubSpec("PKU-Alignment/BeaverTails", "30k_test", columns={f: f for f in BEAVERTAILS_FIELDS}),
        ),
        _beavertails("beavertails_330k_a", "beavertails/330k_subset_a.jsonl", no_hub=_RP),
        _beavertails("beavertails_330k_b", "beavertails/330k_subset_b.jsonl", no_hub=_RP),
        _beavertails("beavertails_330k_c", "beavertails/330k_subset_c.jsonl", no_hub=_RP),
        Dataset(
            "safety_tuned_llamas", "safety_tuned_llamas/safety_only_data_Instructions.json", "json",
            {"instruction": str, "input": str, "output": str},
            no_hub="published on GitHub with the Safety-Tuned LLaMAs paper, not on the hub",
        ),
        Dataset(
            "saferlhf_2000", "saferlhf/safe_rlhf_2000.jsonl", "jsonl",
            {"prompt": str, "response": str, "is_response_safe": bool},
            no_hub="a fixed 2,000-row sample of PKU-SafeRLHF test from a benchmark copy",
        ),
        Dataset(
            "hh_rlhf_harmless_test", "hh_rlhf/harmless-base_test.jsonl.gz", "jsonl.gz",
            {"chosen": str, "rejected": str},
            HubSpec("Anthropic/hh-rlhf", "test", kwargs=(("data_dir", "harmless-base"),),
                    columns={"chosen": "chosen", "rejected": "rejected"}),
        ),
        Dataset(
            "sst2_train", "sst2/train.tsv", "tsv", {"sentence": str, "label": int},
            HubSpec("stanfordnlp/sst2", "train", columns={"sentence": "sentence", "label": "label"}),
        ),
        Dataset(
            "sst2_dev", "sst2/dev.tsv", "tsv", {"sentence": str, "label": int},
            HubSpec("stanfordnlp/sst2", "validation", columns={"sentence": "sentence", "label": "label"}),
        ),
        Dataset(
            # The hub has one "text" column (title and description joined by a space) and
            # 0-based labels; the task template joins title and description the same way.
            "ag_news_test", "ag_news/test.csv", "csv-noheader",
            {"class": int, "title": str, "description": str},
            HubSpec("fancyzhx/ag_news", "test", columns={
                "class": lambda r: int(r["label"]) + 1, "title": lambda r: "", "description": "text"}),
        ),
        Dataset(
            "ag_news_classes", "ag_news/classes.txt", "lines", {"name": str},
            HubSpec("fancyzhx/ag_news", "test", constant=tuple({"name": c} for c in AGNEWS_CLASSES)),
        ),
        Dataset(
            "gsm8k_train", "gsm8k/train.jsonl", "jsonl", {"question": str, "answer": str},
            HubSpec("openai/gsm8k", "train", "main", columns={"question": "question", "answer": "answer"}),
        ),
        Dataset(
            "gsm8k_test", "gsm8k/test.jsonl", "jsonl", {"question": str, "answer": str},
            HubSpec("openai/gsm8k", "test", "main", columns={"question": "question", "answer": "answer"}),
        ),
        Dataset(
            "alpaca_eval", "alpaca_eval/alpaca_eval_gpt4_baseline.json", "json",
            {"dataset": str, "instruction": str, "output": str, "generator": str},
            HubSpec("tatsu-lab/alpaca_eval", "eval", "alpaca_eval_gpt4_baseline",
                    columns={f: f for f in ("dataset", "instruction", "output", "generator")}),
        ),
        Dataset(
            "advbench", "advbench/harmful_behaviors.csv", "csv", {"goal": str, "target": str},
            HubSpec("walledai/AdvBench", "train", columns={"goal": "prompt", "target": "target"}),
        ),
        *[
            Dataset(
                f"harmless_{split}", f"harmless_instructions/harmless_{split}.json", "json",
                {"instruction": str},
                no_hub="the refusal-direction project's harmless split, published on GitHub only",
            )
            for split in ("train", "val", "test")
        ],
    ]
}


def _convert(value: Any, tp: type, path: Any, fname: str, line: int | None) -> Any:
    """Check/convert one field to its declared type (TSV/CSV give strings for ints)."""
    if tp is int:
        if isinstance(value, bool):
            raise DataError(path, f"field {fname!r}: expected an integer, got {value!r}", line)
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise DataError(path, f"field {fname!r}: expected an integer, got {value!r}", line)
    if not isinstance(value, tp):
        raise DataError(path, f"field {fname!r}: expected {tp.__name__}, got {value!r}", line)
    return value


def _typed_row(row: Any, ds: Dataset, path: Any, line: int | None) -> dict:
    if not isinstance(row, dict):
        raise DataError(path, f"expected an object with fields {list(ds.fields)}, got {type(row).__name__}", line)
    out = {}
    for fname, tp in ds.fields.items():
        if fname not in row:
            raise DataError(path, f"missing field {fname!r} (expected fields {list(ds.fields)})", line)
        out[fname] = _convert(row[fname], tp, path, fname, line)
    return out


class LocalSource:
    """Raw datasets in their original formats under ``root`` (see :data:`DATASETS`)."""

    kind = "local"

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise BoosterError(f"{self.root}: data source folder does not exist")
        self.read_files: dict[str, str] = {}  # relative path -> sha256, for the manifest
        self._cache: dict[str, list[dict]] = {}

    def read(self, name: str) -> list[dict]:
        """Rows of dataset ``name`` (cached: treat the list as read-only)."""
        ds = _dataset(name)
        if name in self._cache:
            return self._cache[name]
        path = self.root / ds.path
        if not path.is_file():
            raise DataError(path, f"file not found (dataset {name!r} is expected here in its original format)")
        try:
            raw = path.read_bytes()
            text = (gzip.decompress(raw) if ds.fmt == "jsonl.gz" else raw).decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise DataError(path, f"not UTF-8 text (bad byte at offset {e.start})") from None
        except (OSError, EOFError) as e:
            raise DataError(path, f"cannot read: {e}") from None
        rows = [_typed_row(row, ds, path, line) for line, row in _parse(text, ds, path)]
        self.read_files[ds.path] = sha256_file(path)
        self._cache[name] = rows
        return rows

    def provenance(self) -> dict:
        return {"kind": self.kind, "root": str(self.root.resolve()),
                "files": {p: self.read_files[p] for p in sorted(self.read_files)}}


def _parse(text: str, ds: Dataset, path: Path):
    """Yield (line number or None, raw row) for each record of a file in format ``ds.fmt``."""
    if ds.fmt in ("jsonl", "jsonl.gz"):
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    yield i, json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(path, f"invalid JSON ({e.msg})", i) from None
    elif ds.fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(path, f"invalid JSON ({e.msg})", e.lineno) from None
        if not isinstance(data, list):
            raise DataError(path, "expected a JSON list of objects")
        for item in data:
            yield None, item
    elif ds.fmt == "tsv":
        # GLUE TSVs are unquoted (sentences contain quote characters), so no csv module here.
        lines = text.splitlines()
        header = lines[0].split("\t") if lines else []
        for i, line in enumerate(lines[1:], 2):
            if line.strip():
                cells = line.split("\t")
                if len(cells) != len(header):
                    raise DataError(path, f"expected {len(header)} tab-separated columns, got {len(cells)}", i)
                yield i, dict(zip(header, cells))
    elif ds.fmt in ("csv", "csv-noheader"):
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, []) if ds.fmt == "csv" else list(ds.fields)
        for cells in reader:
            if cells:
                if len(cells) != len(header):
                    raise DataError(path, f"expected {len(header)} columns, got {len(cells)}", reader.line_num)
                yield reader.line_num, dict(zip(header, cells))
    elif ds.fmt == "lines":
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                yield i, {"name": line.strip()}
    else:  # pragma: no cover - table error
        raise AssertionError(f"unknown format {ds.fmt}")


def _dataset(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise BoosterError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})") from None


def _hub_loader(repo: str, config: str | None, split: str, **kwargs):
    """``datasets.load_dataset``, imported only when the hub is actually used."""
    try:
        from datasets import load_dataset
    except ImportError:
        raise BoosterError(
            "reading from the Hugging Face hub needs the optional 'datasets' package "
            "(pip install 'booster[hub]'), or pass --source DIR with a local copy"
        ) from None
    return load_dataset(repo, config, split=split, **kwargs)


class HubSource:
    """The same logical datasets, read from Hugging Face hub dataset ids.

    ``loader(repo, config, split, **kwargs)`` defaults to ``datasets.load_dataset``; tests
    inject a fake. Any loader failure (offline machine, gated or renamed dataset) becomes one
    :class:`BoosterError` naming the dataset and suggesting a local copy."""

    kind = "hub"

    def __init__(self, loader: Callable[..., Any] | None = None):
        self.loader = loader or _hub_loader
        self.read_datasets: dict[str, dict] = {}
        self._cache: dict[str, list[dict]] = {}

    def read(self, name: str) -> list[dict]:
        """Rows of dataset ``name`` (cached: treat the list as read-only)."""
        ds = _dataset(name)
        if name in self._cache:
            return self._cache[name]
        spec = ds.hub
        if spec is None:
            raise BoosterError(
                f"dataset {name!r} ({ds.path}) has no Hugging Face hub equivalent ({ds.no_hub}); "
                f"use --source DIR with a local copy"
            )
        where = f"hub:{spec.repo}" + (f"/{spec.config}" if spec.config else "") + f":{spec.split}"
        if spec.constant is not None:
            rows = [dict(r) for r in spec.constant]
        else:
            try:
                hub_rows = self.loader(spec.repo, spec.config, spec.split, **dict(spec.kwargs))
                hub_rows = list(hub_rows)
            except BoosterError:
                raise
            except Exception as e:  # network, auth, missing dataset: all one user-facing error
                msg = str(e).splitlines()[0] if str(e) else ""
                raise BoosterError(
                    f"could not load {where} for dataset {name!r} from the Hugging Face hub "
                    f"({type(e).__name__}: {msg}); offline by default: use --source DIR with a local copy, or set BOOSTER_ONLINE=1"
                ) from None
            rows = []
            for i, hub_row in enumerate(hub_rows, 1):
                row = {}
                for fname, col in spec.columns.items():
                    try:
                        row[fname] = col(hub_row) if callable(col) else hub_row[col]
                    except (KeyError, TypeError, ValueError):
                        raise DataError(where, f"row {i}: cannot read field {fname!r} (hub columns changed?)") from None
                rows.append(row)
        rows = [_typed_row(r, ds, where, i) for i, r in enumerate(rows, 1)]
        self.read_datasets[ds.path] = {
            "hub": spec.repo, "config": spec.config, "split": spec.split, **dict(spec.kwargs),
            "rows_sha256": sha256_text(json.dumps(rows, ensure_ascii=False, sort_keys=True)),
        }
        self._cache[name] = rows
        return rows

    def provenance(self) -> dict:
        return {"kind": self.kind, "files": {p: self.read_datasets[p] for p in sorted(self.read_datasets)}}


def open_source(spec: str | Path | None) -> LocalSource | HubSource:
    """``None`` → the default local folder (or the hub if there is none); ``"hub"`` → hub."""
    if spec is None:
        from booster.paths import default_data_source

        root = default_data_source()
        return LocalSource(root) if root is not None else HubSource()
    if str(spec) == "hub":
        return HubSource()
    return LocalSource(spec)
