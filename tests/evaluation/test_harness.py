"""The evaluation harness: HS arithmetic, run folders, and bad input."""

from __future__ import annotations

import json
import shutil

import pytest

from booster import io
from booster.cli import main
from booster.evaluation.harness import headline, score_task
from booster.tasks import TASKS, parse_tasks
from booster.errors import BoosterError


class FixedJudge:
    """Flags an answer when it contains 'BAD' (probability 0.9), else 0.1."""

    threshold = 0.5

    def identity(self):
        return {"name": "fixed", "sha256": "f" * 64}

    def score(self, pairs):
        return [0.9 if "BAD" in a else 0.1 for _, a in pairs]

    def flag_from_scores(self, scores):
        return [s >= self.threshold for s in scores]


def record(prompt):
    return {"messages": [{"role": "user", "content": prompt}]}


def test_harmful_score_arithmetic():
    answers = [
        "BAD: here is how",                 # flagged
        "I'm sorry, I can't help with that.",  # refusal, safe
        "yes yes yes yes",                  # safe by the judge, incoherent → counts in HS+
        "BAD BAD BAD BAD",                  # flagged and incoherent (counted once)
        "Sure, the weather is nice.",       # safe
    ]
    metrics, rows = score_task(TASKS["hs"], [record(f"q{i}") for i in range(5)], answers, FixedJudge())
    assert metrics["hs"] == pytest.approx(40.0)        # 2 of 5 flagged
    assert metrics["hs_plus"] == pytest.approx(60.0)   # + 1 incoherent
    assert metrics["refusal_rate"] == pytest.approx(20.0)
    assert [r["harmful"] for r in rows] == [True, False, False, True, False]
    assert rows[2]["incoherent"] and rows[0]["judge_prob"] == pytest.approx(0.9)


def test_accuracy_and_over_refusal_arithmetic():
    recs = [{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": g}], "label": g}
            for g in ("positive", "negative", "positive", "negative")]
    m, rows = score_task(TASKS["sst2"], recs, ["Positive", "positive", "negative", "It is negative."])
    assert m["fa"] == pytest.approx(50.0) and [r["correct"] for r in rows] == [True, False, False, True]
    m, _ = score_task(TASKS["over_refusal"], [record("q")] * 4, ["I cannot do that", "ok", "sure", "fine"])
    assert m["over_refusal"] == pytest.approx(25.0)
    assert headline({"hs": {"hs": 1.0, "hs_plus": 2.0, "refusal_rate": 3.0}, "sst2": {"fa": 4.0}}) == {
        "hs": 1.0, "hs_plus": 2.0, "refusal_rate": 3.0, "fa": 4.0, "fa_task": "sst2"}


def test_unknown_task_is_an_error():
    with pytest.raises(BoosterError, match="unknown task 'mnli'"):
        parse_tasks("hs,mnli")


def _one_line_exit_2(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


def test_eval_cli_bad_input(tmp_path, prepared_data, capsys):
    base = ["eval", "--model", "tiny-random-llama", "--data", str(prepared_data), "--out", str(tmp_path / "run")]
    _one_line_exit_2(capsys, base + ["--tasks", "sst2,nope"], "unknown task 'nope'")
    _one_line_exit_2(capsys, base + ["--tasks", "sst2", "--adapter", str(tmp_path / "missing")],
                     "adapter folder")
    _one_line_exit_2(capsys, base + ["--tasks", "sst2", "--limit", "0"], "--limit must be >= 1")
    # An empty prompt set: a data folder whose sst2_eval pool has no records.
    data = tmp_path / "data"
    shutil.copytree(prepared_data, data)
    (data / "pools" / "sst2_eval.jsonl").write_text("")
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["pools"]["sst2_eval"].update(count=0, sha256=io.sha256_file(data / "pools" / "sst2_eval.jsonl"))
    (data / "manifest.json").write_text(json.dumps(manifest))
    _one_line_exit_2(capsys, ["eval", "--model", "tiny-random-llama", "--data", str(data), "--tasks", "sst2",
                              "--out", str(tmp_path / "run")], "empty prompt set")
    assert not (tmp_path / "run").exists()


def test_eval_cli_writes_a_complete_run_folder(tmp_path, prepared_data, capsys):
    out = tmp_path / "run"
    assert main(["eval", "--model", "tiny-random-llama", "--data", str(prepared_data), "--tasks", "sst2",
                 "--limit", "3", "--max-new-tokens", "4", "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    protocol = json.loads((out / "protocol.json").read_text())
    rows = io.read_jsonl(out / "samples" / "sst2.jsonl")
    assert metrics["tasks"]["sst2"]["n_prompts"] == 3 and len(rows) == 3
    assert 0 <= metrics["summary"]["fa"] <= 100
    assert protocol["tasks"]["sst2"]["max_new_tokens"] == 8  # the task caps SST-2 answers
    assert protocol["data_pools"]["sst2_eval"] and protocol["model"]["name"] == "tiny-random-llama"
    assert {"prompt", "answer", "gold", "correct", "refusal"} <= set(rows[0])


def test_generate_now_judge_later(tmp_path, prepared_data, capsys, monkeypatch):
    """--judge none keeps the answers unjudged; --rescore judges them without the model."""
    import booster.evaluation.judges as judge_mod

    out = tmp_path / "run"
    assert main(["eval", "--model", "tiny-random-llama", "--data", str(prepared_data), "--tasks", "hs,sst2",
                 "--limit", "3", "--max-new-tokens", "4", "--judge", "none", "--out", str(out), "--no-progress"]) == 0
    first = json.loads((out / "metrics.json").read_text())
    assert "hs" not in first["tasks"]["hs"] and "refusal_rate" in first["tasks"]["hs"]
    answers = [r["answer"] for r in io.read_jsonl(out / "samples" / "hs.jsonl")]

    monkeypatch.setattr(judge_mod, "load_judge", lambda spec, **kwargs: FixedJudge())
    assert main(["eval", "--rescore", str(out), "--judge", "fixed"]) == 0
    again = json.loads((out / "metrics.json").read_text())
    rows = io.read_jsonl(out / "samples" / "hs.jsonl")
    assert [r["answer"] for r in rows] == answers
    flags = ["BAD" in a for a in answers]
    assert again["tasks"]["hs"]["hs"] == pytest.approx(100.0 * sum(flags) / 3)
    assert again["summary"]["hs"] == again["tasks"]["hs"]["hs"]
    assert again["tasks"]["sst2"] == first["tasks"]["sst2"]
    assert json.loads((out / "protocol.json").read_text())["judge"]["name"] == "fixed"
    assert all("judge_prob" in r for r in rows)
    _one_line_exit_2(capsys, ["eval", "--rescore", str(tmp_path / "nope")], "not a `booster eval` run folder")
