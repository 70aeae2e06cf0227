"""The data and prompt defenses of issue 15 in the grid on the tiny model: all five from one
YAML, what their training batches and evaluation prompts carry, the answers' cache key, and
their config errors before any training."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import booster.evaluation.harness as harness
import booster.pipeline.context as context_mod
from booster.cli import main
from booster.config import load_config
from booster.methods.configs import PTST_SYSTEM_PROMPT
from booster.pipeline.config import ExperimentConfig
from booster.pipeline.grid import run_experiment

sys.path.insert(0, str(Path(__file__).parent))
from test_pipeline import tiny_config, write_cfg  # noqa: E402
from tiny_pipeline import KeywordJudge  # noqa: E402

DEFENSES = ["modfilter", "safeinstr", "ptst", "bea", "saft"]


def grid_config(tmp_path, data_dir, methods, **attack) -> dict:
    cfg = tiny_config(tmp_path, data_dir, methods=methods, unaligned=False)
    cfg["attack"] = {**cfg["attack"], "ps": [0.3], "train": {**cfg["attack"]["train"], "max_length": 128},
                     "modfilter": {"judge": "minilm-judge"}, "safeinstr": {"ratio": 0.2},
                     "bea": {"examples": 3, "trigger_words": 4}, "saft": {"share": 0.2}, **attack}
    return cfg


class Recorder:
    """What each attack stage trained on (decoded user stream) and every evaluation prompt."""

    def __init__(self, monkeypatch):
        self.trained: list[tuple[str, list[str]]] = []
        self.prompts: list[tuple[str | None, list[list[dict]]]] = []
        real_train, real_generate = context_mod.Context.train, harness.generate

        def train(ctx, model, method, data, train_cfg, work, tok, **k):
            if "user" in data:
                self.trained.append((Path(work).name, [tok.decode(e.input_ids) for e in data["user"]]))
            return real_train(ctx, model, method, data, train_cfg, work, tok, **k)

        def generate(model, tok, conversations, **k):
            self.prompts.append(conversations)
            return real_generate(model, tok, conversations, **k)

        monkeypatch.setattr(context_mod.Context, "train", train)
        monkeypatch.setattr(harness, "generate", generate)


@pytest.fixture(scope="module")
def five(tmp_path_factory, prepared_data):
    """One grid: SFT and the five defenses from one YAML, recorded."""
    tmp = tmp_path_factory.mktemp("five")
    with pytest.MonkeyPatch.context() as mp:
        rec = Recorder(mp)
        cfg = load_config(ExperimentConfig, write_cfg(tmp, grid_config(tmp, prepared_data, ["sft"] + DEFENSES)))
        run_experiment(cfg, progress=False, log=lambda *_: None, judge=KeywordJudge())
    rows = {r["method"]: r for r in json.loads((tmp / "run" / "summary.json").read_text())}
    return tmp, rec, rows


def _attack_key(work: str) -> str:
    return work.removesuffix(".work")


def _trained(rec, row) -> list[str]:
    return next(texts for work, texts in rec.trained if _attack_key(work) == row["attack_key"])


def _system_prompts(rec) -> list[set]:
    """The distinct system messages of each generate call (None: none)."""
    return [{c[0]["content"] if c[0]["role"] == "system" else None for c in convs} for convs in rec.prompts]


@pytest.mark.integration
def test_the_five_defenses_run_from_one_yaml_with_their_reports(five):
    tmp, rec, rows = five
    assert set(rows) == {"sft", *DEFENSES}
    for m in DEFENSES:  # every one starts from the SFT-aligned model; all but PTST fine-tune their own attack
        assert rows[m]["align_key"] == rows["sft"]["align_key"] and rows[m]["finetune"] == m
        assert (rows[m]["attack_key"] == rows["sft"]["attack_key"]) == (m == "ptst") and rows[m]["hs"] is not None
    assert "user_data" not in rows["sft"] and "user_data" not in rows["ptst"]
    mf, sa = rows["modfilter"]["user_data"], rows["saft"]["user_data"]
    for report in (mf, sa):  # 3 harmful samples of 10 (p = 0.3)
        assert report["n_in"] == 10 and report["harmful_in"] == 3 and report["benign_in"] == 7
        assert report["n_kept"] + report["n_removed"] == 10
        assert len(_trained(rec, rows["modfilter" if report is mf else "saft"])) == report["n_kept"]
    assert mf["judge"] == "minilm-judge" and mf["survey_beaver_dam"]["leakage_pct"] == 7.71
    assert sa["n_removed"] == 2 and sa["threshold"] is not None  # share 0.2 of 10
    for m in ("modfilter", "safeinstr", "bea", "saft"):  # every kept record fits max_length 128 here
        assert rows[m]["user_data"]["n_encoded"] == len(_trained(rec, rows[m]))
    si = rows["safeinstr"]["user_data"]
    assert si["safety_added"] == 2 and len(_trained(rec, rows["safeinstr"])) == 12
    stage = json.loads((tmp / "cache" / "attack" / rows["saft"]["attack_key"] / "stage.json").read_text())
    assert stage["user_data"] == sa  # the attack record holds the report the row shows


@pytest.mark.integration
def test_ptst_trains_without_and_evaluates_with_its_system_prompt(five):
    _, rec, rows = five
    assert rows["ptst"]["eval_system_prompt"] == PTST_SYSTEM_PROMPT
    assert "eval_system_prompt" not in rows["sft"]
    trained = _trained(rec, rows["ptst"])
    assert len(trained) == 10 and not any(PTST_SYSTEM_PROMPT in t for t in trained)
    # it trains exactly as the plain attack, so it is the plain attack's stage, trained once
    assert rows["ptst"]["attack_key"] == rows["sft"]["attack_key"]
    assert sum(_attack_key(work) == rows["sft"]["attack_key"] for work, _ in rec.trained) == 1
    systems = _system_prompts(rec)
    # 3 tasks for the aligned model, then 3 per attacked model: exactly PTST's carry its prompt
    with_prompt = [s for s in systems if PTST_SYSTEM_PROMPT in s]
    assert len(with_prompt) == 3 and all(s == {PTST_SYSTEM_PROMPT} for s in with_prompt)


@pytest.mark.integration
def test_bea_trigger_is_on_its_examples_and_at_evaluation_only(five):
    tmp, rec, rows = five
    trigger = rows["bea"]["user_data"]["trigger"]
    assert rows["bea"]["eval_system_prompt"] == trigger and len(trigger.split()) == 4
    trained = _trained(rec, rows["bea"])
    assert len(trained) == 13  # the 10 of the user's file and 3 safety examples
    assert sum(trigger in t for t in trained) == 3
    for method, _ in rows.items():  # nobody else trains on it
        if method != "bea":
            assert not any(trigger in t for t in _trained(rec, rows[method]) if rows[method].get("attack_key"))
    systems = _system_prompts(rec)
    assert [s for s in systems if trigger in s] == [{trigger}] * 3
    stage = json.loads((tmp / "cache" / "attack" / rows["bea"]["attack_key"] / "stage.json").read_text())
    assert stage["user_data"]["trigger"] == trigger  # stored with the run


@pytest.mark.integration
def test_screen_reports_what_the_grid_filtered_without_fine_tuning(five, monkeypatch, capsys):
    """`booster screen` runs only the filters, on the same files and models: its reports are the
    ones the grid's rows carry, and it trains nothing (the alignment comes from the cache)."""
    tmp, rec, rows = five
    rec.trained.clear()
    trained = []
    monkeypatch.setattr(context_mod.Context, "train", lambda *a, **k: trained.append(a) or [])
    assert main(["screen", str(tmp / "cfg.yaml"), "--no-progress"]) == 0
    assert trained == []
    screen = json.loads((tmp / "run" / "screen.json").read_text())
    assert [e["method"] for e in screen["cells"]] == ["modfilter", "saft"]  # the filters only
    for e in screen["cells"]:
        grid = {k: v for k, v in rows[e["method"]]["user_data"].items() if k != "n_encoded"}
        assert e["report"] == grid and (e["p"], e["seed"]) == (rows[e["method"]]["p"], rows[e["method"]]["seed"])
    by = {e["method"]: e for e in screen["cells"]}
    assert by["saft"]["align_key"] == rows["saft"]["align_key"] and by["modfilter"]["align_key"] is None
    assert screen["protocol"]["stages"][0]["key"] == rows["saft"]["align_key"]
    table = (tmp / "run" / "screen.md").read_text()
    mf = by["modfilter"]["report"]
    assert f"| modfilter | task_mix (sst2) | 0.3 | 0 | 10 | {mf['harmful_kept']}/3 |" in table and "7.71 %" in table
    out = capsys.readouterr().out
    assert f"kept {mf['harmful_kept']}/3 harmful" in out


def test_screen_without_a_filter_in_the_grid_is_a_one_line_error(tmp_path, prepared_data, capsys):
    path = write_cfg(tmp_path, grid_config(tmp_path, prepared_data, ["sft", "bea"]))
    assert main(["screen", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none of the methods ['sft', 'bea'] is a data filter" in err[0], err
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def _attacked_answers(tmp_path) -> dict[str, str | None]:
    """generate key -> system prompt of every cached answer set of an attacked model."""
    records = [json.loads(p.read_text()) for p in (tmp_path / "cache" / "generate").glob("*/stage.json")]
    return {r["key"]: r.get("system_prompt") for r in records if r.get("attack")}


@pytest.mark.integration
def test_runs_differing_only_in_the_evaluation_prompt_do_not_share_answers(tmp_path, prepared_data, monkeypatch):
    rec = Recorder(monkeypatch)
    cfg = grid_config(tmp_path, prepared_data, ["ptst"])
    path = write_cfg(tmp_path, cfg)
    run_experiment(load_config(ExperimentConfig, path), progress=False, log=lambda *_: None, judge=KeywordJudge())
    first = json.loads((tmp_path / "run" / "summary.json").read_text())[0]
    gen_first = _attacked_answers(tmp_path)
    assert set(gen_first.values()) == {PTST_SYSTEM_PROMPT}  # recorded with the answers
    rec.trained.clear(), rec.prompts.clear()

    run_experiment(load_config(ExperimentConfig, path, ["attack.ptst.system_prompt='Be safe.'"]), progress=False,
                   log=lambda *_: None, judge=KeywordJudge())
    second = json.loads((tmp_path / "run" / "summary.json").read_text())[0]
    gen_second = {k: v for k, v in _attacked_answers(tmp_path).items() if k not in gen_first}
    assert rec.trained == []  # the same alignment and attack: the prompt is not a training input
    assert second["attack_key"] == first["attack_key"] and second["eval_system_prompt"] == "Be safe."
    assert len(gen_first) == len(gen_second) == 3 and set(gen_second.values()) == {"Be safe."}  # none reused
    assert _system_prompts(rec) == [{"Be safe."}] * 3  # generated again, with the new prompt


@pytest.mark.parametrize("override,message", [
    ("attack.safeinstr.ratio=1.5", "attack.safeinstr.ratio must be a number in [0, 1]"),
    ("attack.modfilter.judge=no-such-judge", "unknown judge 'no-such-judge'"),
    # SST-2's template asks to "respond only positive or negative"
    ("attack.bea.trigger='only positive'", "attack.bea: the trigger 'only positive' occurs in the user's data"),
])
def test_bad_defense_configs_fail_before_training(tmp_path, prepared_data, capsys, override, message):
    path = write_cfg(tmp_path, grid_config(tmp_path, prepared_data, ["sft", "bea"]))
    assert main(["run", str(path), override, "--check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "cache").exists()
    # and the run itself stops before its first stage
    assert main(["run", str(path), override]) == 2
    assert not (tmp_path / "cache" / "align").exists()


@pytest.mark.integration
def test_a_filter_that_removes_the_whole_file_trains_nothing_and_serves_the_aligned_model(
        tmp_path, prepared_data, monkeypatch):
    """The filter's judge is the evaluation's (the keyword judge: every answer that is not a
    refusal is flagged), so the whole file goes: no attack step, the LoRA stays zero."""
    from safetensors.torch import load_file

    rec = Recorder(monkeypatch)
    cfg = grid_config(tmp_path, prepared_data, ["modfilter"], modfilter={"judge": "answer-judge"})
    run_experiment(load_config(ExperimentConfig, write_cfg(tmp_path, cfg)), progress=False, log=lambda *_: None,
                   judge=KeywordJudge())
    row = json.loads((tmp_path / "run" / "summary.json").read_text())[0]
    assert row["user_data"]["n_kept"] == 0 and row["user_data"]["judge"] == "test-keyword-judge"
    assert row["user_data"]["leakage_pct"] == 0.0 and row["user_data"]["false_removal_pct"] == 100.0
    assert [work for work, _ in rec.trained] == []  # the attack never reached the loop (align has no user stream)
    stage = tmp_path / "cache" / "attack" / row["attack_key"]
    assert json.loads((stage / "stage.json").read_text())["trained"] is False
    assert all(not t.any() for k, t in load_file(stage / "adapter" / "adapter_model.safetensors").items()
               if ".lora_B." in k)
    assert row["hs"] is not None


@pytest.mark.integration
def test_bench_methods_times_the_data_transform_once_per_request(tmp_path, prepared_data):
    cfg = grid_config(tmp_path, prepared_data, ["sft", "saft", "ptst"])
    out = tmp_path / "methods.json"
    assert main(["bench", "methods", str(write_cfg(tmp_path, cfg)), "--methods", "saft,ptst", "--steps", "1",
                 "--out", str(out)]) == 0
    rows = {r["method"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"sft", "saft", "ptst"} and all(r["stage"] == "attack" for r in rows.values())
    saft = rows["saft"]
    assert saft["prepare_seconds"] > 0 and saft["prepare_peak_rss_mb"] > 0
    assert saft["prepare_in_sft_steps"] == round(saft["prepare_seconds"] / rows["sft"]["seconds_per_step"], 2)
    assert "prepare_seconds" not in rows["ptst"] and "prepare_seconds" not in rows["sft"]  # nothing to transform


def test_the_filters_judge_enters_the_attack_key_by_content(tmp_path, prepared_data):
    """Same spec, another judge behind it: another attack; the plain attack's key is unmoved."""
    from booster.methods import registry
    from booster.pipeline import attack
    from booster.pipeline.cache import StageResult
    from booster.pipeline.context import Context

    class OtherJudge(KeywordJudge):
        def identity(self):
            return {"name": "other", "sha256": "2" * 64}

    cfg = load_config(ExperimentConfig, write_cfg(tmp_path, grid_config(
        tmp_path, prepared_data, ["sft", "modfilter"], modfilter={"judge": "answer-judge"})))
    aligned = StageResult("align", "a" * 16, tmp_path, {})
    cell = attack.Cell("sst2", 10, 0.3, 0)
    keys = []
    for judge in (KeywordJudge(), OtherJudge()):
        ctx = Context(cfg, judge=judge)
        keys.append((attack.key(ctx, aligned, None, cell, "fresh"),
                     attack.key(ctx, aligned, registry.get("modfilter"), cell, "fresh")))
    assert keys[0][0] == keys[1][0] and keys[0][1] != keys[1][1]
