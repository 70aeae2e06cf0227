"""Offline by default: the booster command never tries the network unless the user opts in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import booster
from booster.cli import EPILOG, OFFLINE_VARS, build_parser, main, offline_by_default

# Any connection attempt fails loudly (and is recorded in the message if it is caught).
NO_NETWORK = """
import socket, sys
def refuse(*a, **k):
    raise AssertionError("network attempt")
socket.socket.connect = refuse
socket.create_connection = refuse
from booster.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _env_without_offline(tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in (*OFFLINE_VARS, "BOOSTER_ONLINE")}
    env.update(PYTHONPATH=str(Path(booster.__file__).resolve().parents[1]), HF_HUB_CACHE=str(tmp_path / "hf"),
               **extra)
    return env


def test_unknown_model_is_one_line_error_without_network(tmp_path):
    done = subprocess.run([sys.executable, "-c", NO_NETWORK, "model", "info", "no-such/model"],
                          env=_env_without_offline(tmp_path), capture_output=True, text=True, timeout=120)
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1, done.stderr[-2000:]
    assert err[0].startswith("booster: error: 'no-such/model' is neither a known short name")
    assert "tiny-random-llama" in err[0] and "BOOSTER_ONLINE=1" in err[0]
    assert "network attempt" not in done.stderr


def test_booster_online_lets_the_hub_be_tried(tmp_path):
    """The opt-in: with BOOSTER_ONLINE=1 the download is attempted (here refused, so it fails)."""
    done = subprocess.run([sys.executable, "-c", NO_NETWORK, "model", "info", "no-such/model"],
                          env=_env_without_offline(tmp_path, BOOSTER_ONLINE="1"), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "download failed" in done.stderr


def test_main_switches_the_hub_libraries_offline_in_process(monkeypatch, capsys):
    for var in (*OFFLINE_VARS, "BOOSTER_ONLINE"):
        monkeypatch.delenv(var, raising=False)
    assert main(["model", "info", "no-such/model"]) == 2
    assert all(os.environ[var] == "1" for var in OFFLINE_VARS)
    assert "offline" in capsys.readouterr().err


@pytest.mark.parametrize("environ,expected", [
    ({}, {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}),
    ({"BOOSTER_ONLINE": "1"}, {"BOOSTER_ONLINE": "1"}),
    ({"HF_HUB_OFFLINE": "0"}, {"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}),
])
def test_offline_by_default_respects_the_opt_in_and_the_users_own_settings(environ, expected):
    offline_by_default(environ)
    assert environ == expected


def test_help_states_the_opt_in():
    assert "BOOSTER_ONLINE=1" in EPILOG
    assert "BOOSTER_ONLINE=1" in " ".join(build_parser().format_help().split())
