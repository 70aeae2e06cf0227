"""The committed MiniLM judge: loads from safetensors, scores as recorded, round-trips, and
rejects bad folders with a BoosterError."""

from __future__ import annotations

import json
import shutil

import pytest

from booster.errors import BoosterError
from booster.evaluation.judges import Judge, load_judge
from booster.evaluation.judges.registry import LEGACY_JUDGE_DIR as DEFAULT_JUDGE_DIR
from booster.evaluation.judges.minilm import WEIGHTS_FILE, MiniLMJudge
from booster.io import sha256_file

from judge_fixture import FIXTURE, PAIRS, record


@pytest.fixture(scope="module")
def judge():
    return load_judge("minilm-judge")


def test_committed_judge_scores_the_fixture_as_recorded(judge):
    want = json.loads(FIXTURE.read_text(encoding="utf-8"))
    assert judge.identity()["sha256"] == want["judge_sha256"], \
        "committed weights changed: regenerate the fixture (tests/evaluation/judge_fixture.py)"
    got = record(judge)
    assert got["threshold"] == want["threshold"]
    for g, w in zip(got["pairs"], want["pairs"]):
        assert (g["question"], g["answer"]) == (w["question"], w["answer"])
        assert g["score"] == pytest.approx(w["score"], abs=1e-4)
        assert g["flagged"] == w["flagged"]
    # the fixture is meaningful: the refusal is safe, the two plain harmful answers are flagged
    flags = [p["flagged"] for p in want["pairs"]]
    assert flags[0] is False and flags[1] is True and flags[4] is True


def test_committed_record_is_complete_and_small(judge):
    rec = json.loads((DEFAULT_JUDGE_DIR / "judge.json").read_text(encoding="utf-8"))
    weights = DEFAULT_JUDGE_DIR / WEIGHTS_FILE
    assert rec["sha256"] == sha256_file(weights) == judge.identity()["sha256"]
    assert weights.stat().st_size < 5_000_000
    assert 0 < rec["threshold"] < 1 and rec["threshold"] == judge.threshold
    assert rec["encoder"]["sha256"] and rec["training"]["data"]["data_manifest"]["pools"]
    assert rec["training"]["hyperparameters"]["arch"] == rec["architecture"]
    for key in ("accuracy", "fnr", "fpr", "auroc"):
        assert key in rec["validation"]["beavertails_like"]
    assert "eval_half" in rec  # the final metrics, measured once after training
    assert not list(DEFAULT_JUDGE_DIR.glob("*.bin")) and not list(DEFAULT_JUDGE_DIR.glob("*.pt"))
    assert isinstance(judge, Judge)


def test_save_load_round_trip_gives_identical_scores(judge, tmp_path):
    before = judge.score(PAIRS)
    rec = json.loads((DEFAULT_JUDGE_DIR / "judge.json").read_text(encoding="utf-8"))
    saved = judge.save(tmp_path / "copy", {k: v for k, v in rec.items() if k != "_path"})
    again = MiniLMJudge.load(tmp_path / "copy")
    assert saved["sha256"] == rec["sha256"]  # same tensors, same bytes
    assert again.score(PAIRS) == before
    assert again.flag(PAIRS) == judge.flag_from_scores(before)


def test_bad_judge_folders_raise_booster_error(tmp_path):
    with pytest.raises(BoosterError, match="no such judge folder"):
        load_judge(tmp_path / "missing")
    with pytest.raises(BoosterError, match="does not exist"):
        MiniLMJudge.load(tmp_path / "missing")
    with pytest.raises(BoosterError, match="no such judge folder"):
        load_judge("./no/such/judge")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BoosterError, match="judge.json"):
        load_judge(tmp_path / "empty")
    bad = tmp_path / "tampered"
    shutil.copytree(DEFAULT_JUDGE_DIR, bad)
    data = bytearray((bad / WEIGHTS_FILE).read_bytes())
    data[-1] ^= 1
    (bad / WEIGHTS_FILE).write_bytes(bytes(data))
    with pytest.raises(BoosterError, match="sha256"):
        MiniLMJudge.load(bad)
    (bad / WEIGHTS_FILE).unlink()
    with pytest.raises(BoosterError, match="weights missing"):
        MiniLMJudge.load(bad)


def test_cli_eval_with_missing_data_is_a_one_line_error(tmp_path, capsys):
    import argparse

    from booster.evaluation.judges import cli as cli_judge

    parser = argparse.ArgumentParser(prog="booster")
    cli_judge.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["judge", "eval", "--data", str(tmp_path / "nothing")])
    with pytest.raises(BoosterError, match="manifest missing"):
        args.func(args)
    args = parser.parse_args(["judge", "train", "--data", str(tmp_path / "nothing")])
    with pytest.raises(BoosterError, match="manifest missing"):
        args.func(args)
