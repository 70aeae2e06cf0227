"""Every shipped config loads and validates (unknown keys or bad values would fail here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from booster.config import load_config, read_yaml
from booster.pipeline.config import ExperimentConfig
from booster.pipeline.grid import plan

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


def test_there_are_configs():
    assert {p.name for p in CONFIGS} >= {"quick-smollm2.yaml", "cpu-smollm2.yaml", "paper-booster-llama2-7b.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads(path):
    cfg = load_config(ExperimentConfig, path)
    # the CPU presets train SmolLM2; the paper preset names the paper's model (a GPU run)
    paper = path.name == "paper-booster-llama2-7b.yaml"
    assert cfg.model == ("meta-llama/Llama-2-7b-hf" if paper else "smollm2-135m-instruct") and plan(cfg)
    # model, methods and out are written in the file, not taken from defaults
    assert {"model", "methods", "out"} <= set(read_yaml(path))


def test_run_folders_of_the_shipped_configs():
    """Only the committed Table 1 run writes into results/; the quick demo and the GPU paper preset
    write to work/."""
    folders = {p.name: load_config(ExperimentConfig, p).run_dir() for p in CONFIGS}
    assert folders["cpu-smollm2.yaml"] == "results/cpu-smollm2"
    assert folders["quick-smollm2.yaml"] == "work/runs/quick-smollm2"
    assert folders["paper-booster-llama2-7b.yaml"] == "work/runs/paper-booster-llama2-7b"


def test_presets_by_name_are_the_repository_files_in_a_checkout():
    from booster.errors import BoosterError
    from booster.paths import config_path, preset_names

    assert preset_names() == sorted(p.stem for p in CONFIGS)
    for p in CONFIGS:
        assert config_path(p.stem) == p and config_path(p.name) == p
    assert config_path("configs/quick-smollm2.yaml") == "configs/quick-smollm2.yaml"  # a path stays as given
    with pytest.raises(BoosterError, match="no such file and no such preset") as e:
        config_path("quick-smollm3")
    assert "\n" not in str(e.value) and "quick-smollm2" in str(e.value)


def test_the_finetune_defenses_preset_shares_the_paper_protocol_presets_stages():
    """configs/cpu-smollm2-finetune-defenses.yaml trains and evaluates exactly as
    cpu-smollm2-paper-protocol.yaml does, so that the SFT alignment and the SFT and Lisa cells the
    two grids have in common are one stage each in the cache (its header promises this)."""
    from booster.config import to_dict

    here = Path(__file__).parents[1] / "configs"
    a = to_dict(load_config(ExperimentConfig, here / "cpu-smollm2-paper-protocol.yaml"))
    b = to_dict(load_config(ExperimentConfig, here / "cpu-smollm2-finetune-defenses.yaml"))
    for key in ("model", "dtype", "bf16_where_native", "threads", "lora", "data", "align", "eval", "unaligned"):
        assert a[key] == b[key], key
    for key in ("tasks", "ns", "topology", "train", "probe_samples", "lisa"):
        assert a["attack"][key] == b["attack"][key], f"attack.{key}"
    assert {"sft", "lisa"} <= set(a["methods"]) & set(b["methods"])
