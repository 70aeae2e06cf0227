"""Booster (Huang et al., "Booster: Tackling Harmful Fine-tuning for Large Language Models via
Attenuating Harmful Perturbation", ICLR 2025, arXiv:2409.01586).

Alignment-stage defense. Objective (Sec. 4, the "harmful loss reduction rate" regulariser):

    min_w  f(w) + λ · ( h(w) − h(w − α ∇h(w) / ‖∇h(w)‖) )

f: loss on an alignment batch (harmful prompt → safe answer); h: loss on a provider-harmful
batch (harmful prompt → harmful answer). The term in brackets is how much one normalised
harmful gradient step would lower the harmful loss; Booster keeps it small so that the later
harmful fine-tuning makes slow progress. Dropping the second-order term (the paper's
Algorithm 1), the update direction is

    g = ∇f(w) + λ · ( ∇h(w) − ∇h(w − α ∇h(w)/‖∇h(w)‖) )

computed with three forward/backward passes, all over the same harmful batch for both h
terms. ‖·‖ is the L2 norm over all trainable parameters together (one global norm).

Unlike the reference trainer, the three passes run over the whole global batch: the harmful
gradient is accumulated over every micro-batch (and process) *before* its norm is taken, so
gradient accumulation and DDP give the same update as one large batch.
"""

from __future__ import annotations

import torch

from booster.methods.base import Method, StepContext
from booster.methods.configs import BoosterConfig  # re-exported: its home is torch-free


class Booster(Method):
    name = "booster"

    def __init__(self, config: BoosterConfig | None = None):
        self.config = config or BoosterConfig()
        self.config.validate()
        self.streams = (self.config.align_stream, self.config.harmful_stream)

    def step(self, model, batches, ctx: StepContext) -> dict[str, float]:
        lam, alpha = self.config.lam, self.config.alpha
        harmful = batches[self.config.harmful_stream]
        params = ctx.params
        logs: dict[str, float] = {}

        if lam > 0:
            # Pass 1: ∇h(w) on the global harmful batch.
            ctx.zero_grad()
            logs["harmful_loss"] = ctx.accumulate(model, harmful)
            grad_h = [p.grad.detach().clone() for p in params]
            norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grad_h)).item()
            logs["harmful_grad_norm"] = norm

            # Pass 2: ∇h at the simulated harmful step w − α ∇h/‖∇h‖. The weights are saved
            # and copied back (not re-added), so they are restored bit for bit.
            saved = [p.detach().clone() for p in params]
            ctx.zero_grad()
            with torch.no_grad():
                if norm > 0:  # a zero gradient means no simulated step: w' = w
                    for p, g in zip(params, grad_h):
                        p.sub_(g, alpha=alpha / norm)
            try:
                logs["harmful_loss_after_step"] = ctx.accumulate(model, harmful)
            finally:
                with torch.no_grad():
                    for p, w in zip(params, saved):
                        p.copy_(w)
            del saved
            logs["harmful_loss_reduction"] = logs["harmful_loss"] - logs["harmful_loss_after_step"]

            # Keep λ(∇h(w) − ∇h(w')) in the first buffer, then add ∇f(w) from pass 3.
            for g, p in zip(grad_h, params):
                g.sub_(p.grad).mul_(lam)

        # Pass 3: ∇f(w) on the global alignment batch.
        ctx.zero_grad()
        logs["align_loss"] = ctx.accumulate(model, batches[self.config.align_stream])
        if lam > 0:
            for p, g in zip(params, grad_h):
                p.grad.add_(g)
        return logs
