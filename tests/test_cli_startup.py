"""A CLI that answers at once: help, data checks and config checks load no ML library."""

from __future__ import annotations

import pytest
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

import booster

HEAVY = ("torch", "transformers", "accelerate", "peft")

# Runs each argv through booster.cli.main in one fresh interpreter, then reports the exit codes
# and which heavy libraries were imported on the way.
PROBE = """
import json, sys
from booster.cli import main
codes = []
for argv in json.loads(sys.argv[1]):
    try:
        codes.append(main(argv))
    except SystemExit as e:  # --help exits through argparse
        codes.append(e.code)
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[2])))
print(json.dumps({"codes": codes, "heavy": heavy}))
"""


def probe(argvs: list[list[str]]) -> dict:
    src = str(Path(booster.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src}
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argvs), json.dumps(HEAVY)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def help_paths() -> list[list[str]]:
    """Every command and subcommand of the parser, each followed by --help."""
    import argparse

    from booster.cli import build_parser

    def walk(parser, prefix):
        yield [*prefix, "--help"]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, [*prefix, name])

    return list(walk(build_parser(), []))


def test_every_help_answers_without_torch():
    paths = help_paths()
    assert ["run", "--help"] in paths and ["data", "check", "--help"] in paths and len(paths) > 10
    result = probe(paths)
    assert result["codes"] == [0] * len(paths)
    assert result["heavy"] == []


def test_data_check_answers_without_torch(tmp_path):
    f = tmp_path / "one.jsonl"
    f.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                          {"role": "assistant", "content": "hello"}]}) + "\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    result = probe([["data", "check", str(f)], ["data", "check", str(bad)]])
    assert result == {"codes": [0, 2], "heavy": []}


def test_data_mix_answers_without_torch(tmp_path, prepared_data):
    out = tmp_path / "mix.jsonl"
    result = probe([["data", "mix", "--data", str(prepared_data), "--task", "sst2", "--n", "10", "--p", "0.2",
                     "--out", str(out)]])
    assert result == {"codes": [0], "heavy": []}
    assert len(out.read_text().splitlines()) == 10


def test_run_check_builds_no_stages_and_loads_no_model_library(tmp_path, prepared_data):
    model = tmp_path / "model"  # a local model folder: resolving it builds nothing
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"")
    cfg = {"name": "t", "model": str(model), "methods": ["sft"], "data": {"dir": str(prepared_data)},
           "out": str(tmp_path / "run"), "cache": str(tmp_path / "cache")}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = probe([["run", str(path), "--check"], ["run", str(path), "--check", "model=no-such/model"]])
    assert result["codes"] == [0, 2]
    # the config dataclasses live in torch-free modules (booster.methods.configs,
    # booster.training.config) and the method/loop packages load their torch code lazily
    assert result["heavy"] == []
    assert not (tmp_path / "cache").exists()



def test_run_check_prepares_missing_data_without_torch(tmp_path, raw_root):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"")
    data = tmp_path / "data"  # no manifest yet: --check prepares the pools from the raw source
    cfg = {"name": "t", "model": str(model), "methods": ["booster"],
           "data": {"dir": str(data), "source": str(raw_root)},
           "out": str(tmp_path / "run"), "cache": str(tmp_path / "cache")}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert probe([["run", str(path), "--check"]]) == {"codes": [0], "heavy": []}
    assert (data / "manifest.json").is_file()
    assert not (tmp_path / "cache").exists()

def test_bench_cli_prints_a_table_and_writes_json(tmp_path, capsys):
    from booster.cli import main

    out = tmp_path / "cli.json"
    assert main(["bench", "cli", "--runs", "1", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| `booster --help` |" in table and "| `booster data check (1 line)` |" in table
    rows = json.loads(out.read_text())["rows"]
    assert [r["command"] for r in rows][1:] == ["booster --help", "booster data check (1 line)"]
    assert all(r["median_s"] > 0 and r["peak_rss_mb"] > 0 for r in rows)
    assert main(["bench", "cli", "--runs", "0"]) == 2


def test_lazy_exports_resolve_to_the_defining_modules_objects():
    import booster.methods as methods
    import booster.training as training
    from booster.methods.booster import Booster
    from booster.training.loop import train

    assert methods.Booster is Booster and training.train is train
    assert "Booster" in dir(methods) and "train" in dir(training)
    with pytest.raises(AttributeError, match="booster.methods.*no attribute 'Nope'"):
        methods.Nope  # noqa: B018
