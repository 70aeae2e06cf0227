"""What a method is: a small object that owns its per-step gradient computation.

The training loop (``booster.training``) owns the optimizer, schedule, clipping, checkpoints
and logging. Each optimizer step it hands the method one *global batch* per data stream it
declared (``streams``), already split into this process's micro-batches, and the method leaves
the gradient of its objective on the global batch in ``p.grad`` of the trainable parameters.
Methods with several passes per step (Booster: three) need the whole global batch at once:
Booster normalises the harmful gradient by its global norm before the second pass, which a
loop that accumulates blindly micro-batch by micro-batch cannot do correctly.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch
import torch.distributed as dist

from booster.methods.losses import causal_lm_loss_sum, supervised_tokens


@dataclass
class StepContext:
    """What a method may use besides the model and batches."""

    params: list[torch.nn.Parameter]
    """The trainable parameters (the only ones a method perturbs or reads gradients of)."""
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    """Mixed-precision context for forward passes (e.g. bf16 autocast on CPU)."""
    distributed: bool = field(default_factory=lambda: dist.is_available() and dist.is_initialized())
    """Whether gradients and token counts are summed over processes (DDP semantics)."""

    @property
    def device(self) -> torch.device:
        """The trainable parameters' device: collectives run there (NCCL takes no CPU tensor)."""
        return self.params[0].device if self.params else torch.device("cpu")

    def all_sum(self, value: float) -> float:
        if not self.distributed:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item())

    def all_sum_grads(self) -> None:
        """Sum ``p.grad`` over processes (each holds its share of the global-mean gradient)."""
        if not self.distributed:
            return
        for p in self.params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def accumulate(self, model, micro_batches: list[dict], loss_sum=causal_lm_loss_sum) -> float:
        """Add ∇(global-batch token-mean loss) to ``p.grad``; return that loss (all processes).

        Each micro-batch's summed loss is divided by the *global* number of supervised tokens,
        so the accumulated (and, in DDP, all-reduced) gradient is exactly the gradient of the
        token-mean loss over the whole global batch.
        """
        n_tokens = self.all_sum(float(sum(supervised_tokens(b) for b in micro_batches)))
        if n_tokens == 0:
            raise ValueError("global batch has no supervised tokens (all labels are -100)")
        total = 0.0
        for batch in micro_batches:
            with self.autocast():
                loss = loss_sum(model, batch)
            (loss / n_tokens).backward()
            total += float(loss.detach())
        self.all_sum_grads()
        return self.all_sum(total) / n_tokens


class Method(Protocol):
    """The per-step update of a training method (see the module docstring)."""

    name: str
    streams: tuple[str, ...]
    """Data streams consumed each step, e.g. ``("align",)`` or ``("align", "harmful")``."""

    def step(self, model: torch.nn.Module, batches: dict[str, list[dict]], ctx: StepContext) -> dict[str, float]:
        """Leave the step's gradient in ``p.grad`` of ``ctx.params``; return scalar logs."""
        ...
