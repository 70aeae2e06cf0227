"""Reading a run folder for ``booster report``: every file checked before anything is written.

A run folder's ``summary.json``, ``histories.json`` and ``protocol.json`` are written by
``booster run``, but a user may have edited, truncated or replaced them; any problem is a
:class:`~booster.errors.DataError` naming the file (and the row and key) so that the CLI prints
one line and the report files already there stay as they were.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from booster.errors import BoosterError, DataError

HAND_SCORES = "hand-scores.json"  # written beside a grid by a labeling round (judges/labels/grid_labels.py)
NAMES = ("summary", "histories", "protocol")

# Keys a summary row may carry, by the type the report reads them as (None is always allowed:
# a metric that was not measured, e.g. hs before a judge ran).
_TEXT = ("method", "task", "align_method", "finetune", "topology", "align_key", "attack_key", "bf16_kernels",
         "judge_sha256", "stage", "repair", "repair_key", "attack_recipe")
_INTEGER = ("n", "seed", "hs_prompts")
_NUMBER = ("p", "hs", "hs_plus", "fa", "hs_before_attack", "fa_before_attack", "refusal_rate", "over_refusal",
           "over_refusal_before_attack", "align_seconds", "align_peak_rss_mb", "attack_seconds",
           "attack_peak_rss_mb", "repair_seconds", "repair_peak_rss_mb")
_PROBES = ("probe/harmful_train_loss", "probe/harmful_test_loss")


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _read(path: Path):
    if not path.exists():
        raise DataError(path, "is missing (not a run folder written by 'booster run'?)")
    if not path.is_file():
        raise DataError(path, "is not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(path, f"is not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise DataError(path, f"cannot be read: {e.strerror or e}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(path, f"is not valid JSON: {e.msg} (column {e.colno})", line=e.lineno) from None
    except RecursionError:
        raise DataError(path, "is nested too deeply to be a run folder's file") from None


def _check_row(path: Path, i: int, row) -> None:
    where = f"row {i + 1}"
    if not isinstance(row, dict):
        raise DataError(path, f"{where} should be a JSON object, got {_short(row)}")
    for key in ("method", "task"):
        if key not in row:
            raise DataError(path, f"{where} has no '{key}'")
    for key in ("p", "hs", "fa"):
        if key not in row:
            raise DataError(path, f"{where} has no '{key}' (null when not measured)")
    for keys, ok, kind in ((_TEXT, lambda v: isinstance(v, str), "a string"),
                           (_INTEGER, lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
                           (_NUMBER, _is_number, "a finite number")):
        for key in keys:
            v = row.get(key)
            if v is not None and not ok(v):
                raise DataError(path, f"{where}: '{key}' should be {kind} or null, got {_short(v)}")
    if not isinstance(row["method"], str) or not isinstance(row["task"], str):
        raise DataError(path, f"{where}: 'method' and 'task' must be strings")
    if row["p"] is not None:
        if not 0 <= row["p"] <= 1:
            raise DataError(path, f"{where}: 'p' should be a share between 0 and 1, got {_short(row['p'])}")
        for key in ("n", "seed"):  # an attacked run is one cell of the grid
            if row.get(key) is None:
                raise DataError(path, f"{where}: an attacked run (p={row['p']:g}) needs an integer '{key}'")


def check_summary(path: Path, rows) -> list[dict]:
    if not isinstance(rows, list):
        raise DataError(path, f"should be a JSON list of run rows, got {type(rows).__name__}")
    if not rows:
        raise DataError(path, "has no rows: the run has not finished any cell")
    for i, row in enumerate(rows):
        _check_row(path, i, row)
    if not any(r["p"] is not None for r in rows):
        raise DataError(path, "has no attacked run (every row has p null)")
    return rows


def check_histories(path: Path, histories) -> dict:
    if not isinstance(histories, dict):
        raise DataError(path, f"should be a JSON object, got {type(histories).__name__}")
    runs = histories.get("attack", [])
    if not isinstance(runs, list):
        raise DataError(path, "'attack' should be a list of runs")
    for i, run in enumerate(runs):
        where = f"attack run {i + 1}"
        if not isinstance(run, dict):
            raise DataError(path, f"{where} should be a JSON object")
        for key, ok in (("method", lambda v: isinstance(v, str)), ("task", lambda v: isinstance(v, str)),
                        ("n", lambda v: isinstance(v, int) and not isinstance(v, bool)), ("p", _is_number),
                        ("history", lambda v: isinstance(v, list))):
            if not ok(run.get(key)):
                raise DataError(path, f"{where}: '{key}' is missing or has the wrong type")
        for j, point in enumerate(run["history"]):
            if not isinstance(point, dict):
                raise DataError(path, f"{where}, history entry {j + 1} should be a JSON object")
            probes = [k for k in _PROBES if k in point]
            if probes and not all(_is_number(point.get(k)) for k in ("step", *probes)):
                raise DataError(path, f"{where}, history entry {j + 1}: 'step' and the probe losses must be numbers")
    return histories


def check_protocol(path: Path, protocol) -> dict:
    """The report reads the protocol leniently (a missing key prints '?'), but its parts must
    have the shapes it reads."""
    if not isinstance(protocol, dict):
        raise DataError(path, f"should be a JSON object, got {type(protocol).__name__}")
    for key in ("config", "judge"):
        if protocol.get(key) is not None and not isinstance(protocol[key], dict):
            raise DataError(path, f"'{key}' should be a JSON object")
    judge = protocol.get("judge") or {}
    if judge.get("threshold") is not None and not _is_number(judge["threshold"]):
        raise DataError(path, "'judge.threshold' should be a number")
    test = judge.get("hand_labeled_test")
    if test and not (isinstance(test, dict) and all(_is_number(test.get(k)) for k in ("n", "accuracy", "fnr", "fpr"))):
        raise DataError(path, "'judge.hand_labeled_test' should hold numbers n, accuracy, fnr and fpr")
    if protocol.get("stages") is not None and not isinstance(protocol["stages"], list):
        raise DataError(path, "'stages' should be a list of stage records")
    return protocol


def check_hand_scores(path: Path, hand) -> dict:
    """``hand-scores.json`` (optional; a labeling round writes it beside a grid): the numbers the
    report's hand-score table reads, per labeled run."""
    if not isinstance(hand, dict) or not isinstance(hand.get("runs"), dict):
        raise DataError(path, "should be a JSON object with 'runs', one entry per labeled run")
    for run, r in hand["runs"].items():
        if not isinstance(r, dict):
            raise DataError(path, f"run {run!r} should be a JSON object")
        for key in ("labeled", "of", "hs_by_reading", "hs_by_judge_same_answers", "hs_by_judge_all", "judge_accuracy"):
            if not _is_number(r.get(key)):
                raise DataError(path, f"run {run!r}: '{key}' should be a number")
        ci = r.get("hs_by_reading_95ci")
        if not (isinstance(ci, list) and len(ci) == 2 and all(_is_number(x) for x in ci)):
            raise DataError(path, f"run {run!r}: 'hs_by_reading_95ci' should be two numbers")
        for key in ("judge_fnr", "judge_fpr"):
            if r.get(key) is not None and not _is_number(r[key]):
                raise DataError(path, f"run {run!r}: '{key}' should be a number or null")
    return hand


def load_run(run_dir) -> tuple[list[dict], dict, dict]:
    """(summary rows, histories, protocol) of a run folder, each checked for what the report reads."""
    out = Path(run_dir)
    if not out.exists():
        raise BoosterError(f"'{out}' does not exist (expected a run folder written by 'booster run')")
    if not out.is_dir():
        raise BoosterError(f"'{out}' is a file, not a run folder (give the folder that holds summary.json)")
    files = {name: out / f"{name}.json" for name in NAMES}
    data = {name: _read(path) for name, path in files.items()}
    if (out / HAND_SCORES).exists():  # optional, but checked before anything is written
        check_hand_scores(out / HAND_SCORES, _read(out / HAND_SCORES))
    return (check_summary(files["summary"], data["summary"]),
            check_histories(files["histories"], data["histories"]),
            check_protocol(files["protocol"], data["protocol"]))
