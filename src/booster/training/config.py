"""The training loop's settings, without torch.

This module exists so that the CLI's config check (``booster run CONFIG --check``) can build and
validate a config without importing torch; ``booster.training.loop`` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from booster.config import option
from booster.errors import ConfigError


@dataclass
class TrainConfig:
    steps: int = option(100, "optimizer steps")
    lr: float = option(1e-4, "peak learning rate")
    optimizer: Literal["adamw", "sgd"] = option("adamw", "optimizer (AdamW: β=(0.9, 0.999), ε=1e-8)")
    weight_decay: float = option(0.0, "decoupled weight decay")
    schedule: Literal["constant", "linear", "cosine"] = option("constant", "decay after warm-up")
    warmup_steps: int = option(0, "linear warm-up steps")
    max_grad_norm: float | None = option(1.0, "clip the step's gradient to this global L2 norm (null: off)")
    batch_size: int = option(8, "global batch size (examples per step) of every stream")
    batch_sizes: dict[str, int] = option(factory=dict, help="per-stream overrides, e.g. {harmful: 4}")
    micro_batch_size: int = option(8, "examples per forward/backward (gradient accumulation below batch_size)")
    max_length: int = option(256, "tokens per example (longer ones are truncated)")
    mixed_precision: Literal["no", "bf16"] = option("no", "bf16 autocast for forward passes")
    seed: int = option(0, "seed of data order and dropout")
    log_every: int = option(10, "print a log line every N steps")
    checkpoint_every: int = option(50, "checkpoint every N steps (and at the end)")
    probe_every: int = option(0, "evaluate the probe losses every N steps (0: never)")

    def validate(self):
        for key in ("steps", "batch_size", "micro_batch_size", "max_length", "log_every", "checkpoint_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ConfigError(f"max_grad_norm must be > 0 or null, got {self.max_grad_norm}")
        if self.warmup_steps < 0 or self.probe_every < 0:
            raise ConfigError("warmup_steps and probe_every must be >= 0")
        bad = {k: v for k, v in self.batch_sizes.items() if v < 1}
        if bad:
            raise ConfigError(f"batch_sizes must be >= 1, got {bad}")
