"""Training: chat batches, resumable data streams, checkpoints and the loop.

``TrainConfig`` comes from the torch-free ``booster.training.config``; everything else imports
torch, so it loads on first use (PEP 562) and ``booster run --check`` never pulls torch in.
"""

from __future__ import annotations

import importlib

from booster.training.config import TrainConfig

# name -> the module (under booster.training) that defines it and imports torch
_LAZY = {"Example": "batches", "collate": "batches", "encode_chat": "batches", "encode_records": "batches",
         "lr_factor": "loop", "probe_loss": "loop", "train": "loop"}

__all__ = ["Example", "TrainConfig", "collate", "encode_chat", "encode_records", "lr_factor", "probe_loss", "train"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"booster.training.{_LAZY[name]}"), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'booster.training' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
