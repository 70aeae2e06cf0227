"""The table of defenses: every row is complete, and nothing outside booster.methods names a defense."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from booster.methods import registry
from booster.pipeline.config import ExperimentConfig

ROOT = Path(__file__).resolve().parents[2]


def _test_exists(test_id: str) -> bool:
    """``path::function[param]``: the file defines ``function`` at module level."""
    path, _, name = test_id.partition("::")
    file = ROOT / path
    if not file.is_file():
        return False
    name = name.split("[")[0]
    return any(isinstance(n, ast.FunctionDef) and n.name == name for n in ast.parse(file.read_text()).body)


@pytest.mark.parametrize("defense", registry.DEFENSES, ids=lambda d: d.name)
def test_every_defense_has_its_config_section_and_tests(defense):
    assert defense.stage in registry.STAGES
    assert defense.paper
    cfg = ExperimentConfig(model="m", methods=[defense.name])
    if defense.config is None:
        assert defense.section is None
    else:  # its hyperparameters live where the row says, with the row's type
        assert isinstance(registry.config_of(defense, cfg), defense.config), defense.section
    assert _test_exists(defense.faithfulness_test), defense.faithfulness_test
    assert _test_exists(defense.smoke_test), defense.smoke_test
    assert set(defense.streams) <= {"align", "harmful"}  # the provider streams the pipeline knows
    if defense.trains_as_plain_attack:  # sharing the plain attack's stage is only right when nothing differs in training
        assert defense.stage == "finetune" and defense.prepare_data is None and not defense.streams
        from booster.methods.configs import SFTConfig

        assert defense.factory(registry.config_of(defense, cfg), 10).config == SFTConfig(stream="user")  # the plain attack's


def test_one_reference_and_unique_names():
    assert [d.name for d in registry.DEFENSES if d.reference] == [registry.reference().name]
    assert registry.reference().stage == "align" and registry.reference().config is None
    assert len(set(registry.names())) == len(registry.DEFENSES)


def test_chain_puts_each_defense_in_its_stage_and_the_reference_elsewhere():
    ref = registry.reference()
    for d in registry.DEFENSES:
        chain = registry.chain(d.name)
        assert [chain.align, chain.finetune, chain.post].count(d) == 1
        if d.stage != "align":
            assert chain.align is ref
    with pytest.raises(KeyError, match="unknown defense"):
        registry.get("nope")


# "booster" is also the package's own name (the program, its cache folder, its distribution)
PACKAGE_NAME = {"cli.py", "paths.py", "models/registry.py", "bench/startup.py"}


def test_no_defense_name_is_a_string_outside_booster_methods():
    src = ROOT / "src" / "booster"
    names = set(registry.names())
    found = []
    for file in src.rglob("*.py"):
        rel = file.relative_to(src).as_posix()
        if rel.startswith("methods/"):
            continue
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                if not (node.value == "booster" and rel in PACKAGE_NAME):
                    found.append(f"{rel}:{node.lineno}: {node.value!r}")
    assert found == []


def test_attack_topology_under_paper_is_each_rows_own_and_an_entry_may_set_it():
    # the papers: Booster attacks its alignment LoRA itself; the others merge it and train a new one
    assert {d.name: d.attack_topology for d in registry.DEFENSES} == {
        "sft": "fresh", "booster": "continue", "vaccine": "fresh", "repnoise": "fresh", "lisa": "fresh",
        "safelora": "fresh", "modfilter": "fresh", "safeinstr": "fresh", "ptst": "fresh", "bea": "fresh", "saft": "fresh"}
    assert all(d.attack_topology == "fresh" for d in registry.DEFENSES if d.stage == "post")
    assert [registry.attack_topology(m, "paper") for m in ("sft", "booster", "lisa")] == ["fresh", "continue", "fresh"]
    assert [registry.attack_topology(m, "fresh") for m in ("sft", "booster")] == ["fresh", "fresh"]
    assert [registry.attack_topology(m, "continue") for m in ("sft", "booster")] == ["continue", "continue"]
    assert registry.attack_topology("sft@continue", "paper") == "continue"
    assert registry.attack_topology("booster@fresh", "continue") == "fresh"
    assert registry.split("sft@continue") == ("sft", "continue") and registry.split("sft") == ("sft", None)
    assert registry.chain("sft@continue") == registry.chain("sft")
    assert ExperimentConfig(model="m", methods=["sft"]).attack.topology == "paper"
