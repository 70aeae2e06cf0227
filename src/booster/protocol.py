"""The protocol record every result carries: code version, packages, machine, seed.

Stage-specific parts (data manifest hash, judge identity, decoding settings, LoRA topology,
p and n) are added by the stage that knows them; this module supplies what every stage shares.
"""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata

from booster import __version__
from booster.paths import REPO_ROOT

PACKAGES = ("torch", "transformers", "peft", "accelerate", "safetensors", "tokenizers", "numpy")


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The checkout's commit, with ``+dirty`` when tracked files differ from it."""
    try:
        run = lambda *a: subprocess.run(  # noqa: E731
            ["git", "-C", str(REPO_ROOT), *a], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        commit = run("rev-parse", "HEAD")
        dirty = run("status", "--porcelain", "--untracked-files=no")
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def base_protocol() -> dict:
    import torch

    from booster.hardware import default_device, describe

    return {
        "booster_version": __version__,
        "git_commit": git_commit(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "machine": {"platform": platform.platform(), "torch_threads": torch.get_num_threads(),
                    **describe(default_device())},
    }
