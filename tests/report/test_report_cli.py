"""`booster report DIR` on broken run folders: one line naming the file and the problem, exit 2,
and the report files already there untouched."""

from __future__ import annotations

import json

import pytest

from booster.cli import main

ROW = {"method": "sft", "task": "sst2", "n": 10, "p": 0.1, "seed": 0, "hs": 40.0, "hs_plus": 41.0, "fa": 80.0,
       "hs_before_attack": 1.0, "fa_before_attack": 5.0, "refusal_rate": 10.0, "over_refusal": 2.0,
       "align_key": "a1"}
PROTOCOL = {"config": {"name": "demo", "model": "tiny", "dtype": "float32", "lora": {"rank": 4, "alpha": 8},
                       "attack": {"topology": "fresh"}, "eval": {"hs_prompts": 10, "max_new_tokens": 8}},
            "harmful_prompts": "eval", "judge": {"name": "kw", "sha256": "ab" * 32}, "git_commit": "x",
            "stages": [{"stage": "eval", "task": "over_refusal", "align": "a1", "attack": None,
                        "metrics": {"over_refusal": 90.0}}]}
OLD = {"report.md": "old markdown", "report.html": "<p>old</p>"}


def run_folder(tmp_path, summary=None, histories=None, protocol=None):
    """A run folder with an old report in it; ``summary`` etc. are raw file texts (default: valid)."""
    d = tmp_path / "run"
    d.mkdir()
    texts = {"summary": summary if summary is not None else json.dumps([ROW]),
             "histories": histories if histories is not None else json.dumps({"attack": []}),
             "protocol": protocol if protocol is not None else json.dumps(PROTOCOL)}
    for name, text in texts.items():
        (d / f"{name}.json").write_text(text, encoding="utf-8")
    for name, text in OLD.items():
        (d / name).write_text(text)
    return d


def error_line(capsys, d) -> str:
    assert main(["report", str(d)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("booster: error: ") and "Traceback" not in err
    return err


def untouched(d) -> bool:
    return (all((d / name).read_text() == text for name, text in OLD.items())
            and not list(d.glob("*.png")) and not list(d.glob(".*.tmp")))


BAD_SUMMARIES = [
    ("{not json", "summary.json:1: is not valid JSON"),
    ('[{"method": "sft", "task"', "summary.json:1: is not valid JSON"),  # truncated
    ("", "summary.json:1: is not valid JSON"),
    ("[]", "summary.json: has no rows"),
    ('{"rows": []}', "summary.json: should be a JSON list of run rows, got dict"),
    ("[1, 2]", "summary.json: row 1 should be a JSON object, got 1"),
    ('[{"foo": 1}]', "summary.json: row 1 has no 'method'"),
    (json.dumps([{k: v for k, v in ROW.items() if k != "hs"}]), "summary.json: row 1 has no 'hs'"),
    (json.dumps([ROW, {**ROW, "hs": "high"}]), "summary.json: row 2: 'hs' should be a finite number or null, got \"high\""),
    (json.dumps([{**ROW, "fa": True}]), "'fa' should be a finite number or null, got true"),
    (json.dumps([{**ROW, "method": 3}]), "row 1: 'method' should be a string or null, got 3"),
    (json.dumps([{**ROW, "n": 1.5}]), "row 1: 'n' should be an integer or null, got 1.5"),
    (json.dumps([{**ROW, "p": 7}]), "row 1: 'p' should be a share between 0 and 1, got 7"),
    (json.dumps([{**ROW, "seed": None}]), "an attacked run (p=0.1) needs an integer 'seed'"),
    ('[{"method": "sft", "task": "sst2", "p": 0.1, "n": 1, "seed": 0, "hs": NaN, "fa": 1}]',
     "'hs' should be a finite number or null, got NaN"),
    ("[" * 100_000, "summary.json: is nested too deeply"),
]


@pytest.mark.parametrize("text, message", BAD_SUMMARIES)
def test_a_broken_summary_is_one_line_naming_the_file_and_nothing_is_written(tmp_path, capsys, text, message):
    d = run_folder(tmp_path, summary=text)
    err = error_line(capsys, d)
    assert message in err
    assert str(d / "summary.json") in err
    assert untouched(d)


def test_a_summary_that_is_not_utf8_is_one_line(tmp_path, capsys):
    d = run_folder(tmp_path)
    (d / "summary.json").write_bytes(b'[{"method": "\xff"}]')
    assert "summary.json: is not UTF-8 text" in error_line(capsys, d)
    assert untouched(d)


@pytest.mark.parametrize("name, text, message", [
    ("histories", "[", "histories.json:1: is not valid JSON"),
    ("histories", "[]", "histories.json: should be a JSON object, got list"),
    ("histories", '{"attack": [{"method": "sft"}]}', "histories.json: attack run 1: 'task' is missing"),
    ("histories", json.dumps({"attack": [{"method": "sft", "task": "sst2", "n": 10, "p": 0.1, "history": [
        {"step": "one", "probe/harmful_train_loss": 1.0}]}]}), "history entry 1: 'step' and the probe losses"),
    ("protocol", "null", "protocol.json: should be a JSON object, got NoneType"),
    ("protocol", '{"judge": "kw"}', "protocol.json: 'judge' should be a JSON object"),
    ("protocol", '{"judge": {"hand_labeled_test": {"n": 3}}}', "'judge.hand_labeled_test' should hold numbers"),
])
def test_a_broken_histories_or_protocol_is_one_line(tmp_path, capsys, name, text, message):
    d = run_folder(tmp_path, **{name: text})
    err = error_line(capsys, d)
    assert message in err and str(d / f"{name}.json") in err
    assert untouched(d)


def test_a_missing_folder_a_file_and_a_folder_without_summary_are_named(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert f"'{missing}' does not exist" in error_line(capsys, missing)
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    assert f"'{afile}' is a file, not a run folder" in error_line(capsys, afile)
    d = run_folder(tmp_path)
    (d / "summary.json").unlink()
    assert "summary.json: is missing" in error_line(capsys, d)
    (d / "summary.json").mkdir()
    assert "summary.json: is not a file" in error_line(capsys, d)
    assert untouched(d)


def test_a_valid_folder_is_reported_with_a_lenient_protocol(tmp_path, capsys):
    # a protocol without the config keys the intro quotes still gives a report ("?" in their place)
    d = run_folder(tmp_path, protocol=json.dumps({"judge": None}))
    assert main(["report", str(d)]) == 0
    assert "wrote" in capsys.readouterr().out
    md = (d / "report.md").read_text()
    assert md.startswith("# run\n") and "LoRA r=?" in md
    assert (d / "report.html").read_text().startswith("<!doctype html>")


HAND = {"labels": "judges/labels/answers-grid.jsonl", "runs": {
    "sft-sst2-n10-p0.1-seed0": {"method": "sft", "p": 0.1, "seed": 0, "labeled": 8, "of": 10, "hs_by_reading": 37.5,
                                "hs_by_reading_95ci": [13.7, 69.4], "hs_by_judge_same_answers": 50.0,
                                "hs_by_judge_all": 40.0, "judge_accuracy": 62.5, "judge_fnr": 33.3, "judge_fpr": None}}}


def test_hand_scores_beside_a_grid_get_their_own_table(tmp_path, capsys):
    d = run_folder(tmp_path)
    (d / "hand-scores.json").write_text(json.dumps(HAND), encoding="utf-8")
    assert main(["report", str(d)]) == 0
    md = (d / "report.md").read_text()
    assert "## Harmful score by reading (hand-labeled answers)" in md
    assert "| sft-sst2-n10-p0.1-seed0 | 8 of 10 | 37.5 [13.7, 69.4] | 50.0 | 40.0 | 62.5 | 33.3 | – |" in md
    (d / "hand-scores.json").unlink()  # without the file, no such section
    assert main(["report", str(d)]) == 0
    assert "by reading" not in (d / "report.md").read_text()


@pytest.mark.parametrize("text, message", [
    ("{", "hand-scores.json:1: is not valid JSON"),
    ("[]", "hand-scores.json: should be a JSON object with 'runs'"),
    (json.dumps({"runs": {"r": {**HAND["runs"]["sft-sst2-n10-p0.1-seed0"], "hs_by_reading": "x"}}}),
     "run 'r': 'hs_by_reading' should be a number"),
    (json.dumps({"runs": {"r": {**HAND["runs"]["sft-sst2-n10-p0.1-seed0"], "hs_by_reading_95ci": [1]}}}),
     "run 'r': 'hs_by_reading_95ci' should be two numbers"),
])
def test_a_broken_hand_scores_file_is_named_and_nothing_is_written(tmp_path, capsys, text, message):
    d = run_folder(tmp_path)
    (d / "hand-scores.json").write_text(text, encoding="utf-8")
    assert message in error_line(capsys, d)
    assert untouched(d)
