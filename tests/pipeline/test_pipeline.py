"""The whole pipeline on the tiny random Llama: grid, cache reuse, report, bad configs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import booster.pipeline.context as context_mod
from booster.cli import main
from booster.config import load_config
from booster.pipeline.config import ExperimentConfig
from booster.pipeline.grid import SUMMARY_KEYS, run_experiment

sys.path.insert(0, str(Path(__file__).parent))
from tiny_pipeline import KeywordJudge  # noqa: E402


def tiny_config(tmp_path, data_dir, **over) -> dict:
    train = {"steps": 2, "lr": 1e-3, "batch_size": 2, "micro_batch_size": 2, "max_length": 48, "checkpoint_every": 1}
    cfg = {
        "name": "tiny", "model": "tiny-random-llama", "dtype": "float32", "methods": ["sft", "booster"],
        "lora": {"rank": 2, "alpha": 4, "target_modules": ["q_proj", "v_proj"]},
        "data": {"dir": str(data_dir)},
        "align": {"samples": 8, "harmful_samples": 8, "train": train},
        "attack": {"ns": [10], "ps": [0.0], "train": {**train, "probe_every": 1}, "probe_samples": 2},
        "eval": {"hs_prompts": 3, "fa_samples": 3, "over_refusal_prompts": 2, "max_new_tokens": 4, "batch_size": 4},
        "unaligned": True, "out": str(tmp_path / "run"), "cache": str(tmp_path / "cache"),
    }
    for key, value in over.items():
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) else value
    return cfg


def write_cfg(tmp_path, cfg: dict):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def train_calls(monkeypatch) -> list[str]:
    """The method name of every stage trained from now on, in order."""
    calls = []
    real_train = context_mod.Context.train

    def counting_train(self, *a, **k):
        calls.append(a[1].name)
        return real_train(self, *a, **k)

    monkeypatch.setattr(context_mod.Context, "train", counting_train)
    return calls


@pytest.mark.integration
def test_grid_runs_caches_and_resumes_without_redoing_stages(tmp_path, prepared_data, train_calls):
    path = write_cfg(tmp_path, tiny_config(tmp_path, prepared_data))
    calls = train_calls
    cfg = load_config(ExperimentConfig, path)
    run_experiment(cfg, progress=False, log=lambda *_: None, judge=KeywordJudge())
    assert calls == ["sft", "sft", "booster", "sft"]  # align sft, attack, align booster, attack
    rows = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [r["method"] for r in rows] == ["unaligned", "sft", "booster"]
    for r in rows[1:]:
        assert set(SUMMARY_KEYS) <= set(r) and r["p"] == 0.0 and r["n"] == 10
        assert 0 <= r["hs"] <= 100 and 0 <= r["fa"] <= 100
    # One p: no HS-against-p line, the before/after bars instead.
    assert not (tmp_path / "run" / "hs_vs_p-sst2-n10.png").exists()
    for name in ("report.md", "report.html", "before_after-sst2-n10.png", "attack_curves-sst2-n10.png", "protocol.json"):
        assert (tmp_path / "run" / name).is_file(), name
    protocol = json.loads((tmp_path / "run" / "protocol.json").read_text())
    assert protocol["judge"]["name"] == "test-keyword-judge" and "p_definition" in protocol
    assert protocol["data"]["pools"]["attacker_harmful"]["count"] > 0
    # every row names the judge of its HS, and the report says which judge under each HS table
    assert {r["judge_sha256"] for r in rows} == {protocol["judge"]["sha256"]}
    report = (tmp_path / "run" / "report.md").read_text()
    assert report.count("HS judged by `test-keyword-judge`") >= 3

    # A larger grid reuses both aligned models and the p=0 attacks: only the new p trains.
    calls.clear()
    cfg2 = load_config(ExperimentConfig, path, ["attack.ps=[0.0, 0.2]"])
    run_experiment(cfg2, progress=False, log=lambda *_: None, judge=KeywordJudge())
    assert calls == ["sft", "sft"]  # the two attacks at p=0.2
    rows = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert sorted((r["method"], r["p"]) for r in rows if r["p"] is not None) == [
        ("booster", 0.0), ("booster", 0.2), ("sft", 0.0), ("sft", 0.2)]
    history = json.loads((tmp_path / "run" / "runs" / "sft-sst2-n10-p0.2-seed0" / "history.json").read_text())
    assert "probe/harmful_train_loss" in history[-1] and "probe/harmful_test_loss" in history[0]


@pytest.mark.parametrize("override,message", [
    ("align.booster.lam=-1", "lam"),
    ("align.booster.alpha=0", "alpha"),
    ("attack.ps=[1.5]", "p must be in [0, 1]"),
    ("attack.bogus=1", "unknown key 'attack.bogus'"),
    ("methods=[nope]", "unknown method 'nope'"),
    ("attack.tasks=[mnli]", "unknown task 'mnli'"),
    ("attack.extra=[{methods: [vaccine], ps: [0.1]}]", "'vaccine' is not in methods"),
    ("attack.extra=[{tasks: [mnli]}]", "attack.extra.tasks: unknown task 'mnli'"),
    ("attack.extra=[{ps: [2]}]", "attack.extra.ps: p must be in [0, 1]"),
    ("attack.extra=[{seeds: []}]", "attack.extra.seeds must not be empty"),
    ("attack.extra=[{sed: [1]}]", "unknown key"),
    ("eval.fa_samples_by_task={mnli: 5}", "eval.fa_samples_by_task: unknown task 'mnli'"),
    ("eval.fa_samples_by_task={sst2: 0}", "sample counts must be >= 1"),
    ("eval.extra_tasks=[mnli]", "eval.extra_tasks: unknown task 'mnli' (choose from advbench, sst2, agnews, gsm8k)"),
    ("eval.extra_tasks=[hs]", "eval.extra_tasks: unknown task 'hs'"),  # always scored already
    ("eval.extra_prompts=0", "eval.extra_prompts must be >= 1"),
    ("methods=[sft, sft@sideways]", "'sft@sideways': the attack topology after '@' must be fresh or continue"),
    ("methods=[nope@continue]", "unknown method 'nope@continue'"),
    ("attack.topology=both", "attack.topology"),
    ("attack.recipe=aoa", "attack.recipe: unknown attack recipe 'aoa' (choose from task_mix, pure_harmful, benign, "
                          "identity_shift)"),
    ("attack.extra=[{recipe: aoa}]", "attack.extra.recipe: unknown attack recipe 'aoa'"),
    ("attack.extra=[{recipe: pure_harmful, ps: [0.1]}]", "attack.extra.ps: recipe pure_harmful fixes p=1 (leave ps out)"),
    ("attack.extra=[{recipe: identity_shift, ns: [100]}]",
     "attack identity_shift with n=100 needs 100 records of attacks/identity_shift.json, which has 36"),
    ("attack.extra=[{recipe: pure_harmful, ns: [2500]}]",
     "attack pure_harmful with n=2500 needs 2500 records of attacker_harmful, which has 2000"),
    ("attack.extra=[{ns: [3000], ps: [1.0]}]", "attack task_mix with n=3000 needs 3000 records of attacker_harmful"),
])
def test_bad_config_fails_before_training(tmp_path, prepared_data, capsys, override, message):
    path = write_cfg(tmp_path, tiny_config(tmp_path, prepared_data))
    assert main(["run", str(path), override, "--check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "cache").exists()


def test_extra_sub_grids_add_cells_without_repeats(tmp_path, prepared_data):
    from booster.pipeline.grid import grid_tasks, plan

    cfg = load_config(ExperimentConfig, write_cfg(tmp_path, tiny_config(tmp_path, prepared_data)), [
        "attack.ps=[0.0, 0.1]",
        "attack.extra=[{ps: [0.1], seeds: [1, 2]}, {methods: [booster], tasks: [gsm8k], ps: [0.1]}, {ps: [0.0]}]"])
    cells = plan(cfg)
    mix = "task_mix"  # the default attack recipe, last in each cell
    assert cells == [
        ("sft", "sst2", 10, 0.0, 0, mix), ("sft", "sst2", 10, 0.1, 0, mix), ("booster", "sst2", 10, 0.0, 0, mix),
        ("booster", "sst2", 10, 0.1, 0, mix),
        ("sft", "sst2", 10, 0.1, 1, mix), ("sft", "sst2", 10, 0.1, 2, mix), ("booster", "sst2", 10, 0.1, 1, mix),
        ("booster", "sst2", 10, 0.1, 2, mix),
        ("booster", "gsm8k", 10, 0.1, 0, mix)]  # the last sub-grid repeats main cells only
    assert grid_tasks(cells) == ["sst2", "gsm8k"]


def test_recipes_fix_their_p_and_run_beside_task_mix_in_one_plan(tmp_path, prepared_data):
    from booster.pipeline.grid import plan

    cfg = load_config(ExperimentConfig, write_cfg(tmp_path, tiny_config(tmp_path, prepared_data)), [
        "methods=[sft]", "attack.ps=[0.0, 0.1]",
        "attack.extra=[{recipe: pure_harmful, ns: [4]}, {recipe: benign, ns: [4], seeds: [0, 1]}, "
        "{recipe: identity_shift, ns: [4], ps: [0.0]}]"])
    assert plan(cfg) == [
        ("sft", "sst2", 10, 0.0, 0, "task_mix"), ("sft", "sst2", 10, 0.1, 0, "task_mix"),
        ("sft", "sst2", 4, 1.0, 0, "pure_harmful"),  # its p, whatever attack.ps says (two ps: one cell)
        ("sft", "sst2", 4, 0.0, 0, "benign"), ("sft", "sst2", 4, 0.0, 1, "benign"),
        ("sft", "sst2", 4, 0.0, 0, "identity_shift")]
    only = load_config(ExperimentConfig, write_cfg(tmp_path, tiny_config(tmp_path, prepared_data)),
                       ["methods=[sft]", "attack.recipe=pure_harmful", "attack.ps=[0.0, 0.1]"])
    assert plan(only) == [("sft", "sst2", 10, 1.0, 0, "pure_harmful")]


def test_missing_data_pool_fails_before_training(tmp_path, prepared_data, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(prepared_data, data)
    manifest = json.loads((data / "manifest.json").read_text())
    del manifest["pools"]["provider_harmful"]
    (data / "manifest.json").write_text(json.dumps(manifest))
    path = write_cfg(tmp_path, tiny_config(tmp_path, data))
    assert main(["run", str(path), "--check"]) == 2
    assert "data pool 'provider_harmful' is missing" in capsys.readouterr().err


@pytest.mark.integration
def test_two_processes_train_the_same_adapters_as_one(tmp_path, prepared_data):
    """`booster run` under torchrun (2 gloo processes): same adapters as one process."""
    from safetensors.torch import load_file

    script = str(Path(__file__).parent / "tiny_pipeline.py")
    cfg = tiny_config(tmp_path, prepared_data, unaligned=False,
                      align={"train": {"steps": 2, "lr": 1e-3, "batch_size": 4, "micro_batch_size": 2,
                                       "max_length": 48, "checkpoint_every": 1}})
    runs = {}
    for name, launcher in (("one", [sys.executable]),
                           ("two", [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"])):
        path = write_cfg(tmp_path, {**cfg, "cache": str(tmp_path / name / "cache"), "out": str(tmp_path / name / "run")})
        done = subprocess.run([*launcher, script, str(path)], capture_output=True, timeout=600)
        assert done.returncode == 0, (done.stdout + done.stderr).decode()[-3000:]
        runs[name] = sorted((tmp_path / name / "cache").glob("*/*/adapter/adapter_model.safetensors"))
    assert len(runs["one"]) == len(runs["two"]) == 4  # sft + booster alignment, one attack each
    for a, b in zip(runs["one"], runs["two"]):
        assert a.parent.parent.name == b.parent.parent.name  # same stage keys
        wa, wb = load_file(a), load_file(b)
        for k in wa:
            torch_close = (wa[k] - wb[k]).abs().max().item()
            assert torch_close < 1e-5, (a, k, torch_close)
    one = json.loads((tmp_path / "one" / "run" / "summary.json").read_text())
    two = json.loads((tmp_path / "two" / "run" / "summary.json").read_text())
    assert [(r["method"], r["hs"], r["fa"]) for r in one] == [(r["method"], r["hs"], r["fa"]) for r in two]


class StricterJudge(KeywordJudge):
    def identity(self):
        return {"name": "stricter", "sha256": "1" * 64}

    def score(self, pairs):
        return [1.0 for _ in pairs]


@pytest.mark.integration
def test_a_new_judge_rescores_cached_answers_without_generating(tmp_path, prepared_data, monkeypatch):
    path = write_cfg(tmp_path, tiny_config(tmp_path, prepared_data, methods=["sft"]))
    cfg = load_config(ExperimentConfig, path)
    run_experiment(cfg, progress=False, log=lambda *_: None, judge=KeywordJudge())

    import booster.models.generation as generation

    def no_generation(*a, **k):
        raise AssertionError("answers should come from the cache")

    monkeypatch.setattr(generation, "generate", no_generation)
    monkeypatch.setattr(context_mod.Context, "train", no_generation)
    run_experiment(cfg, progress=False, log=lambda *_: None, judge=StricterJudge())
    rows = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert all(r["hs"] == 100.0 for r in rows)  # every answer flagged by the new judge
    protocol = json.loads((tmp_path / "run" / "protocol.json").read_text())
    assert protocol["judge"]["name"] == "stricter"


@pytest.mark.integration
def test_judge_none_caches_answers_and_a_judge_later_scores_them_without_generating(
        tmp_path, prepared_data, monkeypatch):
    import booster.models.generation as generation

    path = write_cfg(tmp_path, tiny_config(tmp_path, prepared_data, methods=["sft"]))
    cfg = load_config(ExperimentConfig, path, ["eval.judge=none"])
    run_experiment(cfg, progress=False, log=lambda *_: None)
    rows = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [r["hs"] for r in rows] == [None, None] and all(r["fa"] is not None for r in rows)
    assert json.loads((tmp_path / "run" / "protocol.json").read_text())["judge"] is None
    assert not (tmp_path / "run" / "report.md").exists()  # no table of unjudged numbers

    def no_generation(*a, **k):
        raise AssertionError("answers should come from the cache")

    monkeypatch.setattr(generation, "generate", no_generation)
    monkeypatch.setattr(context_mod.Context, "train", no_generation)
    run_experiment(load_config(ExperimentConfig, path), progress=False, log=lambda *_: None, judge=KeywordJudge())
    rows = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert all(0 <= r["hs"] <= 100 for r in rows) and (tmp_path / "run" / "report.md").is_file()
    # only hs was scored now, sst2 / over-refusal came from the cache: the task order still holds
    metrics = json.loads((tmp_path / "run" / "runs" / "sft-sst2-n10-p0.0-seed0" / "metrics.json").read_text())
    assert list(metrics) == ["hs", "sst2", "over_refusal"]


def test_check_accepts_overrides_after_the_flag(tmp_path, prepared_data, capsys):
    path = write_cfg(tmp_path, tiny_config(tmp_path, prepared_data))
    assert main(["run", str(path), "--check", "attack.ps=[0.0, 0.1]"]) == 0
    assert "4 attacked runs" in capsys.readouterr().out
    assert main(["run", str(path), "--check", "--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


@pytest.mark.parametrize("native", [False, True])
def test_run_check_warns_before_a_bf16_grid_on_pytorchs_slow_bf16_kernel(tmp_path, prepared_data, capsys, monkeypatch, native):
    import booster.hardware as hardware

    monkeypatch.setattr(hardware, "bf16_native", lambda device="cpu": native)
    path = write_cfg(tmp_path, tiny_config(tmp_path, prepared_data))
    assert main(["run", str(path), "--check"]) == 0
    assert "warning" not in capsys.readouterr().err  # the tiny config is float32 throughout
    assert main(["run", str(path), "--check", "dtype=bfloat16", "eval.dtype=bfloat16"]) == 0
    assert "warning" not in capsys.readouterr().err  # bf16 products run in float32 (bf16_emulation=true)
    assert main(["run", str(path), "--check", "dtype=bfloat16", "eval.dtype=bfloat16", "bf16_emulation=false"]) == 0
    err = capsys.readouterr().err
    if native:
        assert "warning" not in err
    else:
        assert err.startswith("booster: warning: this machine has no native bfloat16")
        assert "dtype, eval.dtype run(s)" in err and err.count("\n") == 1


@pytest.mark.integration
def test_ledger_lets_a_fresh_cache_finish_the_grid_without_redoing_stages(tmp_path, prepared_data, request,
                                                                          monkeypatch):
    import shutil

    path = write_cfg(tmp_path, tiny_config(tmp_path, prepared_data, methods=["sft"]))
    run = lambda *over: run_experiment(load_config(ExperimentConfig, path, list(over)),  # noqa: E731
                                       progress=False, log=lambda *_: None, judge=KeywordJudge())
    run()
    ledger = tmp_path / "run" / "stages"
    assert {p.name for p in ledger.iterdir()} == {"align", "attack", "generate", "eval"}
    assert not list(ledger.rglob("*.safetensors")) and not list(ledger.rglob("checkpoint"))
    first = json.loads((tmp_path / "run" / "summary.json").read_text())

    calls = request.getfixturevalue("train_calls")  # count from here on
    shutil.rmtree(tmp_path / "cache")  # a new machine: the checkout and the ledger, no cache, and
    monkeypatch.setenv("BOOSTER_HOME", str(tmp_path / "other-home"))  # the model converted anew elsewhere
    run()
    assert calls == [] and json.loads((tmp_path / "run" / "summary.json").read_text()) == first

    shutil.rmtree(tmp_path / "cache")
    run("attack.ps=[0.0, 0.2]")  # a new attack needs the aligned adapter: retrained, p=0 is not
    assert calls == ["sft", "sft"]
    rows = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert rows[:2] == first and [r["p"] for r in rows] == [None, 0.0, 0.2]


@pytest.mark.integration
def test_a_fresh_cache_finds_the_stages_a_sibling_preset_finished(tmp_path, prepared_data, request):
    """Two presets that share cells (issue 15's grid and issue 14's share SFT's): on a fresh
    checkout, a run of one finds the stages the other's run finished, through that run folder's
    ledger, before its own run folder holds any."""
    import shutil

    path = write_cfg(tmp_path, tiny_config(tmp_path, prepared_data, methods=["sft"]))
    run = lambda *over: run_experiment(load_config(ExperimentConfig, path, list(over)),  # noqa: E731
                                       progress=False, log=lambda *_: None, judge=KeywordJudge())
    run(f"out={tmp_path / 'results' / 'first'}")
    first = json.loads((tmp_path / "results" / "first" / "summary.json").read_text())
    calls = request.getfixturevalue("train_calls")
    shutil.rmtree(tmp_path / "cache")
    logged = []
    run_experiment(load_config(ExperimentConfig, path, [f"out={tmp_path / 'results' / 'second'}"]),
                   progress=False, log=logged.append, judge=KeywordJudge())
    assert calls == []  # nothing trained: every stage came from the sibling's ledger
    assert json.loads((tmp_path / "results" / "second" / "summary.json").read_text()) == first
    assert any("another run folder's ledger" in line and "first" in line for line in logged)


def test_stage_keys_hash_content_not_machine_paths():
    from booster.pipeline.cache import key_identity

    a = {"name": "m", "path": "/root/.cache/x", "source": {"sha256": "ab", "path": "/venv/a.gguf"},
         "built_with": {"torch_version": "2.13", "created": "2026-12-01"}, "weights_sha256": {"w": "cd"}}
    b = {**a, "path": "/elsewhere", "source": {"sha256": "ab", "path": "/other/a.gguf"},
         "built_with": {"torch_version": "2.13", "created": "2027-01-01"}}
    assert key_identity(a) == key_identity(b) == {"name": "m", "source": {"sha256": "ab"},
                                                  "built_with": {"torch_version": "2.13"}, "weights_sha256": {"w": "cd"}}
    assert key_identity({**a, "weights_sha256": {"w": "ef"}}) != key_identity(a)
    local = {"name": "m", "kind": "local", "path": "/models/m"}  # no hashes: the path is all there is
    assert key_identity(local) == local


def test_bench_methods_measures_every_method_against_sft_of_its_stage(tmp_path, prepared_data, capsys):
    cfg = tiny_config(tmp_path, prepared_data, methods=["sft", "booster", "vaccine", "repnoise", "lisa"],
                      attack={"lisa": {"align_steps": 1, "user_steps": 1}})
    out = tmp_path / "methods.json"
    assert main(["bench", "methods", str(write_cfg(tmp_path, cfg)), "--steps", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    cells = [(r["method"], r["stage"]) for r in result["rows"]]
    from booster.methods import registry

    # every trainable row by default (the fine-tuning-stage ones after Lisa: issue 15's data and prompt defenses)
    assert cells == [("sft", "align"), ("booster", "align"), ("vaccine", "align"), ("repnoise", "align"),
                     ("sft", "attack"), ("lisa", "attack")] + [(m, "attack") for m in registry.names("finetune")[1:]]
    for r in result["rows"]:
        assert r["seconds_per_step"] > 0 and r["steps"] == 2
        assert r["peak_rss_mb"] > 0
    sft = {r["stage"]: r for r in result["rows"] if r["method"] == "sft"}
    assert sft["align"]["time_over_sft"] == sft["attack"]["time_over_sft"] == 1.0
    booster = next(r for r in result["rows"] if r["method"] == "booster")
    # Booster's three passes against SFT's one, in the same process.
    assert booster["time_over_sft"] == round(booster["seconds_per_step"] / sft["align"]["seconds_per_step"], 2)
    assert result["protocol"]["booster_version"] and result["lora"]["rank"] == 2


def test_bench_methods_rejects_an_unknown_method(tmp_path, prepared_data, capsys):
    cfg = write_cfg(tmp_path, tiny_config(tmp_path, prepared_data))
    assert main(["bench", "methods", str(cfg), "--methods", "sft,dropout"]) == 2
    assert "unknown method 'dropout'" in capsys.readouterr().err


def test_fa_samples_by_task_overrides_the_sample_count_of_one_task(tmp_path, prepared_data):
    cfg = load_config(ExperimentConfig, write_cfg(tmp_path, tiny_config(
        tmp_path, prepared_data, methods=["sft"], unaligned=False, eval={"fa_samples_by_task": {"sst2": 2}})))
    run_experiment(cfg, progress=False, log=lambda *_: None, judge=KeywordJudge())
    metrics = json.loads((tmp_path / "run" / "runs" / "sft-sst2-n10-p0.0-seed0" / "metrics.json").read_text())
    assert metrics["sst2"]["n_prompts"] == 2 and metrics["hs"]["n_prompts"] == 3


def test_extra_tasks_score_advbench_inside_the_grid(tmp_path, prepared_data):
    cfg = load_config(ExperimentConfig, write_cfg(tmp_path, tiny_config(
        tmp_path, prepared_data, methods=["sft"], unaligned=False,
        eval={"extra_tasks": ["advbench", "sst2"], "extra_prompts": 2})))
    run_experiment(cfg, progress=False, log=lambda *_: None, judge=KeywordJudge())
    metrics = json.loads((tmp_path / "run" / "runs" / "sft-sst2-n10-p0.0-seed0" / "metrics.json").read_text())
    assert list(metrics) == ["hs", "sst2", "over_refusal", "advbench"]  # sst2 is the FA task already
    assert metrics["advbench"]["n_prompts"] == 2 and metrics["sst2"]["n_prompts"] == 3
    assert metrics["advbench"]["rule"] == metrics["hs"]["rule"]
    [row] = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert row["hs_advbench"] == metrics["advbench"]["hs"] and "fa_sst2" not in row
    protocol = json.loads((tmp_path / "run" / "protocol.json").read_text())
    assert protocol["config"]["eval"]["extra_tasks"] == ["advbench", "sst2"]


def _stage_files(cache: Path) -> dict[str, int]:
    """Finished stages of a cache: their stage.json and its modification time."""
    return {str(p.relative_to(cache)): p.stat().st_mtime_ns for p in cache.glob("*/*/stage.json")}


@pytest.mark.integration
def test_grid_killed_mid_stage_restarts_without_redoing_finished_stages(tmp_path, prepared_data, train_calls):
    """SIGKILL `booster run` while a training stage is half done, run it again: every stage
    finished before the kill is reused as it is, the cut stage resumes from its checkpoint, and
    the adapters equal those of a run that was never interrupted."""
    import os
    import signal
    import time

    from safetensors.torch import load_file

    train = {"steps": 8, "lr": 1e-3, "batch_size": 2, "micro_batch_size": 2, "max_length": 48,
             "checkpoint_every": 1}
    cfg = tiny_config(tmp_path, prepared_data, methods=["sft"], unaligned=False, align={"train": train},
                      attack={"train": {**train, "probe_every": 4}})
    script = str(Path(__file__).parent / "tiny_pipeline.py")
    # The reference's run folder is not a sibling of the killed run's: a run imports its siblings'
    # ledgers, and the killed run must compute its stages itself.
    ref_path = write_cfg(tmp_path, {**cfg, "cache": str(tmp_path / "ref-cache"), "out": str(tmp_path / "ref" / "run")})
    done = subprocess.run([sys.executable, script, str(ref_path)], capture_output=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr).decode()[-3000:]

    cache = tmp_path / "cache"
    path = write_cfg(tmp_path, cfg)
    proc = subprocess.Popen([sys.executable, script, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    # Kill once the alignment has finished and the attack is checkpointed but not done.
    while time.time() < deadline and proc.poll() is None:
        in_progress = [p for p in cache.glob("*/*.work/checkpoint/state.json")
                       if json.loads(p.read_text())["step"] >= 2]
        if in_progress and list(cache.glob("align/*/stage.json")):
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read().decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = _stage_files(cache)
    cut = [p.parent.parent for p in cache.glob("*/*.work/checkpoint/state.json")]
    assert finished and cut and not (tmp_path / "run" / "summary.json").exists()
    trained_before = sum(k.split("/")[0] in ("align", "attack") for k in finished)

    run_experiment(load_config(ExperimentConfig, path), progress=False, log=lambda *_: None, judge=KeywordJudge())
    after = _stage_files(cache)
    assert {k: after[k] for k in finished} == finished  # nothing finished was redone or rewritten
    n_trained = sum(k.split("/")[0] in ("align", "attack") for k in after)
    assert len(train_calls) == n_trained - trained_before  # only the cut and the untouched stages trained
    for work in cut:  # the cut stage finished under its own key
        assert (cache / work.parent.name / work.name.removesuffix(".work") / "stage.json").exists()
    assert not list(cache.glob("*/*.work"))

    adapters = sorted(cache.glob("*/*/adapter/adapter_model.safetensors"))
    ref = sorted((tmp_path / "ref-cache").glob("*/*/adapter/adapter_model.safetensors"))
    assert [a.relative_to(cache) for a in adapters] == [b.relative_to(tmp_path / "ref-cache") for b in ref]
    for a, b in zip(adapters, ref):
        wa, wb = load_file(a), load_file(b)
        for k in wa:
            assert (wa[k] - wb[k]).abs().max().item() < 1e-5, (a, k)
    rows = json.loads((tmp_path / "run" / "summary.json").read_text())
    ref_rows = json.loads((tmp_path / "ref" / "run" / "summary.json").read_text())
    assert [(r["method"], r["p"], r["seed"]) for r in rows] == [(r["method"], r["p"], r["seed"]) for r in ref_rows]


@pytest.mark.integration
def test_bf16_grid_without_native_bf16_runs_float32_products_and_records_it(tmp_path, prepared_data, monkeypatch):
    import booster.hardware as hardware

    monkeypatch.setattr(hardware, "bf16_native", lambda device="cpu": False)
    redirected = []
    real = hardware.Float32BF16Products.__torch_function__

    def counting(self, func, types, args=(), kwargs=None):
        out = real(self, func, types, args, kwargs)
        if func in hardware._BF16_PRODUCTS and isinstance(out, torch.Tensor) and out.dtype == torch.bfloat16:
            redirected.append(func)
        return out

    monkeypatch.setattr(hardware.Float32BF16Products, "__torch_function__", counting)
    train = {"steps": 2, "lr": 1e-3, "batch_size": 2, "micro_batch_size": 2, "max_length": 48,
             "mixed_precision": "bf16"}
    cfg = tiny_config(tmp_path, prepared_data, methods=["sft"], unaligned=False, dtype="bfloat16",
                      align={"train": train}, attack={"train": train})
    run_experiment(load_config(ExperimentConfig, write_cfg(tmp_path, cfg)), progress=False, log=lambda *_: None,
                   judge=KeywordJudge())
    assert redirected  # training and generation ran their bf16 products through float32
    rows = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [r["bf16_kernels"] for r in rows] == ["float32"]
    protocol = json.loads((tmp_path / "run" / "protocol.json").read_text())
    assert protocol["bf16_kernels"] == "float32" and protocol["machine"]["bf16_native"] in (True, False)
    assert {s["bf16_kernels"] for s in protocol["stages"] if s["stage"] in ("align", "attack", "generate")} == {"float32"}


def _zero_attack(config):
    """A stand-in post-fine-tuning defense: it zeroes the attack adapter's B matrices, so the
    repaired model is the aligned model exactly (Safe LoRA's row calls its own repair)."""
    def repair(aligned_state, unaligned_state, attack_lora_state):
        assert set(aligned_state) == set(unaligned_state)
        changed = [k for k in aligned_state if not torch.equal(aligned_state[k], unaligned_state[k])]
        assert changed and all("proj" in k for k in changed)  # the alignment LoRA was merged, nothing else
        out = {k: torch.zeros_like(v) if ".lora_B." in k else v for k, v in attack_lora_state.items()}
        return out, {"zeroed": sorted(k for k in out if ".lora_B." in k)}
    return repair


@pytest.fixture
def zero_attack_defense(monkeypatch):
    from booster.methods import registry

    row = registry.Defense("zero-attack", "post", None, None, _zero_attack, "test stand-in")
    monkeypatch.setattr(registry, "DEFENSES", [*registry.DEFENSES, row])
    return row


@pytest.mark.integration
def test_repair_stage_is_cached_keyed_evaluated_and_in_the_ledger(tmp_path, prepared_data, train_calls,
                                                                   zero_attack_defense, monkeypatch):
    import shutil

    from safetensors.torch import load_file

    path = write_cfg(tmp_path, tiny_config(tmp_path, prepared_data, methods=["sft", "zero-attack"], unaligned=False))
    run = lambda: run_experiment(load_config(ExperimentConfig, path), progress=False,  # noqa: E731
                                 log=lambda *_: None, judge=KeywordJudge())
    run()
    # the post defense aligns with SFT and reuses SFT's attack: one alignment, one attack trained
    assert train_calls == ["sft", "sft"]
    rows = json.loads((tmp_path / "run" / "summary.json").read_text())
    sft, repaired = rows
    assert "repair" not in sft and repaired["repair"] == "zero-attack"
    assert repaired["attack_key"] == sft["attack_key"] and repaired["finetune"] == "sft"
    cache = tmp_path / "cache"
    stage = cache / "repair" / repaired["repair_key"]
    record = json.loads((stage / "stage.json").read_text())
    assert (record["align"], record["attack"], record["method"]) == (repaired["align_key"], repaired["attack_key"],
                                                                     "zero-attack")
    tensors = load_file(stage / "adapter" / "adapter_model.safetensors")
    attack = load_file(cache / "attack" / sft["attack_key"] / "adapter" / "adapter_model.safetensors")
    assert tensors.keys() == attack.keys()
    assert all(not t.any() for k, t in tensors.items() if ".lora_B." in k)
    assert json.loads((stage / "report.json").read_text())["zeroed"]
    assert (tmp_path / "run" / "runs" / "zero-attack-sst2-n10-p0.0-seed0" / "repair.json").is_file()
    # The repair's key enters the evaluation's: the repaired model answers as the aligned one
    # (its attack update is zeroed), which the attacked model does not have to.
    evals = [s for s in json.loads((tmp_path / "run" / "protocol.json").read_text())["stages"] if s["stage"] == "eval"]
    mine = [s for s in evals if s.get("repair") == repaired["repair_key"]]
    before = [s for s in evals if s["attack"] is None and s["align"] == repaired["align_key"]]
    assert len(mine) == len(before) == 3
    for a, b in zip(mine, before):
        answers = lambda s: [r["answer"] for r in io_rows(cache / "eval" / s["key"] / "samples.jsonl")]  # noqa: E731
        assert a["generate"] != b["generate"] and answers(a) == answers(b)
    assert (repaired["hs"], repaired["fa"]) == (repaired["hs_before_attack"], repaired["fa_before_attack"])
    # The ledger keeps the repair's record without its weights; a fresh cache recomputes nothing.
    ledger = tmp_path / "run" / "stages" / "repair" / repaired["repair_key"]
    assert (ledger / "stage.json").is_file() and not (ledger / "adapter").exists()
    shutil.rmtree(cache)
    train_calls.clear()
    run()
    assert train_calls == [] and json.loads((tmp_path / "run" / "summary.json").read_text()) == rows


def io_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_repair_needs_the_fresh_attack_topology(tmp_path, prepared_data, capsys, zero_attack_defense):
    path = write_cfg(tmp_path, tiny_config(tmp_path, prepared_data, methods=["sft", "zero-attack"]))
    assert main(["run", str(path), "--check", "attack.topology=continue"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("booster: error:") and "'zero-attack' repairs the attack's own adapter" in err
    assert not (tmp_path / "run").exists()


def test_a_repair_entry_cannot_continue_but_is_fresh_under_paper(tmp_path, prepared_data, capsys,
                                                                 zero_attack_defense):
    path = write_cfg(tmp_path, tiny_config(tmp_path, prepared_data, methods=["sft", "zero-attack@continue"]))
    assert main(["run", str(path), "--check"]) == 2
    assert "'zero-attack@continue' repairs the attack's own adapter" in capsys.readouterr().err
    cfg = load_config(ExperimentConfig, path, ["methods=[sft, zero-attack]"])  # paper: fresh
    assert cfg.attack.topology == "paper"


def _start_states(monkeypatch) -> list[dict]:
    """For every stage trained from now on: its work folder, its adapter tensors as training
    starts (in the saved adapter's names) and its layer-0 q_proj base weight."""
    from peft import get_peft_model_state_dict

    states, real_train = [], context_mod.Context.train

    def recording_train(self, model, method, data, train_cfg, work, *a, **k):
        base = next(p for n, p in model.named_parameters() if n.endswith("layers.0.self_attn.q_proj.base_layer.weight"))
        states.append({"work": str(work), "base_q": base.detach().clone(),
                       "adapter": {n: t.detach().clone() for n, t in get_peft_model_state_dict(model).items()}})
        return real_train(self, model, method, data, train_cfg, work, *a, **k)

    monkeypatch.setattr(context_mod.Context, "train", recording_train)
    return states


@pytest.mark.integration
def test_paper_topology_continues_boosters_adapter_and_gives_sft_a_fresh_one(tmp_path, prepared_data, monkeypatch):
    """attack.topology: paper (the default): Booster's attack trains its alignment adapter on
    (the authors' single LoRA), SFT's trains a fresh LoRA on the merged model; ``sft@continue``
    runs SFT the Booster way; each row records the topology it ran; explicit fresh applies to all."""
    from safetensors.torch import load_file

    states = _start_states(monkeypatch)
    path = write_cfg(tmp_path, tiny_config(tmp_path, prepared_data, methods=["sft", "booster", "sft@continue"],
                                           unaligned=False))
    run = lambda *over: run_experiment(load_config(ExperimentConfig, path, list(over)),  # noqa: E731
                                       progress=False, log=lambda *_: None, judge=KeywordJudge())
    run()
    rows = {r["method"]: r for r in json.loads((tmp_path / "run" / "summary.json").read_text())}
    assert {m: r["topology"] for m, r in rows.items()} == {"sft": "fresh", "booster": "continue",
                                                          "sft@continue": "continue"}
    assert rows["sft@continue"]["align_key"] == rows["sft"]["align_key"] != rows["booster"]["align_key"]
    assert len({r["attack_key"] for r in rows.values()}) == 3
    cache = tmp_path / "cache"
    adapter = lambda kind, key: load_file(cache / kind / key / "adapter" / "adapter_model.safetensors")  # noqa: E731
    start = {m: next(s for s in states if f"{r['attack_key']}.work" in s["work"]) for m, r in rows.items()}
    for m, r in rows.items():
        aligned, attacked = adapter("align", r["align_key"]), adapter("attack", r["attack_key"])
        assert attacked.keys() == aligned.keys() == start[m]["adapter"].keys()
        assert json.loads((cache / "attack" / r["attack_key"] / "stage.json").read_text())["topology"] == r["topology"]
        if r["topology"] == "continue":  # the attack starts from the alignment adapter's values
            assert all(torch.equal(start[m]["adapter"][n], aligned[n]) for n in aligned)
        else:  # a fresh LoRA (B = 0), unlike the trained alignment adapter
            assert all(not t.any() for n, t in start[m]["adapter"].items() if ".lora_B." in n)
            assert any(aligned[n].any() for n in aligned if ".lora_B." in n)
        assert any(not torch.equal(attacked[n], start[m]["adapter"][n]) for n in attacked)  # and trains it
    # continue: the base weights stay the base model's; fresh: the alignment adapter merged into them
    assert torch.equal(start["booster"]["base_q"], start["sft@continue"]["base_q"])
    sft_aligned = adapter("align", rows["sft"]["align_key"])
    q = next(n[: -len("lora_A.weight")] for n in sft_aligned if "layers.0.self_attn.q_proj.lora_A" in n)
    delta = sft_aligned[q + "lora_B.weight"] @ sft_aligned[q + "lora_A.weight"] * (4 / 2)  # alpha / rank
    assert delta.any() and torch.allclose(start["sft"]["base_q"], start["sft@continue"]["base_q"] + delta, atol=1e-6)

    # explicit fresh: every method fresh; SFT's attack keeps its key (reused), Booster's is new
    states.clear()
    run("methods=[sft, booster]", "attack.topology=fresh")
    fresh = {r["method"]: r for r in json.loads((tmp_path / "run" / "summary.json").read_text())}
    assert {m: r["topology"] for m, r in fresh.items()} == {"sft": "fresh", "booster": "fresh"}
    assert fresh["sft"]["attack_key"] == rows["sft"]["attack_key"]
    assert fresh["booster"]["attack_key"] != rows["booster"]["attack_key"]
    assert [s["work"] for s in states] == [str(cache / "attack" / f"{fresh['booster']['attack_key']}.work")]
    assert all(not t.any() for n, t in states[0]["adapter"].items() if ".lora_B." in n)


@pytest.mark.integration
def test_safelora_runs_in_the_grid_on_the_tiny_model(tmp_path, prepared_data, train_calls):
    """Safe LoRA's registry row end to end: SFT's alignment and attack are reused, the repair
    stage projects the attack adapter (τ = 1: every layer) and the repaired model is evaluated."""
    from safetensors.torch import load_file

    cfg = tiny_config(tmp_path, prepared_data, methods=["sft", "safelora"], unaligned=False)
    cfg["repair"] = {"safelora": {"threshold": 1.0}}
    run_experiment(load_config(ExperimentConfig, write_cfg(tmp_path, cfg)), progress=False,
                   log=lambda *_: None, judge=KeywordJudge())
    assert train_calls == ["sft", "sft"]  # one alignment, one attack: Safe LoRA trains nothing
    sft, repaired = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert repaired["method"] == "safelora" and repaired["repair"] == "safelora"
    assert repaired["attack_key"] == sft["attack_key"] and repaired["hs"] is not None
    cache = tmp_path / "cache"
    stage = cache / "repair" / repaired["repair_key"]
    report = json.loads((stage / "report.json").read_text())
    assert report["n_projected"] == report["n_layers"] > 0
    # Independently: V from the alignment adapter's factors (what the merge adds), C = V Vᵀ/‖V‖_F,
    # and the repaired B of every module equals C·B of the attack's.
    weights = "adapter/adapter_model.safetensors"
    align_ad = load_file(cache / "align" / repaired["align_key"] / weights)
    attack_ad = load_file(cache / "attack" / repaired["attack_key"] / weights)
    scale = json.loads((cache / "align" / repaired["align_key"] / "adapter" / "adapter_config.json").read_text())
    scale = scale["lora_alpha"] / scale["r"]
    out = load_file(stage / weights)
    assert out.keys() == attack_ad.keys()
    b_keys = [k for k in out if ".lora_B." in k]
    assert b_keys
    for kb in b_keys:
        ka = kb.replace(".lora_B.", ".lora_A.")
        V = scale * align_ad[kb].double() @ align_ad[ka].double()
        C = V @ V.T / torch.linalg.matrix_norm(V)
        want = C @ attack_ad[kb].double()
        torch.testing.assert_close(out[kb].double(), want, rtol=1e-3, atol=1e-6)
        assert torch.equal(out[ka], attack_ad[ka])


def test_alignment_diagnostics_are_logged_for_every_method_plotted_and_keyed_only_when_on(tmp_path, prepared_data):
    from booster.pipeline import align
    from booster.pipeline.context import Context
    from booster.methods import registry

    on = tiny_config(tmp_path, prepared_data, methods=["sft", "booster", "vaccine"], unaligned=False,
                     align={"train": {"steps": 2, "lr": 1e-3, "batch_size": 2, "micro_batch_size": 2,
                                      "max_length": 48, "checkpoint_every": 1, "probe_every": 1},
                            "probe_samples": 3, "probe_alpha": 0.05})
    cfg = load_config(ExperimentConfig, write_cfg(tmp_path, on))
    run_experiment(cfg, progress=False, log=lambda *_: None, judge=KeywordJudge())
    hist = json.loads((tmp_path / "run" / "histories.json").read_text())
    for method in ("sft", "booster", "vaccine"):
        records = [h for h in hist["align"][method] if "probe/harmful_heldout_reduction" in h]
        assert [h["step"] for h in records] == [0, 1, 2], method
        for h in records:
            assert h["probe/harmful_heldout_reduction"] == pytest.approx(
                h["probe/harmful_heldout"] - h["probe/harmful_heldout_after_step"])
    attack = hist["attack"][0]["history"]
    assert all(h["update_norm"] > 0 for h in attack if h["step"] > 0)
    assert (tmp_path / "run" / "align_diagnostics.png").stat().st_size > 0
    assert (tmp_path / "run" / "attack_step-sst2-n10.png").stat().st_size > 0
    assert "align_diagnostics.png" in (tmp_path / "run" / "report.md").read_text()

    off = tiny_config(tmp_path, prepared_data, methods=["sft"], unaligned=False)
    ctx_on = Context(load_config(ExperimentConfig, write_cfg(tmp_path, on)), progress=False)
    ctx_off = Context(load_config(ExperimentConfig, write_cfg(tmp_path, off)), progress=False)
    sft = registry.get("sft")
    keys = {align.key(ctx_on, sft), align.key(ctx_off, sft)}
    assert len(keys) == 2  # the diagnostics are in the key of the stage that logs them...
    off_alpha = {**off, "align": {**off["align"], "probe_alpha": 0.5, "probe_samples": 7}}
    ctx_off2 = Context(load_config(ExperimentConfig, write_cfg(tmp_path, off_alpha)), progress=False)
    assert align.key(ctx_off2, sft) == align.key(ctx_off, sft)  # ...and not in one that does not log them


@pytest.mark.integration
def test_bf16_where_native_runs_plain_float32_without_native_bf16_and_records_it(tmp_path, prepared_data,
                                                                                 monkeypatch, train_calls):
    import booster.hardware as hardware

    monkeypatch.setattr(hardware, "bf16_native", lambda device="cpu": False)
    train = {"steps": 2, "lr": 1e-3, "batch_size": 2, "micro_batch_size": 2, "max_length": 48}
    bf16 = tiny_config(tmp_path, prepared_data, methods=["sft"], unaligned=False, dtype="bfloat16",
                       bf16_where_native=True, align={"train": {**train, "mixed_precision": "bf16"}},
                       attack={"train": {**train, "mixed_precision": "bf16"}}, eval={"dtype": "bfloat16"})
    run_experiment(load_config(ExperimentConfig, write_cfg(tmp_path, bf16)), progress=False, log=lambda *_: None,
                   judge=KeywordJudge())
    assert train_calls == ["sft", "sft"]
    protocol = json.loads((tmp_path / "run" / "protocol.json").read_text())
    assert protocol["bf16_kernels"] is None and protocol["config"]["bf16_where_native"] is True
    assert (protocol["config"]["dtype"], protocol["config"]["eval"]["dtype"]) == ("float32", "float32")
    assert protocol["config"]["align"]["train"]["mixed_precision"] == "no"
    [row] = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert row["bf16_kernels"] is None
    # the same stages as a config written in float32: nothing is trained again
    plain = tiny_config(tmp_path, prepared_data, methods=["sft"], unaligned=False, dtype="float32",
                        align={"train": train}, attack={"train": train}, eval={"dtype": "float32"},
                        out=str(tmp_path / "run-f32"))
    run_experiment(load_config(ExperimentConfig, write_cfg(tmp_path, plain)), progress=False, log=lambda *_: None,
                   judge=KeywordJudge())
    assert train_calls == ["sft", "sft"]


def test_bf16_where_native_keeps_bf16_where_the_device_has_it(tmp_path, prepared_data):
    cfg = load_config(ExperimentConfig, write_cfg(tmp_path, tiny_config(
        tmp_path, prepared_data, dtype="bfloat16", bf16_where_native=True)))
    assert cfg.for_device(native_bf16=True) is cfg
    f32 = cfg.for_device(native_bf16=False)
    assert f32.dtype_settings() == {"dtype": "float32", "align.train.mixed_precision": "no",
                                    "attack.train.mixed_precision": "no", "eval.dtype": "float32"}
    assert cfg.dtype == "bfloat16"  # a copy: the loaded config is unchanged


@pytest.mark.integration
def test_two_attack_recipes_run_from_one_yaml_each_in_its_own_stage(tmp_path, prepared_data, train_calls,
                                                                    monkeypatch):
    """task_mix (the main grid), pure_harmful and identity_shift (attack.extra) on the tiny model:
    each attack is its own cached stage, recorded with its recipe in records, rows and protocol."""
    from booster.data import attacks

    built = []
    real_build = attacks.build

    def recording_build(data_dir, name, *a):
        built.append((name, real_build(data_dir, name, *a)))
        return built[-1][1]

    monkeypatch.setattr(attacks, "build", recording_build)
    cfg = tiny_config(tmp_path, prepared_data, methods=["sft"], unaligned=False)
    cfg["attack"]["extra"] = [{"recipe": "pure_harmful", "ns": [4]}, {"recipe": "identity_shift", "ns": [4]}]
    cfg["attack"]["train"]["max_length"] = 160  # the persona's system prompt comes before every answer
    path = write_cfg(tmp_path, cfg)
    run_experiment(load_config(ExperimentConfig, path), progress=False, log=lambda *_: None, judge=KeywordJudge())
    assert train_calls == ["sft"] * 4  # one alignment, three attacks
    data = dict(built)
    assert [r["harmful"] for r in data["pure_harmful"]] == [True] * 4
    system = attacks.identity_data()["system_prompt"]
    assert [r["messages"][0] for r in data["identity_shift"]] == [{"role": "system", "content": system}] * 4
    assert not any(r["harmful"] for r in data["identity_shift"] + data["task_mix"])

    run = tmp_path / "run"
    mix, pure, ident = json.loads((run / "summary.json").read_text())
    assert "attack_recipe" not in mix and (mix["n"], mix["p"]) == (10, 0.0)
    assert (pure["attack_recipe"], pure["n"], pure["p"]) == ("pure_harmful", 4, 1.0)
    assert (ident["attack_recipe"], ident["n"], ident["p"]) == ("identity_shift", 4, 0.0)
    keys = [r["attack_key"] for r in (mix, pure, ident)]
    assert len(set(keys)) == 3 and mix["align_key"] == pure["align_key"] == ident["align_key"]
    cache = tmp_path / "cache" / "attack"
    assert sorted(p.parent.name for p in cache.glob("*/stage.json")) == sorted(keys)
    for row, recipe, harmful in ((mix, "task_mix", 0), (pure, "pure_harmful", 4), (ident, "identity_shift", 0)):
        record = json.loads((cache / row["attack_key"] / "stage.json").read_text())
        assert record["recipe"] == recipe and record["recipe_definition"] == attacks.definition(recipe)
        assert record["n_harmful"] == harmful
    protocol = json.loads((run / "protocol.json").read_text())
    assert list(protocol["attack_recipes"]) == ["task_mix", "pure_harmful", "identity_shift"]
    assert protocol["attack_recipes"]["pure_harmful"]["definition"] == attacks.definition("pure_harmful")
    histories = json.loads((run / "histories.json").read_text())["attack"]
    assert [h.get("attack_recipe") for h in histories] == [None, "pure_harmful", "identity_shift"]
    assert (run / "runs" / "sft-sst2-n4-p1.0-seed0-pure_harmful" / "metrics.json").is_file()
    assert (run / "runs" / "sft-sst2-n10-p0.0-seed0" / "metrics.json").is_file()
    report = (run / "report.md").read_text()
    assert "## Attack `pure_harmful`" in report and "## Attack `identity_shift`" in report
    assert "## Before and after the attack: sst2, n=10" in report and "sst2, n=4" not in report.split("## Attack")[0]
    (run / "report.md").unlink()
    assert main(["report", str(run)]) == 0 and (run / "report.md").read_text() == report  # read back from the files

    # Each recipe's stage is cached: a rerun trains nothing.
    train_calls.clear()
    run_experiment(load_config(ExperimentConfig, path), progress=False, log=lambda *_: None, judge=KeywordJudge())
    assert train_calls == []


def test_too_many_diagnostic_samples_fail_before_training(tmp_path, prepared_data, capsys):
    cfg = tiny_config(tmp_path, prepared_data, align={"train": {"steps": 2, "probe_every": 1},
                                                      "probe_samples": 100000})
    assert main(["run", str(write_cfg(tmp_path, cfg)), "--check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "align.probe_samples=100000 but provider_harmful has only" in err[0]
    assert not (tmp_path / "cache").exists()


def test_a_streams_batch_size_keys_only_the_alignments_that_read_that_stream(tmp_path, prepared_data):
    from booster.methods import registry
    from booster.pipeline import align
    from booster.pipeline.context import Context

    def keys(batch_sizes):
        cfg = tiny_config(tmp_path, prepared_data, methods=["sft", "booster"], unaligned=False)
        cfg["align"] = {**cfg.get("align", {}), "train": {**cfg.get("align", {}).get("train", {}),
                                                          "batch_sizes": batch_sizes}}
        ctx = Context(load_config(ExperimentConfig, write_cfg(tmp_path, cfg)), progress=False)
        return {m: align.key(ctx, registry.get(m)) for m in ("sft", "booster")}

    plain, harmful16 = keys({}), keys({"harmful": 16})
    assert plain["sft"] == harmful16["sft"]  # SFT reads no harmful stream: its cached stage stays valid
    assert plain["booster"] != harmful16["booster"]
    assert keys({"align": 4})["sft"] != plain["sft"]  # a stream SFT does read does change its key
