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


def _probe_collector():
    """results/cpu-smollm2-finetune-defenses/probes/collect.py as a module (a provenance script)."""
    import importlib.util

    path = Path(__file__).parents[1] / "results" / "cpu-smollm2-finetune-defenses" / "probes" / "collect.py"
    spec = importlib.util.spec_from_file_location("finetune_defenses_collect", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_probe_rule_weighs_fa_and_over_refusal_before_hs():
    """The issue-15 choice rule: the lowest HS among serviceable values (FA within FA_SLACK of SFT's,
    over-refusal within OR_SLACK of SFT's); when none is serviceable, the smaller shortfall, never
    simply the lower HS."""
    c = _probe_collector()
    ref = {"fa": 90.0, "over_refusal": 0.0}

    def entry(probe, hs, fa, over_refusal):
        return {"probe": probe, "hs": hs, "fa": fa, "over_refusal": over_refusal}

    # serviceable beats a lower HS that loses FA
    es = [entry("saft-s0.1", 30.0, 89.0, 0.0), entry("saft-s0.2", 5.0, 80.0, 0.0)]
    assert c.choose(es, ref)["saft"]["probe"] == "saft-s0.1"
    # both serviceable: the lower HS
    es = [entry("saft-s0.1", 30.0, 89.0, 0.0), entry("saft-s0.2", 5.0, 88.5, 9.0)]
    assert c.choose(es, ref)["saft"]["probe"] == "saft-s0.2"
    # an HS bought with over-refusal is not serviceable
    es = [entry("safeinstr-r0.03", 40.0, 89.0, 5.0), entry("safeinstr-r0.1", 5.0, 89.0, 56.0)]
    assert c.choose(es, ref)["safeinstr"]["probe"] == "safeinstr-r0.03"
    # none serviceable: the smaller shortfall, FA points beyond the slack plus over-refusal beyond it
    es = [entry("bea-11", 36.0, 84.0, 12.0), entry("bea-33", 27.0, 76.5, 21.0)]
    chosen = c.choose(es, ref)["bea"]
    assert chosen["probe"] == "bea-11" and not chosen["serviceable"]
    assert chosen["shortfall"] == {"bea-11": 4.0 + 2.0, "bea-33": 11.5 + 11.0}
    # HS by reading where every value is labeled
    es[0]["by_reading"] = {"hs_by_reading": 20.0}
    assert c.choose(es, ref)["bea"]["by"] == "judge"


def test_the_finetune_defenses_preset_runs_the_values_its_probes_chose():
    """The committed calibration.json's choices are the values the preset's grid trains with."""
    import json

    c = _probe_collector()
    chosen = json.loads((c.HERE.parent / "calibration.json").read_text(encoding="utf-8"))["chosen"]
    cfg = load_config(ExperimentConfig, Path(__file__).parents[1] / "configs" / "cpu-smollm2-finetune-defenses.yaml")
    settings = {"safeinstr-r0.03": cfg.attack.safeinstr.ratio == 0.03, "safeinstr-r0.1": cfg.attack.safeinstr.ratio == 0.1,
                "bea-11": cfg.attack.bea.examples == 11, "bea-33": cfg.attack.bea.examples == 33,
                "saft-s0.1": cfg.attack.saft.share == 0.1, "saft-s0.2": cfg.attack.saft.share == 0.2}
    assert set(chosen) == {"safeinstr", "bea", "saft"}
    for method, choice in chosen.items():
        assert settings[choice["probe"]], (method, choice["probe"])
