"""Vaccine (Huang et al., "Vaccine: Perturbation-aware Alignment for Large Language Models
against Harmful Fine-tuning Attack", NeurIPS 2024, arXiv:2402.01109).

Alignment-stage defense. Harmful fine-tuning later drifts the hidden embeddings of the
alignment data; Vaccine trains the model to stay aligned when its hidden embeddings are
perturbed adversarially (Sec. 4, Algorithm 1):

    min_w  max_{‖ε‖ ≤ ρ}  f(w; e_l + ε_l for every layer l)

f: the alignment loss; e_l: the output of layer l's attention module. The inner maximum is
taken to first order, as in SAM but on activations instead of weights:

    ε_l = ρ · ∇_{e_l} f / ‖(‖∇_{e_1} f‖, …, ‖∇_{e_L} f‖)‖

one norm over all layers. Two passes per step: pass 1 records ∇_{e_l} f (no weight gradient
is needed, so only activation gradients are computed); pass 2 adds ε_l to the attention
outputs and its weight gradient, the only one left in ``p.grad``, is the update.

Both passes run over the whole global batch: the activation gradients of every micro-batch
(and process) enter one norm before any ε is formed, so gradient accumulation and DDP
perturb exactly as one large batch would. ε_l of a micro-batch is its own slice of the
global-batch gradient. Unlike the reference trainer, no 1e-7 is added to the norm (a zero
gradient gives ε = 0), so ‖ε‖ = ρ exactly.
"""

from __future__ import annotations

import math

import torch

from booster.methods.base import Method, StepContext
from booster.methods.configs import VaccineConfig  # re-exported: its home is torch-free
from booster.methods.hooks import attention_modules, first, forward_hooks, replace_first
from booster.methods.losses import causal_lm_loss_sum, supervised_tokens


class Vaccine(Method):
    name = "vaccine"

    def __init__(self, config: VaccineConfig | None = None):
        self.config = config or VaccineConfig()
        self.config.validate()
        self.streams = (self.config.stream,)

    def step(self, model, batches, ctx: StepContext) -> dict[str, float]:
        rho = self.config.rho
        micro = batches[self.config.stream]
        ctx.zero_grad()
        if rho == 0:  # no perturbation: plain SFT, bit for bit
            loss = ctx.accumulate(model, micro)
            return {"align_loss": loss, "perturbed_loss": loss, "perturbation_norm": 0.0}
        attn = attention_modules(model)

        # Pass 1: ∇_{e_l} f for every layer and micro-batch. A zero tensor δ_l is added to each
        # attention output; ∂f/∂δ_l = ∂f/∂e_l, also where e_l itself needs no gradient.
        n_tokens = ctx.all_sum(float(sum(supervised_tokens(b) for b in micro)))
        if n_tokens == 0:
            raise ValueError("global batch has no supervised tokens (all labels are -100)")
        grads, clean = [], 0.0
        for batch in micro:
            probes: dict[int, torch.Tensor] = {}

            def add_probe(i, module, args, output):
                out = first(output)
                probes[i] = torch.zeros_like(out, requires_grad=True)
                return replace_first(output, out + probes[i])

            with forward_hooks(attn, add_probe), ctx.autocast():
                loss = causal_lm_loss_sum(model, batch)
            order = sorted(probes)
            g = torch.autograd.grad(loss / n_tokens, [probes[i] for i in order], allow_unused=True)
            grads.append([torch.zeros_like(probes[i]) if gi is None else gi for i, gi in zip(order, g)])
            clean += float(loss.detach())
            del loss

        # ε_l = ρ g_l / ‖g‖, one norm over layers, micro-batches and processes.
        sq = ctx.all_sum(sum(float((gi.double() ** 2).sum()) for g in grads for gi in g))
        scale = rho / math.sqrt(sq) if sq > 0 else 0.0
        eps = {id(b): [gi.mul_(scale) for gi in g] for b, g in zip(micro, grads)}
        del grads
        eps_norm = math.sqrt(ctx.all_sum(sum(float((e.double() ** 2).sum()) for g in eps.values() for e in g)))

        # Pass 2: ∇_w f(w; e + ε) on the global batch, ε held constant.
        current: list[torch.Tensor] = []

        def perturb(i, module, args, output):
            out = first(output)
            if out.shape != current[i].shape:
                raise RuntimeError(f"attention output {i} changed shape between passes: "
                                   f"{tuple(current[i].shape)} -> {tuple(out.shape)}")
            return replace_first(output, out + current[i].to(out.dtype))

        def perturbed_loss_sum(model, batch):
            current[:] = eps[id(batch)]
            return causal_lm_loss_sum(model, batch)

        with forward_hooks(attn, perturb):
            perturbed = ctx.accumulate(model, micro, loss_sum=perturbed_loss_sum)
        return {"align_loss": ctx.all_sum(clean) / n_tokens, "perturbed_loss": perturbed,
                "perturbation_norm": eps_norm}
