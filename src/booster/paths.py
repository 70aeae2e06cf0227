"""Where things live: the shipped files, the raw-data source folder, the prepared-data folder,
the cache.

Shipped files (the presets ``configs/*.yaml``, the identity-shift attack data
``attacks/identity_shift.json`` and the committed judges ``judges/answer-judge``,
``judges/minilm-judge``) stay where the repository keeps them; ``setup.py`` copies them into
the wheel as package data under ``booster/_shipped/`` with the same relative paths.
:func:`shipped` reads that copy (``importlib.resources``) in an installed wheel and the
repository's own files in a checkout (editable install or ``PYTHONPATH=src``), so that
``booster judge train --out judges/answer-judge`` updates what a checkout loads.

Environment variables override every default:

- ``BOOSTER_DATA_SOURCE``: folder with the raw datasets in their original formats
  (default: ``../shared/data`` relative to the working directory or to the repository).
- ``BOOSTER_HOME``: cache for converted models and other derived artifacts
  (default: ``~/.cache/booster``).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from booster.errors import BoosterError

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_DIR = "_shipped"  # inside the installed package; written by setup.py, absent in a checkout
PRESETS = "configs"


def shipped(relative: str) -> Path:
    """A shipped file or folder by its path in the repository (e.g. ``judges/answer-judge``)."""
    packaged = resources.files("booster") / SHIPPED_DIR
    # Wheels install unpacked, so the package data is a plain folder (a Path), never a zip member.
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged / relative
    return REPO_ROOT / relative


def preset_names() -> list[str]:
    return sorted(p.stem for p in shipped(PRESETS).glob("*.yaml"))


def config_path(spec: str) -> str | Path:
    """``booster run CONFIG``: an existing file, else a shipped preset named by its file name
    (``cpu-smollm2`` or ``cpu-smollm2.yaml``), which also works from a wheel without a checkout."""
    path = Path(spec)
    if path.exists() or len(path.parts) != 1:
        return spec  # a path, as given: the config loader reports what is wrong with it
    preset = shipped(PRESETS) / f"{path.name.removesuffix('.yaml')}.yaml"
    if preset.is_file():
        return preset
    raise BoosterError(f"config '{spec}': no such file and no such preset (presets: {', '.join(preset_names())})")


def booster_home() -> Path:
    return Path(os.environ.get("BOOSTER_HOME", Path.home() / ".cache" / "booster")).expanduser()


def default_data_source() -> Path | None:
    """The raw-data folder, or None when no local copy is found (then use the hub)."""
    env = os.environ.get("BOOSTER_DATA_SOURCE")
    if env:
        return Path(env).expanduser()
    for candidate in (Path.cwd().parent / "shared" / "data", REPO_ROOT.parent / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return None


def default_work_dir() -> Path:
    """Prepared data, runs and results of the main job (``./work``)."""
    return Path(os.environ.get("BOOSTER_WORK", "work"))
