"""Names a package exports but imports on first use (PEP 562).

The packages whose modules import torch (methods, training, models' generation) export their
names through this, so that `booster --help`, `data check` and `run --check` import no torch.
"""

from __future__ import annotations

import importlib
import sys
from typing import Callable


def lazy_exports(package: str, table: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``table`` maps each exported name to the
    submodule (under ``package``) that defines it."""

    def __getattr__(name: str):
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{table[name]}"), name)
        setattr(sys.modules[package], name, value)  # later look-ups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(table))

    return __getattr__, __dir__
