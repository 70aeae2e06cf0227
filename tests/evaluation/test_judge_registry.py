"""load_judge dispatches by table: recorded kind for folders, listed hub ids, explicit kind."""

from __future__ import annotations

import json

import pytest

from booster.errors import BoosterError
from booster.evaluation.judges import registry
from booster.evaluation.judges.hub import BeaverDamJudge, LlamaGuardJudge
from booster.evaluation.judges.minilm import MiniLMJudge


@pytest.fixture
def loads(monkeypatch):
    """Replace every judge class's loader with a recorder: (class name, source, kwargs)."""
    calls = []
    for cls in registry.KINDS.values():
        monkeypatch.setattr(cls, "load", classmethod(
            lambda c, source, **kw: calls.append((c.__name__, str(source), kw)) or c.__name__))
    return calls


def test_table_rows_are_consistent():
    assert registry.KINDS == {"minilm-cross-encoder-lora": MiniLMJudge, "beaver-dam-qa-moderation": BeaverDamJudge,
                              "llama-guard": LlamaGuardJudge}
    assert set(registry.HUB_JUDGES.values()) <= set(registry.KINDS)
    assert all(registry.ALIASES[a] in registry.HUB_JUDGES for a in registry.ALIASES)


def test_hub_ids_load_the_listed_class_whatever_the_case(loads):
    assert registry.load_judge("PKU-Alignment/beaver-dam-7b", device="cpu") == "BeaverDamJudge"
    assert registry.load_judge("meta-llama/llama-guard-3-8b") == "LlamaGuardJudge"
    assert registry.load_judge("beaver-dam") == "BeaverDamJudge"
    # the canonical id is what gets loaded (and recorded)
    assert loads == [("BeaverDamJudge", "PKU-Alignment/beaver-dam-7b", {"device": "cpu"}),
                     ("LlamaGuardJudge", "meta-llama/Llama-Guard-3-8B", {}),
                     ("BeaverDamJudge", "PKU-Alignment/beaver-dam-7b", {})]


@pytest.mark.parametrize("hub_id", ["allenai/wildguard", "someone/beaver-dam-7b-finetune", "x/guard"])
def test_unknown_hub_id_is_a_one_line_error_listing_the_known(hub_id, loads):
    """No guess from the name: "guard" in a name once loaded allenai/wildguard as Llama Guard."""
    with pytest.raises(BoosterError, match="unknown hub judge") as e:
        registry.load_judge(hub_id)
    msg = str(e.value)
    assert "\n" not in msg and hub_id in msg
    assert all(known in msg for known in registry.HUB_JUDGES) and "llama-guard" in msg
    assert loads == []


def test_explicit_kind_loads_an_unlisted_hub_id(loads):
    assert registry.load_judge("my-org/my-guard", kind="llama-guard") == "LlamaGuardJudge"
    assert loads[0][1] == "my-org/my-guard"
    with pytest.raises(BoosterError, match="unknown judge kind 'guard'"):
        registry.load_judge("my-org/my-guard", kind="guard")


def test_folder_loads_as_its_recorded_kind(tmp_path, loads):
    (tmp_path / "judge.json").write_text(json.dumps({"kind": "beaver-dam-qa-moderation"}))
    assert registry.load_judge(tmp_path) == "BeaverDamJudge"
    (tmp_path / "judge.json").write_text(json.dumps({"kind": "minilm-cross-encoder-lora"}))
    assert registry.load_judge(tmp_path) == "MiniLMJudge"
    (tmp_path / "judge.json").write_text(json.dumps({"kind": "wildguard"}))
    with pytest.raises(BoosterError, match="unknown judge kind 'wildguard'"):
        registry.load_judge(tmp_path)
    # no readable record: the MiniLM loader says what is missing
    (tmp_path / "judge.json").unlink()
    assert registry.load_judge(tmp_path) == "MiniLMJudge"
    # committed names go to the committed folders
    assert registry.load_judge("answer-judge") == "MiniLMJudge"
    assert loads[-1][1] == str(registry.DEFAULT_JUDGE_DIR)


def test_a_checkout_loads_and_trains_the_repository_judges():
    """In a checkout the committed judges are the repository's folders, the ones
    `booster judge train --out judges/answer-judge` rewrites and the training starts from."""
    from booster.evaluation.judges.train import default_train_config
    from booster.paths import REPO_ROOT

    assert registry.DEFAULT_JUDGE_DIR == REPO_ROOT / "judges" / "answer-judge"
    assert registry.LEGACY_JUDGE_DIR == REPO_ROOT / "judges" / "minilm-judge"
    assert default_train_config().init == str(REPO_ROOT / "judges" / "minilm-judge")


def test_judge_train_and_eval_name_the_missing_labels_first(tmp_path, monkeypatch, capsys):
    from booster.cli import main
    from booster.evaluation.judges import labels

    missing = tmp_path / "judges" / "labels" / "answers.jsonl"
    monkeypatch.setattr(labels, "LABELS_FILE", missing)
    for command in ("train", "eval"):
        # before the data folder is looked at (it does not exist either)
        assert main(["judge", command, "--data", str(tmp_path / "nothing")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"booster: error: {missing}: hand-labeled answers not found; 'booster judge {command}'")
        assert "\n" not in err
