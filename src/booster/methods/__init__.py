"""Training methods: each owns its per-step update (see ``base.py``).

The configs come from the torch-free ``booster.methods.configs``; the methods themselves import
torch, so they load on first use (PEP 562) and ``booster run --check`` never pulls torch in.
"""

from __future__ import annotations

from booster.lazy import lazy_exports
from booster.methods.configs import BoosterConfig, LisaConfig, RepNoiseConfig, SFTConfig, VaccineConfig

# name -> the module (under booster.methods) that defines it and imports torch
_LAZY = {"Method": "base", "StepContext": "base", "Booster": "booster", "Lisa": "lisa", "RepNoise": "repnoise",
         "SFT": "sft", "Vaccine": "vaccine"}

__all__ = ["Booster", "BoosterConfig", "Lisa", "LisaConfig", "Method", "RepNoise", "RepNoiseConfig", "SFT",
           "SFTConfig", "StepContext", "Vaccine", "VaccineConfig"]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
