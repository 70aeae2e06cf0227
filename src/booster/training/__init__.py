"""Training: chat batches, resumable data streams, checkpoints and the loop.

``TrainConfig`` comes from the torch-free ``booster.training.config``; everything else imports
torch, so it loads on first use (PEP 562) and ``booster run --check`` never pulls torch in.
"""

from __future__ import annotations

from booster.lazy import lazy_exports
from booster.training.config import TrainConfig

# name -> the module (under booster.training) that defines it and imports torch
_LAZY = {"Example": "batches", "collate": "batches", "encode_chat": "batches", "encode_records": "batches",
         "lr_factor": "loop", "probe_loss": "probes", "HarmfulStepProbe": "probes", "train": "loop"}

__all__ = ["Example", "HarmfulStepProbe", "TrainConfig", "collate", "encode_chat", "encode_records", "lr_factor", "probe_loss", "train"]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
