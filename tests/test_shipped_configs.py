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
