"""The paper preset (configs/paper-booster-llama2-7b.yaml) cannot rot: it passes `--check`, and one
cell of it runs end to end on the tiny model with only the model and the sizes overridden, writing
the paper's protocol values into protocol.json."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from booster.cli import main
from booster.config import load_config
from booster.paths import config_path
from booster.pipeline.config import ExperimentConfig
from booster.pipeline.grid import run_experiment

sys.path.insert(0, str(Path(__file__).parent / "pipeline"))
from tiny_pipeline import KeywordJudge  # noqa: E402

PRESET = "paper-booster-llama2-7b"
HUB_ID = "meta-llama/Llama-2-7b-hf"

# Huang et al., ICLR 2025 (arXiv:2409.01586), Table 1 protocol and the authors' scripts.
PAPER_LORA = {"rank": 32, "alpha": 4.0, "dropout": 0.0, "target_modules": ["q_proj", "k_proj", "v_proj"]}
PAPER_ALIGN_TRAIN = {"lr": 5e-4, "optimizer": "adamw", "weight_decay": 0.1, "schedule": "constant",
                     "warmup_steps": 0, "batch_size": 10, "batch_sizes": {"harmful": 10}, "max_length": 256,
                     "mixed_precision": "bf16"}
PAPER_ATTACK_TRAIN = {"lr": 1e-5, "optimizer": "adamw", "weight_decay": 0.1, "schedule": "constant",
                      "batch_size": 10, "max_length": 256, "mixed_precision": "bf16"}


def test_preset_holds_the_paper_sizes():
    """The sizes the end-to-end test overrides are the paper's in the file itself."""
    cfg = load_config(ExperimentConfig, config_path(PRESET))
    assert cfg.model == HUB_ID and cfg.methods == ["sft", "lisa", "repnoise", "vaccine", "booster"]
    assert cfg.align.train.steps == 20 * 5000 // 10  # 20 epochs over 5,000 samples at batch 10
    assert cfg.attack.train.steps == 20 * 1000 // 10  # 20 epochs over n=1,000 at batch 10
    assert cfg.attack.ns == [1000] and cfg.attack.ps == [0, 0.05, 0.1, 0.15, 0.2]
    assert cfg.align.harmful_samples == 5000
    assert (cfg.eval.max_new_tokens, cfg.eval.judge) == (512, "PKU-Alignment/beaver-dam-7b")
    assert cfg.eval.hs_prompts == 731  # all of the evaluation half (the paper: 1,000)
    assert (cfg.attack.lisa.align_steps, cfg.attack.lisa.user_steps) == (100, 900)


def _fake_hub_cache(root: Path) -> Path:
    """An HF cache holding the tiny model under the preset's hub id (no download, no 7B weights)."""
    from booster.models.registry import resolve_model

    tiny = resolve_model("tiny-random-llama").path
    repo = root / ("models--" + HUB_ID.replace("/", "--"))
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(tiny, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    return root


@pytest.mark.integration
def test_check_passes_for_the_unmodified_preset(tmp_path, prepared_data, monkeypatch, capsys):
    # `booster run PRESET --check` reads work/data and the model from the HF cache, offline
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "data").symlink_to(prepared_data)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # without the weights: one line that says how to get them
    assert main(["run", PRESET, "--check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and HUB_ID in err[0] and "BOOSTER_ONLINE=1" in err[0]
    # with a local copy in the cache: the unmodified preset passes
    monkeypatch.setenv("HF_HUB_CACHE", str(_fake_hub_cache(tmp_path / "hub")))
    assert main(["run", PRESET, "--check"]) == 0, capsys.readouterr().err


SIZES = [  # the model and the sizes, nothing else
    "model=tiny-random-llama",
    "align.samples=8", "align.harmful_samples=8", "align.train.steps=1", "align.probe_samples=2",
    "attack.ns=[10]", "attack.ps=[0.1]", "attack.train.steps=1", "attack.train.probe_every=1",
    "attack.probe_samples=2",
    "eval.hs_prompts=3", "eval.fa_samples=3", "eval.over_refusal_prompts=2", "eval.max_new_tokens=4",
]


@pytest.mark.integration
def test_one_cell_of_the_preset_runs_end_to_end(tmp_path, prepared_data):
    where = [f"data.dir={prepared_data}", f"out={tmp_path / 'run'}", f"cache={tmp_path / 'cache'}"]
    cfg = load_config(ExperimentConfig, config_path(PRESET), SIZES + where)
    run_experiment(cfg, progress=False, log=lambda *_: None, judge=KeywordJudge())

    rows = json.loads((tmp_path / "run" / "summary.json").read_text())
    attacked = {r["method"]: r for r in rows if r["p"] is not None}
    assert sorted(attacked) == sorted(cfg.methods)
    for r in attacked.values():
        assert (r["task"], r["n"], r["p"], r["seed"]) == ("sst2", 10, 0.1, 0)
        assert 0 <= r["hs"] <= 100 and 0 <= r["fa"] <= 100
    # each method attacked as its paper does: Booster continues its alignment LoRA, the rest get a fresh one
    assert {m: r["topology"] for m, r in attacked.items()} == {
        m: ("continue" if m == "booster" else "fresh") for m in attacked}

    protocol = json.loads((tmp_path / "run" / "protocol.json").read_text())
    written = protocol["config"]
    assert protocol["lora"] == PAPER_LORA and written["lora"] == PAPER_LORA
    assert {k: written["align"]["train"][k] for k in PAPER_ALIGN_TRAIN} == PAPER_ALIGN_TRAIN
    assert {k: written["attack"]["train"][k] for k in PAPER_ATTACK_TRAIN} == PAPER_ATTACK_TRAIN
    assert written["align"]["booster"]["lam"] == 5.0 and written["align"]["booster"]["alpha"] == 0.1
    assert written["align"]["vaccine"]["rho"] == 5.0
    assert (written["align"]["repnoise"]["alpha"], written["align"]["repnoise"]["beta"]) == (0.1, 0.001)
    assert written["attack"]["lisa"]["rho"] == 0.01
    assert written["dtype"] == "bfloat16" and written["eval"]["dtype"] == "bfloat16"
    assert written["eval"]["max_new_tokens"] == 4  # a size, overridden
