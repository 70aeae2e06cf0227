"""Configs as people (and attackers) write them: bounded work, numbers like 1e-4, safe defaults.

One test per row of issue 16 in the config slice, plus the edges found on the way."""

from __future__ import annotations

import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
import yaml

from booster.cli import main
from booster.config import MAX_CONFIG_BYTES, apply_overrides, from_dict, load_config, option, quote
from booster.errors import ConfigError
from booster.pipeline.config import ExperimentConfig

REPO = Path(__file__).parents[1]
MINIMAL = "model: smollm2-135m-instruct\nmethods: [sft]\n"


def billion_laughs(key: str = "model") -> str:
    """Nine lists of nine aliases: 9**7 'lol's from a few hundred bytes, all under a known key."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcde", "bcdef"):
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    lines.append(f"{key}: [{','.join(['*f'] * 9)}]")
    return "\n".join(lines) + "\n"


def run_cli(capsys, *argv) -> tuple[int, str]:
    code = main(["run", *map(str, argv)])
    return code, capsys.readouterr().err


# -- row: a 321-byte YAML whose aliases expand inside a known key ---------------------------------

def test_billion_laughs_is_refused_with_a_short_message_and_little_memory(tmp_path):
    path = tmp_path / "laughs.yaml"
    path.write_text(billion_laughs())
    assert 250 < path.stat().st_size < 400
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError) as e:
            load_config(ExperimentConfig, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    msg = str(e.value)
    assert msg.startswith(f"{path}:") and "expands to more than 10,000 values" in msg and len(msg) < 300
    assert peak < 5_000_000  # bytes: the expansion (about 390 MB on main) never happens


def test_billion_laughs_through_the_cli_is_one_line_exit_2(tmp_path, capsys):
    path = tmp_path / "laughs.yaml"
    path.write_text(billion_laughs("methods"))
    code, err = run_cli(capsys, path, "--check")
    assert code == 2 and err.count("\n") == 1 and len(err) < 300
    assert err.startswith(f"booster: error: {path}:") and "expands to more than" in err


def test_plain_aliases_load_as_yaml_dump_writes_them(tmp_path):
    # yaml.dump writes an anchor wherever a Python config shares one object
    train = {"steps": 3, "lr": 1e-3}
    text = yaml.safe_dump({"model": "smollm2-135m-instruct", "methods": ["sft"],
                           "align": {"train": train}, "attack": {"train": train}})
    assert "&id001" in text and "*id001" in text
    path = tmp_path / "dumped.yaml"
    path.write_text(text)
    cfg = load_config(ExperimentConfig, path)
    assert cfg.align.train.steps == cfg.attack.train.steps == 3
    assert apply_overrides({}, ["methods=[&a sft, *a]"])["methods"] == ["sft", "sft"]


def test_an_alias_cycle_is_refused(tmp_path):
    path = tmp_path / "cycle.yaml"
    path.write_text("model: smollm2-135m-instruct\nmethods: &m [sft, *m]\n")
    with pytest.raises(ConfigError, match=r"cycle.yaml:2: an alias refers to a value that contains it"):
        load_config(ExperimentConfig, path)


@pytest.mark.parametrize("text", ["model: " + "[" * 100_000, "model: " + "[" * 70 + "]" * 70])
def test_deep_nesting_is_refused_with_the_limit(tmp_path, text):
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"deep.yaml:1: nested more than 64 levels deep"):
        load_config(ExperimentConfig, path)
    with pytest.raises(ConfigError, match=r"nested more than 64 levels deep"):
        apply_overrides({}, ["attack.ps=" + "[" * 50_000])


def test_a_huge_file_is_refused_before_parsing(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(MINIMAL + "# " + "x" * MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError, match=r"big.yaml: config file is larger than 256 KiB"):
        load_config(ExperimentConfig, path)


@pytest.mark.parametrize("line, expected", [
    ("threads: " + "9" * 5000, "invalid YAML (Exceeds the limit"),  # PyYAML raises a bare ValueError
    ("name: !!float zz", "invalid YAML (could not convert"),
    ("name: 2001-13-45", "invalid YAML (month must be in 1..12"),
])
def test_scalars_pyyaml_cannot_build_are_config_errors(tmp_path, line, expected):
    path = tmp_path / "c.yaml"
    path.write_text(MINIMAL + line + "\n")
    with pytest.raises(ConfigError) as e:
        load_config(ExperimentConfig, path)
    assert expected in str(e.value) and len(str(e.value)) < 300


def test_quoted_values_are_cut_to_80_characters(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(MINIMAL + f"threads: {'x' * 10_000}\n")
    with pytest.raises(ConfigError) as e:
        load_config(ExperimentConfig, path)
    msg = str(e.value)
    assert "key 'threads': expected int | None, got 'xxxx" in msg and "..." in msg and len(msg) < 200
    assert quote(list(range(10**6))).startswith("[0, 1, 2") and len(quote(list(range(10**6)))) <= 80
    with pytest.raises(ConfigError) as e:
        load_config(ExperimentConfig, path, ["threads=1", "eval.fa_samples_by_task={" + "t" * 1000 + ": 1}"])
    assert len(str(e.value)) < 300 and "unknown task 'tttt" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config(ExperimentConfig, path, ["threads=1", "align.train.steps=-" + "9" * 4000])
    assert len(str(e.value)) < 500 and "steps must be >= 1" in str(e.value)


def test_a_folder_or_unreadable_path_says_what_it_is(tmp_path):
    with pytest.raises(ConfigError, match="is a folder, not a config file"):
        load_config(ExperimentConfig, tmp_path)
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop)
    with pytest.raises(ConfigError, match="loop.yaml: cannot read the config file .*symbolic links"):
        load_config(ExperimentConfig, loop)


# -- row: `lr: 1e-4` in YAML, or the override `align.train.lr=1e-4` --------------------------------

def test_1e_minus_4_in_yaml_and_in_an_override_is_a_float(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(MINIMAL + "align: {train: {lr: 1e-4}}\nattack: {ps: [.5, 1E-1, 0], train: {lr: 5e-4}}\n")
    cfg = load_config(ExperimentConfig, path)
    assert cfg.align.train.lr == 1e-4 and isinstance(cfg.align.train.lr, float)
    assert cfg.attack.train.lr == 5e-4 and cfg.attack.ps == [0.5, 0.1, 0.0]
    cfg = load_config(ExperimentConfig, path, ["align.train.lr=1e-4"])
    assert cfg.align.train.lr == 1e-4
    cfg = load_config(ExperimentConfig, path, ["align.train.lr=+2E+3", "align.booster.lam=.5"])
    assert cfg.align.train.lr == 2000.0 and cfg.align.booster.lam == 0.5


@dataclass
class Numbers:
    x: float = option(1.0, "a number")
    n: int = option(1, "an integer")


@pytest.mark.parametrize("text, value", [("1e-4", 1e-4), ("-2e+3", -2000.0), (".5", 0.5), ("1E-3", 1e-3),
                                         (" 3 ", 3.0), ("7.", 7.0)])
def test_decimal_literals_are_numbers_for_float_keys(text, value):
    assert from_dict(Numbers, {"x": text}).x == value


@pytest.mark.parametrize("text", ["nan", "inf", "1e-4x", "e5", "1e", "--1", "", "0x10"])
def test_other_strings_are_not_numbers(text):
    with pytest.raises(ConfigError, match=r"'x': expected a number \(e.g. 1e-4, 0.5\), got"):
        from_dict(Numbers, {"x": text})


def test_non_finite_numbers_are_refused_and_ints_stay_strict():
    for value in (float("inf"), float("nan"), 10**400):
        with pytest.raises(ConfigError, match="'x': expected a finite number"):
            from_dict(Numbers, {"x": value})
    with pytest.raises(ConfigError, match="'n': expected an integer, got '1e3'"):
        from_dict(Numbers, {"n": "1e3"})


def test_the_override_hint_uses_a_form_that_works():
    with pytest.raises(ConfigError) as e:
        apply_overrides({}, ["align.train.lr"])
    hint = str(e.value).split("e.g. ")[1].rstrip(")")
    cfg = from_dict(ExperimentConfig, apply_overrides({"model": "m", "methods": ["sft"]}, [hint]))
    assert cfg.align.train.lr == 1e-4


# -- the YAML 1.1 booleans trap: `mixed_precision: no` ----------------------------------------------

@dataclass
class Choices:
    mp: Literal["no", "bf16"] = option("no", "mixed precision")
    mode: Literal["on", "off", "auto"] = option("auto", "a switch")
    other: Literal["a", "b"] = option("a", "no yes/no word")
    name: str = option("x", "a string")


def test_yes_no_words_read_as_booleans_map_back_to_the_choice(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(MINIMAL + "align: {train: {mixed_precision: no}}\n")
    cfg = load_config(ExperimentConfig, path, ["attack.train.mixed_precision=no"])
    assert cfg.align.train.mixed_precision == "no" and cfg.attack.train.mixed_precision == "no"
    # `on`/`off` are both booleans in YAML 1.1 and both choices here: each maps back to its word
    assert from_dict(Choices, {"mode": True}).mode == "on" and from_dict(Choices, {"mode": False}).mode == "off"
    with pytest.raises(ConfigError, match=r"'mp': must be one of \['no', 'bf16'\], got True"):
        from_dict(Choices, {"mp": True})
    with pytest.raises(ConfigError, match=r"'other': must be one of \['a', 'b'\], got False"):
        from_dict(Choices, {"other": False})
    with pytest.raises(ConfigError, match="'name': expected a string, got False .*quote it"):
        from_dict(Choices, {"name": False})


# -- row: an empty config ----------------------------------------------------------------------------

def test_empty_config_check_names_the_missing_keys_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results = sorted(p.name for p in (REPO / "results").iterdir())
    path = tmp_path / "empty.yaml"
    path.write_text("")
    code, err = run_cli(capsys, path, "--check")
    assert code == 2 and err == f"booster: error: {path}: missing required keys 'model', 'methods'\n"
    code, err = run_cli(capsys, path, "methods=[sft]")  # a partial config, without --check
    assert code == 2 and err == f"booster: error: {path}: missing required key 'model'\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.yaml"]
    assert sorted(p.name for p in (REPO / "results").iterdir()) == results


def test_a_partial_config_writes_to_a_work_folder(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(MINIMAL)
    cfg = load_config(ExperimentConfig, path)
    assert cfg.run_dir() == "work/runs/experiment"
    assert load_config(ExperimentConfig, path, ["name=x"]).run_dir() == "work/runs/x"


@pytest.mark.parametrize("override, problem", [
    ("out='{0}'", "out: only {name} may appear in braces"),
    ("out=a/{name.upper}", "out: only {name} may appear in braces"),
    ("out='{name:>999999999}'", "out: only {name} may appear in braces"),
    ("out=a/{", "out: only {name} may appear in braces"),
    ("name=../../results", "name: must be a folder name"),
    ("name=..", "name: must be a folder name"),
    ("name=", "name: must be a folder name"),
    ("model=", "model must not be empty"),
    ("cache=a\0b", "key 'cache': must not contain a NUL character"),
])
def test_run_folder_and_name_cannot_escape_or_explode(tmp_path, override, problem):
    path = tmp_path / "c.yaml"
    path.write_text(MINIMAL)
    with pytest.raises(ConfigError) as e:
        load_config(ExperimentConfig, path, [override])
    assert problem in str(e.value)
