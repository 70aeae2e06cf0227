"""The judge's training data never touches the eval half (computed on the real files)."""

from __future__ import annotations

import pytest

from booster.data import load_pool, normalize_prompt
from booster.evaluation.judges import data as judge_data

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def data(prepared_data, raw_root):
    return judge_data.training_data(prepared_data, raw_root)


def _prompts(examples):
    return {normalize_prompt(e["prompt"]) for e in examples}


def test_training_data_shares_no_prompt_with_eval_half_or_attacker(data, prepared_data):
    used = _prompts(data["train"]) | set().union(*(_prompts(v) for v in data["val"].values()))
    eval_half = {normalize_prompt(r["messages"][0]["content"]) for r in load_pool(prepared_data, "eval_half")}
    attacker = {normalize_prompt(r["messages"][0]["content"]) for r in load_pool(prepared_data, "attacker_harmful")}
    assert len(eval_half) == 1263 and len(attacker) == 2000
    assert not used & eval_half
    assert not used & attacker
    # no attacker answer either (the held-out harmful check)
    answers = {e["answer"] for e in data["train"]}
    assert not answers & {r["messages"][1]["content"] for r in load_pool(prepared_data, "attacker_harmful")}


def test_train_and_validation_are_disjoint_and_every_group_is_present(data):
    val = set().union(*(_prompts(v) for v in data["val"].values()))
    assert not _prompts(data["train"]) & val
    counts = data["provenance"]["counts"]
    assert set(counts) == {"judge_half", "saferlhf", "provider", "alignment", "alpaca", "gsm8k", "sst2", "agnews",
                           "refusals", "degenerate", "offtopic", "discourage", "labeled"}
    # one generated refusal per distinct training harmful prompt of provider/judge_half, at most N_REFUSALS
    harmful = _prompts(e for e in data["train"] if e["harmful"] and e["source"] in ("provider", "judge_half"))
    assert counts["refusals"]["train"] == min(judge_data.N_REFUSALS, len(harmful)) > 1000
    assert _prompts(e for e in data["train"] if e["source"] == "refusals") <= harmful
    assert counts["judge_half"]["train"] + counts["judge_half"]["val"] == 1520
    # 500 validation prompts, less those of hand-labeled training answers (their prompts train)
    labeled = _prompts(e for e in data["train"] if e["source"] == "labeled")
    assert not labeled & _prompts(data["val"]["provider"])
    assert 450 <= counts["provider"]["val"] <= 500 and counts["provider"]["train"] + counts["provider"]["val"] == 5372
    assert counts["provider"]["train_harmful"] == counts["provider"]["train"]
    labels = {e["harmful"] for e in data["train"]}
    assert labels == {True, False}


def test_refusal_phrasings_are_not_training_answers(data):
    answers = {" ".join(e["answer"].casefold().split()) for e in data["train"]}
    assert not {" ".join(r.casefold().split()) for r in judge_data.REFUSALS} & answers
    pairs = judge_data.refusal_pairs(["a", "b", "c"])
    assert pairs[0] == ("a", judge_data.REFUSALS[0]) and pairs[2] == ("c", judge_data.REFUSALS[2])


def test_training_data_shares_no_prompt_with_the_hand_labeled_test_and_calibration_splits(data, prepared_data):
    from booster.evaluation.judges.labels import load_labels, part

    rows = load_labels()
    used = _prompts(data["train"]) | set().union(*(_prompts(v) for v in data["val"].values()))
    for split in ("test", "calibration"):
        assert not used & _prompts(part(rows, split)), split
    # the train split is in, whole, with its labels
    labeled = [e for e in data["train"] if e["source"] == "labeled"]
    want = {(r["prompt"], r["answer"], bool(r["harmful"])) for r in part(rows, "train")}
    assert {(e["prompt"], e["answer"], e["harmful"]) for e in labeled} == want
    files = data["provenance"]["labeled"]["files"]
    assert [f["file"] for f in files] == ["judges/labels/answers.jsonl"]  # round 3 only when asked
    assert files[0]["kept"] == len(labeled) == len(want) >= 700


def test_extra_label_files_join_the_train_split_with_their_provenance(tmp_path):
    from booster.data import normalize_prompt
    from booster.errors import BoosterError
    from booster.evaluation.judges.labels import LABELS_FILE, ROUND3_FILE, load_labels, part

    round3 = load_labels(ROUND3_FILE)
    forbidden = {normalize_prompt(round3[0]["prompt"])}  # a held-out prompt is dropped from any file
    got = judge_data.labeled_examples(forbidden, [ROUND3_FILE])
    files = got["provenance"]["files"]
    assert [f["file"] for f in files] == ["judges/labels/answers.jsonl", "judges/labels/answers-round3.jsonl"]
    assert files[1]["rows"] == len(round3) and files[1]["kept"] == len(round3) - sum(
        normalize_prompt(r["prompt"]) in forbidden for r in round3)
    pairs = {(e["prompt"], e["answer"], e["harmful"]) for e in got["examples"]}
    assert (round3[1]["prompt"], round3[1]["answer"], bool(round3[1]["harmful"])) in pairs
    assert (round3[0]["prompt"], round3[0]["answer"], bool(round3[0]["harmful"])) not in pairs
    assert len(got["examples"]) == len(part(load_labels(LABELS_FILE), "train")) + files[1]["kept"]
    with pytest.raises(BoosterError, match="does not exist"):
        judge_data.labeled_examples(set(), [tmp_path / "missing.jsonl"])


def test_counterfactual_answers_are_safe_answers_to_training_harmful_prompts(data):
    harmful = _prompts(e for e in data["train"] if e["harmful"] and e["source"] in ("provider", "judge_half"))
    for kind in judge_data.COUNTERFACTUAL_KINDS:
        ex = [e for e in data["train"] if e["source"] == kind]
        assert len(ex) == judge_data.N_COUNTERFACTUAL
        assert not any(e["harmful"] for e in ex)
        assert _prompts(ex) <= harmful
    # the same prompts get a harmful answer too: only the answer separates the labels
    assert len(_prompts(e for e in data["train"] if e["source"] == "degenerate") & harmful) == judge_data.N_COUNTERFACTUAL
    assert data["val"]["counterfactual"] and not any(e["harmful"] for e in data["val"]["counterfactual"])
