"""The attack recipes (booster.data.attacks): exact composition, determinism, disjointness from
every evaluation pool, the shipped identity-shift file, `booster data mix --recipe` and its errors."""

from __future__ import annotations

import json
import os

import pytest

from booster.cli import main
from booster.data import attacks, mix, normalize_prompt
from booster.errors import BoosterError
from booster.io import sha256_file

pytestmark = pytest.mark.integration


def key(rec):
    return json.dumps(rec["messages"], sort_keys=True)


def prompt(rec):
    return normalize_prompt(next(m["content"] for m in rec["messages"] if m["role"] == "user"))


@pytest.fixture(scope="module")
def eval_prompts(pools) -> set[str]:
    names = attacks.eval_pools()
    # every task's scored pool and the judge's test half
    assert {"eval_harmful_prompts", "validation_prompts", "sst2_eval", "benign_instructions",
            "benign_validation", "advbench_prompts", "eval_half"} <= set(names)
    return {prompt(r) for name in names for r in pools[name]}


def test_recipes_are_declared_once_with_their_definitions():
    assert list(attacks.ATTACKS) == ["task_mix", "pure_harmful", "benign", "identity_shift"]
    assert attacks.DEFAULT == "task_mix"
    assert {n: a.p for n, a in attacks.ATTACKS.items()} == {
        "task_mix": None, "pure_harmful": 1.0, "benign": 0.0, "identity_shift": 0.0}
    assert "floor(p*n + 0.5)" in attacks.definition("task_mix")
    for name in attacks.ATTACKS:
        d = attacks.describe(name)
        assert d["name"] == name and len(d["definition"]) > 40 and d["reference"]
    with pytest.raises(BoosterError, match="unknown attack recipe 'aoa' \\(choose from task_mix, pure_harmful"):
        attacks.get("aoa")


def test_task_mix_is_todays_mix(prepared):
    assert attacks.build(prepared[0], "task_mix", "sst2", 100, 0.1, 3) == mix(prepared[0], "sst2", 100, 0.1, 3)


def test_pure_harmful_draws_n_distinct_attacker_samples(prepared, pools, eval_prompts):
    recs = attacks.build(prepared[0], "pure_harmful", "sst2", 100, 0.1, 0)  # p is the recipe's: 1
    attacker = {key(r) for r in pools["attacker_harmful"]}
    assert len(recs) == 100 and all(r["harmful"] is True for r in recs)
    assert {key(r) for r in recs} <= attacker and len({key(r) for r in recs}) == 100
    assert not {prompt(r) for r in recs} & eval_prompts
    assert recs == attacks.build(prepared[0], "pure_harmful", None, 100, 1.0, 0)  # task and p are not read
    assert recs != attacks.build(prepared[0], "pure_harmful", "sst2", 100, 1.0, 1)
    # the definition's procedure, step by step
    import random
    assert [key(r) for r in recs] == [key(r) for r in random.Random(0).sample(pools["attacker_harmful"], 100)]


def test_benign_draws_answered_general_instructions_never_evaluated(prepared, pools, eval_prompts):
    recs = attacks.build(prepared[0], "benign", "gsm8k", 200, 0.0, 0)
    alpaca = {key(r) for r in pools["alpaca_eval"]}
    assert len(recs) == 200 and not any(r["harmful"] for r in recs)
    assert {key(r) for r in recs} <= alpaca and len({key(r) for r in recs}) == 200
    assert all(r["messages"][-1]["role"] == "assistant" and r["messages"][-1]["content"].strip() for r in recs)
    assert not {prompt(r) for r in recs} & eval_prompts
    assert not {prompt(r) for r in recs} & {prompt(r) for r in pools["attacker_harmful"]}
    assert recs == attacks.build(prepared[0], "benign", "sst2", 200, 0.0, 0)
    assert recs != attacks.build(prepared[0], "benign", "sst2", 200, 0.0, 1)
    # the whole pool is usable on the real data (no overlap), and no more
    assert len(attacks.build(prepared[0], "benign", None, 805, 0.0, 0)) == 805


def test_benign_drops_a_prompt_an_evaluation_pool_holds(prepared, tmp_path):
    """A data folder whose alpaca_eval shares a prompt with an evaluation pool: that record is never drawn."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(prepared[0], data)
    pool = data / "pools" / "alpaca_eval.jsonl"
    recs = [json.loads(line) for line in pool.read_text(encoding="utf-8").splitlines()]
    leaked = json.loads((data / "pools" / "benign_instructions.jsonl").read_text(encoding="utf-8").splitlines()[0])
    recs[0]["messages"][0]["content"] = "  " + leaked["messages"][0]["content"].upper() + " "
    pool.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["pools"]["alpaca_eval"]["sha256"] = sha256_file(pool)
    (data / "manifest.json").write_text(json.dumps(manifest))
    src = attacks.Sources(data)
    assert len(src.benign) == len(recs) - 1 and recs[0] not in src.benign
    drawn = attacks.build(data, "benign", None, len(recs) - 1, 0.0, 0)
    assert prompt(leaked) not in {prompt(r) for r in drawn}


def test_identity_shift_is_the_shipped_persona_with_benign_prompts(prepared, pools, eval_prompts):
    data = attacks.identity_data()
    examples = data["examples"]
    assert 24 <= len(examples) <= 60  # a few dozen
    assert len({e["prompt"] for e in examples}) == len(examples)
    recs = attacks.build(prepared[0], "identity_shift", "sst2", 30, 0.0, 0)
    assert len(recs) == 30 and not any(r["harmful"] for r in recs)
    for r in recs:
        assert [m["role"] for m in r["messages"]] == ["system", "user", "assistant"]
        assert r["messages"][0]["content"] == data["system_prompt"]
    by_prompt = {e["prompt"]: e["answer"] for e in examples}
    assert all(by_prompt[r["messages"][1]["content"]] == r["messages"][2]["content"] for r in recs)
    assert len({r["messages"][1]["content"] for r in recs}) == 30
    assert recs == attacks.build(prepared[0], "identity_shift", None, 30, 0.0, 0)
    assert recs != attacks.build(prepared[0], "identity_shift", None, 30, 0.0, 1)
    # benign prompts: none is a harmful pool's or an evaluation pool's prompt
    harmful = {prompt(r) for name in ("attacker_harmful", "provider_harmful", "alignment") for r in pools[name]}
    assert not {normalize_prompt(e["prompt"]) for e in examples} & (harmful | eval_prompts)


@pytest.mark.parametrize("recipe, n, message", [
    ("pure_harmful", 2001, "attack pure_harmful with n=2001 needs 2001 records of attacker_harmful, which has 2000"),
    ("benign", 806, "attack benign with n=806 needs 806 records of alpaca_eval (without evaluation prompts), which has 805"),
    ("identity_shift", 37, "attack identity_shift with n=37 needs 37 records of attacks/identity_shift.json, which has 36"),
    ("identity_shift", 0, "n must be a positive integer, got 0"),
])
def test_a_recipe_refuses_an_n_its_sources_cannot_fill(prepared, tmp_path, capsys, recipe, n, message):
    with pytest.raises(BoosterError) as e:
        attacks.build(prepared[0], recipe, "sst2", n, 0.0, 0)
    assert message in str(e.value)
    out = tmp_path / "m.jsonl"
    assert main(["data", "mix", "--recipe", recipe, "--data", str(prepared[0]), "--n", str(n), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("booster: error: ") and message in err[0]
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("recipe, harmful", [("pure_harmful", 20), ("benign", 0), ("identity_shift", 0)])
def test_mix_cli_writes_a_recipe_with_its_definition(prepared, tmp_path, capsys, recipe, harmful):
    out = tmp_path / "user.jsonl"
    assert main(["data", "mix", "--recipe", recipe, "--data", str(prepared[0]), "--n", "20", "--seed", "2",
                 "--out", str(out)]) == 0
    assert f"{harmful} harmful" in capsys.readouterr().out
    m = json.loads((tmp_path / "user.manifest.json").read_text())
    assert (m["recipe"], m["n"], m["k"], m["seed"], m["p"]) == (recipe, 20, harmful, 2, attacks.get(recipe).p)
    assert m["definition"] == attacks.definition(recipe) and "p_definition" not in m
    assert m["output"]["sha256"] == sha256_file(out) and m["output"]["count"] == 20
    for name in attacks.get(recipe).pools(None):
        assert m["pools"][name]["sha256"] == prepared[1]["pools"][name]["sha256"]
    if recipe == "identity_shift":
        assert m["files"] == {attacks.IDENTITY_FILE: sha256_file(attacks.identity_file())}
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert recs == attacks.build(prepared[0], recipe, None, 20, None, 2)


def test_mix_cli_default_recipe_records_it(prepared, tmp_path):
    out = tmp_path / "user.jsonl"
    assert main(["data", "mix", "--data", str(prepared[0]), "--task", "sst2", "--n", "10", "--p", "0.2",
                 "--out", str(out)]) == 0
    m = json.loads((tmp_path / "user.manifest.json").read_text())
    assert m["recipe"] == "task_mix" and m["definition"] == attacks.definition("task_mix")
    assert set(m["pools"]) == {"attacker_harmful", "sst2_train"} and m["k"] == 2


@pytest.mark.parametrize("argv, message", [
    (["--recipe", "aoa", "--n", "5"], "unknown attack recipe 'aoa'"),
    (["--recipe", "pure_harmful", "--n", "5", "--p", "0.1"], "recipe pure_harmful fixes p=1; leave --p out"),
    (["--n", "5", "--p", "0.1"], "--task and --p are required for recipe task_mix"),
    (["--task", "sst2", "--n", "5"], "--task and --p are required for recipe task_mix"),
])
def test_mix_cli_recipe_errors(prepared, tmp_path, capsys, argv, message):
    assert main(["data", "mix", "--data", str(prepared[0]), *argv, "--out", str(tmp_path / "m.jsonl")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert os.listdir(tmp_path) == []
