"""SFT, the reference every defense is compared against: its gradient is the gradient of the
token-mean next-token loss over the whole global batch, computed here independently."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call

from booster.methods.base import StepContext
from booster.methods.sft import SFT, SFTConfig

from toy_models import ToyLM, make_batch, trainable


def test_sft_gradient_is_the_token_mean_loss_gradient():
    model = ToyLM()
    micro = [make_batch(1, 3, 7), make_batch(2, 2, 9)]  # unequal shapes and token counts
    ctx = StepContext(params=trainable(model))
    logs = SFT(SFTConfig(stream="user")).step(model, {"user": micro}, ctx)

    names = [n for n, p in model.named_parameters() if p.requires_grad]
    w = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    loss_sum, tokens = 0.0, 0
    for b in micro:  # sum of per-token losses over every micro-batch, divided by all their tokens
        logits = functional_call(model, {**w, **frozen}, (b["input_ids"],)).logits[:, :-1]
        labels = b["labels"][:, 1:].reshape(-1)
        loss_sum = loss_sum + F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels, ignore_index=-100,
                                              reduction="sum")
        tokens += int((labels != -100).sum())
    want = torch.autograd.grad(loss_sum / tokens, [w[n] for n in names])
    assert abs(logs["loss"] - float(loss_sum.detach() / tokens)) < 1e-5
    for p, g in zip(ctx.params, want):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-6)
