"""Two `booster run` processes on one cache: a per-stage lock makes one wait for the other."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import booster
from booster import io
from booster.config import load_config
from booster.pipeline.config import ExperimentConfig
from booster.methods import registry
from booster.pipeline import align
from booster.pipeline.context import Context
from test_pipeline import tiny_config, write_cfg

SCRIPT = str(Path(__file__).parent / "tiny_pipeline.py")


def _env() -> dict:
    src = str(Path(booster.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}


def _wait_for(predicate, procs, what: str, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline or any(p.poll() is not None for p in procs):
            for p in procs:
                p.kill()
            pytest.fail(f"timed out or a run ended while waiting for {what}")
        time.sleep(0.05)


@pytest.mark.integration
def test_two_runs_on_one_cache_wait_for_each_other_and_record_the_same_stages(tmp_path, prepared_data):
    cfg = tiny_config(tmp_path, prepared_data, methods=["sft"], unaligned=False)
    cache = tmp_path / "cache"
    paths = {}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        paths[name] = write_cfg(tmp_path / name, {**cfg, "out": str(tmp_path / name / "run")})
    align_key = align.key(Context(load_config(ExperimentConfig, paths["a"]), progress=False), registry.get("sft"))

    # Hold the alignment stage's lock, so that both runs are certainly there at the same time.
    errs = {name: tmp_path / f"{name}.err" for name in paths}
    with io.file_lock(cache / "align" / f"{align_key}.lock"):
        procs = {name: subprocess.Popen([sys.executable, SCRIPT, str(path)], env=_env(),
                                        stdout=subprocess.DEVNULL, stderr=errs[name].open("w"))
                 for name, path in paths.items()}
        waiting = f"booster: waiting for stage align/{align_key} (locked by another run"
        _wait_for(lambda: all(e.exists() and waiting in e.read_text() for e in errs.values()),
                  list(procs.values()), "both runs to wait for the lock")
    for name, proc in procs.items():
        assert proc.wait(timeout=600) == 0, errs[name].read_text()[-3000:]

    a, b = (json.loads((tmp_path / n / "run" / "summary.json").read_text()) for n in ("a", "b"))
    assert a == b and len(a) == 1 and a[0]["method"] == "sft"  # the same stage records, timings included
    assert not list(cache.glob("*/*.work"))  # no half-done stage left behind
    assert len(list(cache.glob("align/*/stage.json"))) == len(list(cache.glob("attack/*/stage.json"))) == 1
    for kind in ("generate", "eval"):  # before and after the attack: HS, FA, over-refusal
        assert len(list(cache.glob(f"{kind}/*/stage.json"))) == 6
