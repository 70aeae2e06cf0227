"""Build hook: the wheel carries the presets, the attack data and the committed judges as
package data.

They stay where the repository keeps them (``configs/*.yaml``, ``attacks/*.json``,
``judges/answer-judge``, ``judges/minilm-judge``: the paths the README, the results and ``booster judge train --out``
use); the wheel gets copies under ``booster/_shipped/`` with the same relative paths, which
``booster.paths.shipped`` reads with ``importlib.resources``. An editable install reads the
repository itself, so nothing is copied for it. Everything else is in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

# Repository folder -> the files of it that ship (the hand-labeled set, judges/labels, does not:
# `booster judge train|eval` run from a checkout).
SHIPPED = {
    "configs": ["*.yaml"],
    "attacks": ["*.json"],
    "judges/answer-judge": ["judge.json", "judge.safetensors"],
    "judges/minilm-judge": ["judge.json", "judge.safetensors"],
}


class BuildPyWithShipped(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        for folder, patterns in SHIPPED.items():
            files = sorted(f for pattern in patterns for f in Path(folder).glob(pattern))
            if not files:
                raise SystemExit(f"setup.py: nothing to ship in {folder}/ ({', '.join(patterns)})")
            target = Path(self.build_lib) / "booster" / "_shipped" / folder
            self.mkpath(str(target))
            for f in files:
                self.copy_file(str(f), str(target / f.name))


setup(cmdclass={"build_py": BuildPyWithShipped})
