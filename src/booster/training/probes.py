"""What the loop measures on fixed examples while it trains; nothing here is trained on.

A probe is either a list of examples, whose token-mean loss is logged (the attack's harmful
training/testing loss curves), or a :class:`HarmfulStepProbe`, which logs the quantity Booster
minimises (Huang et al., ICLR 2025, Sec. 4) on held-out harmful examples:

    h(w),   h(w − α ∇h(w)/‖∇h(w)‖),   and their difference, the harmful loss reduction

for any model, whatever method trains it, so that alignment methods can be compared on it.
‖·‖ is one L2 norm over all trainable parameters, as in ``booster.methods.booster``; the
gradient is that of the token-mean loss over all the probe's examples together.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from booster.methods.losses import causal_lm_loss_sum, supervised_tokens, to_model_device
from booster.training.batches import Example, collate


@dataclass(frozen=True)
class HarmfulStepProbe:
    examples: list[Example]
    alpha: float
    """Size of the simulated normalised harmful step (Booster's α)."""


def _loss(model, examples: list[Example], pad_id: int, micro_batch_size: int, autocast, params=None):
    """Token-mean loss over ``examples``; with ``params``, also its gradient w.r.t. them."""
    total, tokens = 0.0, 0
    grads = [torch.zeros_like(p) for p in params] if params is not None else None
    for i in range(0, len(examples), micro_batch_size):
        batch = to_model_device(model, collate(examples[i:i + micro_batch_size], pad_id))
        with torch.enable_grad() if params is not None else torch.no_grad():
            with autocast():
                loss = causal_lm_loss_sum(model, batch)
            if params is not None:
                for g, d in zip(grads, torch.autograd.grad(loss, params, allow_unused=True)):
                    if d is not None:
                        g.add_(d)
        total += float(loss.detach())
        tokens += supervised_tokens(batch)
    tokens = max(tokens, 1)
    return total / tokens, ([g / tokens for g in grads] if grads is not None else None)


def probe_loss(model, examples: list[Example], pad_id: int, micro_batch_size: int = 8,
               autocast=contextlib.nullcontext) -> float:
    """Token-mean loss on fixed examples (e.g. the harmful training/testing loss curves)."""
    was_training = model.training
    model.eval()
    try:
        return _loss(model, examples, pad_id, micro_batch_size, autocast)[0]
    finally:
        model.train(was_training)


def harmful_step_probe(model, probe: HarmfulStepProbe, pad_id: int, micro_batch_size: int = 8,
                       autocast=contextlib.nullcontext) -> dict[str, float]:
    """h(w), h(w') with w' = w − α ∇h/‖∇h‖ over the trainable parameters, their difference and
    ‖∇h‖. The weights are saved and copied back, so the model leaves exactly as it came, and no
    ``.grad`` is touched (the loop's gradient of the step is not disturbed)."""
    params = [p for p in model.parameters() if p.requires_grad]
    was_training = model.training
    model.eval()
    try:
        before, grads = _loss(model, probe.examples, pad_id, micro_batch_size, autocast, params)
        norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads)).item()
        saved = [p.detach().clone() for p in params]
        with torch.no_grad():
            if norm > 0:
                for p, g in zip(params, grads):
                    p.sub_(g.to(p.dtype), alpha=probe.alpha / norm)
        try:
            after = _loss(model, probe.examples, pad_id, micro_batch_size, autocast)[0]
        finally:
            with torch.no_grad():
                for p, w in zip(params, saved):
                    p.copy_(w)
    finally:
        model.train(was_training)
    return {"": before, "_after_step": after, "_reduction": before - after, "_grad_norm": norm}


def run_probes(model, probes: dict, pad_id: int, micro_batch_size: int, autocast) -> dict[str, float]:
    """``{"probe/NAME...": value}`` for every probe (see the module docstring)."""
    out = {}
    for name, probe in probes.items():
        if isinstance(probe, HarmfulStepProbe):
            for suffix, v in harmful_step_probe(model, probe, pad_id, micro_batch_size, autocast).items():
                out[f"probe/{name}{suffix}"] = v
        else:
            out[f"probe/{name}"] = probe_loss(model, probe, pad_id, micro_batch_size, autocast)
    return out
