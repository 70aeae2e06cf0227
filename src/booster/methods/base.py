"""What a method is: a small object that owns its per-step gradient computation.

The training loop (``booster.training``) owns the optimizer, schedule, clipping, checkpoints
and logging. Each optimizer step it hands the method one *global batch* per data stream it
declared (``streams``), already split into this process's micro-batches, and the method leaves
the gradient of its objective on the global batch in ``p.grad`` of the trainable parameters.
Methods with several passes per step (Booster: three) need the whole global batch at once:
Booster normalises the harmful gradient by its global norm before the second pass, which a
loop that accumulates blindly micro-batch by micro-batch cannot do correctly.

The contract, all of it (:class:`Method`): ``name``, ``streams`` and ``step`` are required; the
hooks ``streams_for_step``, ``before_step``, ``state_dict`` and ``load_state_dict`` are optional,
declared here with their defaults, and the loop calls every one of them each time (no probing).

Parameters a step does not update: every trainable parameter takes an optimizer step every
step. A parameter the method leaves without a gradient (``p.grad`` None, e.g. a layer a method
skips) counts as a zero gradient: the loop fills in zeros before clipping and the optimizer
step, so AdamW still decays its moments and applies weight decay, exactly as in a distributed
run, where :meth:`StepContext.all_sum_grads` must all-reduce a tensor for every parameter.
A method that wants a parameter frozen for a step must restore it itself.

Several batches of one stream in a step (an inner loop, periodic probe batches): the batches a
step is handed are one global batch per stream it needs; :meth:`StepContext.next_batch` draws
further global batches of a stream, from the same seeded, checkpointed position, so a resumed
run draws the same ones.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable

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
    step: int = 0
    """0-based index of the optimizer step being taken (set by the loop)."""
    total_steps: int | None = None
    """Optimizer steps of the whole run (set by the loop; None outside it)."""
    draw: Callable[[str], list[dict]] | None = None
    """The loop's stream reader behind :meth:`next_batch` (None outside the loop)."""

    def next_batch(self, stream: str) -> list[dict]:
        """One more global batch of ``stream`` (this process's micro-batches) within this step."""
        if self.draw is None:
            raise RuntimeError("next_batch: this step context has no streams (it is not the training loop's)")
        return self.draw(stream)

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


class Method:
    """The per-step update of a training method (see the module docstring). Subclasses set
    ``name`` and ``streams`` and implement ``step``; the hooks below are optional."""

    name: str
    streams: tuple[str, ...]
    """Data streams consumed each step, e.g. ``("align",)`` or ``("align", "harmful")``."""

    def step(self, model: torch.nn.Module, batches: dict[str, list[dict]], ctx: StepContext) -> dict[str, float]:
        """Leave the step's gradient in ``p.grad`` of ``ctx.params``; return scalar logs."""
        raise NotImplementedError

    def streams_for_step(self, step: int) -> tuple[str, ...]:
        """The streams step ``step`` is handed a batch of (default: all of ``streams``); a
        method alternating between streams (Lisa) names only the one it trains on."""
        return self.streams

    def before_step(self, model: torch.nn.Module, step: int, ctx: StepContext) -> None:
        """Called by the loop before each ``step`` (default: nothing)."""

    def state_dict(self) -> dict | None:
        """State to checkpoint besides the weights and streams (tensors allowed; default: none)."""
        return None

    def load_state_dict(self, state: dict | None) -> None:
        """Restore what :meth:`state_dict` returned (default: nothing to restore)."""
