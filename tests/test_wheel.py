"""The wheel is a working product: built from the sources, installed into a fresh virtual
environment outside the checkout, it loads the default judge and the shipped presets.

Offline: the wheel is built with the setuptools already installed (no build isolation) and
installed without dependencies; the fresh environment sees the running environment's packages
(torch, transformers, the encoder and model packages) through a ``.pth`` path line, whose
directory is not a site dir, so no ``.pth`` of the running environment (such as an editable
install of this checkout) takes effect there.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

# Real files end to end; CI runs every test (`make test`: pytest -q, nothing deselected).
pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
ANSWER_FIXTURE = REPO / "tests" / "evaluation" / "data" / "answer_judge_scores.json"  # see judge_fixture.py
# Not build inputs: version control, environments, outputs, tests.
LEFT_OUT = {".git", ".venv", "work", "results", "tests", "docs", "build", "dist", "__pycache__",
            ".pytest_cache", ".hypothesis", ".ci"}

# Runs inside the fresh environment: booster eval's judge path on two fixture pairs, and the
# config loader on a shipped preset.
PROBE = """
import json, sys
import booster
from booster.config import load_config
from booster.evaluation.judges import load_judge
from booster.paths import config_path
from booster.pipeline.config import ExperimentConfig

judge = load_judge("answer-judge")
pairs = [tuple(p) for p in json.loads(sys.argv[1])]
cfg = load_config(ExperimentConfig, config_path("cpu-smollm2"))
from booster.data.attacks import identity_examples, identity_file
print(json.dumps({"booster": booster.__file__, "judge_path": judge.record["_path"],
                  "sha256": judge.identity()["sha256"], "scores": judge.score(pairs),
                  "preset": cfg.name, "methods": list(cfg.methods),
                  "identity_file": str(identity_file()), "identity_examples": len(identity_examples())}))
"""


def _run(argv, cwd, env, timeout=600):
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{argv[:3]}...: {done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> tuple[Path, dict, Path]:
    """(python of a fresh venv with the wheel installed, the environment to run it in, the wheel)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src-copy"  # the build writes build/ and *.egg-info beside its inputs: not in the checkout
    shutil.copytree(REPO, src, ignore=lambda d, names: [n for n in names if n in LEFT_OUT or n.endswith(".egg-info")])
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "-q", "-w", str(tmp / "dist"), str(src)], cwd=tmp, env=os.environ)
    (wheel,) = (tmp / "dist").glob("booster-*.whl")

    env_dir = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], cwd=tmp, env=os.environ)
    python = env_dir / "bin" / "python"
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                        cwd=tmp, env=os.environ).stdout.strip())
    outer = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (purelib / "_outer_env.pth").write_text("\n".join(outer) + "\n", encoding="utf-8")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
          str(wheel)], cwd=tmp, env=os.environ)

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BOOSTER_DATA_SOURCE")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")  # BOOSTER_HOME as the suite's: converted models are reused
    (tmp / "cwd").mkdir()
    return python, env, wheel


def test_wheel_ships_presets_and_committed_judges_not_the_labels(venv):
    _, _, wheel = venv
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("answer-judge", "minilm-judge"):
        assert {f"booster/_shipped/judges/{name}/judge.json",
                f"booster/_shipped/judges/{name}/judge.safetensors"} <= names
    presets = {p.name for p in (REPO / "configs").glob("*.yaml")}
    assert presets and {f"booster/_shipped/configs/{p}" for p in presets} <= names
    assert "booster/_shipped/attacks/identity_shift.json" in names
    assert not [n for n in names if "labels" in n.split("/")[:-1] or n.endswith(".jsonl")]


def test_installed_wheel_scores_with_the_default_judge_and_loads_a_preset(venv):
    python, env, _ = venv
    cwd = python.parents[2] / "cwd"
    fixture = json.loads(ANSWER_FIXTURE.read_text(encoding="utf-8"))
    want = fixture["pairs"][:2]
    out = _run([str(python), "-c", PROBE, json.dumps([[p["question"], p["answer"]] for p in want])], cwd=cwd, env=env)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    venv_dir = python.parents[1]
    assert Path(got["booster"]).is_relative_to(venv_dir), got["booster"]  # not the checkout's src
    assert Path(got["judge_path"]).is_relative_to(venv_dir)  # the package data, not judges/
    assert got["sha256"] == fixture["judge_sha256"]
    assert got["scores"] == pytest.approx([p["score"] for p in want], abs=1e-4)
    assert got["preset"] == "cpu-smollm2" and "booster" in got["methods"]
    assert Path(got["identity_file"]).is_relative_to(venv_dir) and got["identity_examples"] >= 24


def test_installed_booster_run_checks_a_preset_by_name(venv, prepared_data, tmp_path):
    python, env, _ = venv
    cwd = python.parents[2] / "cwd"
    out = _run([str(python.parent / "booster"), "run", "quick-smollm2", f"data.dir={prepared_data}",
                f"out={tmp_path / 'run'}", "--check"], cwd=cwd, env=env)
    assert "config OK" in out.stdout


def test_installed_judge_eval_without_a_checkout_names_the_missing_labels(venv):
    python, env, _ = venv
    cwd = python.parents[2] / "cwd"
    done = subprocess.run([str(python.parent / "booster"), "judge", "eval"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("booster: error: ")
    assert "judges/labels/answers.jsonl" in lines[0] and "checkout" in lines[0]
