"""Training methods: each owns its per-step update (see ``base.py``).

The configs come from the torch-free ``booster.methods.configs``; the methods themselves import
torch, so they load on first use (PEP 562) and ``booster run --check`` never pulls torch in.
"""

from __future__ import annotations

import importlib

from booster.methods.configs import BoosterConfig, LisaConfig, RepNoiseConfig, SFTConfig, VaccineConfig

# name -> the module (under booster.methods) that defines it and imports torch
_LAZY = {"Method": "base", "StepContext": "base", "Booster": "booster", "Lisa": "lisa", "RepNoise": "repnoise",
         "SFT": "sft", "Vaccine": "vaccine"}

__all__ = ["Booster", "BoosterConfig", "Lisa", "LisaConfig", "Method", "RepNoise", "RepNoiseConfig", "SFT",
           "SFTConfig", "StepContext", "Vaccine", "VaccineConfig"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"booster.methods.{_LAZY[name]}"), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'booster.methods' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
