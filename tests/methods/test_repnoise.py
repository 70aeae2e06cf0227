"""RepNoise's terms and update against independent implementations (arXiv:2405.14577, Sec. 3):

    L = f(w) + β · mean_l MMD²(h_l[answer], N(0, I)) − α · log(mean_l CE(head(norm(h_l))) + 1)

with the RepNoise terms averaged over harmful micro-batches.
"""

from __future__ import annotations

import copy

import pytest
import torch

from booster.config import from_dict
from booster.errors import ConfigError
from booster.methods.base import StepContext
from booster.methods.losses import IGNORE_INDEX
from booster.methods.repnoise import RepNoise, RepNoiseConfig, mmd2, noise_seed
from booster.methods.sft import SFT

from llama_helpers import (hooks_left, llama_batch, mean_loss, pad_cat, single_thread, tiny_llama, token_mean_ce,
                           trainable)

one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)


@pytest.fixture(scope="module")
def model():
    return tiny_llama()


def mmd2_reference(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Biased MMD² with the sum of 5 Gaussian kernels, bandwidths s·{1/4, …, 4}, written out."""
    z = torch.cat([x, y])
    dist = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    n = z.size(0)
    s = dist.detach().sum() / (n * n - n)
    k = sum(torch.exp(-dist / (s * 2.0 ** e)) for e in (-2, -1, 0, 1, 2))
    m = x.size(0)
    return (k[:m, :m] + k[m:, m:] - k[:m, m:] - k[m:, :m]).mean()


def test_mmd_matches_reference_is_zero_on_identical_samples_and_grows_with_shift():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(24, 8, generator=g, dtype=torch.float64)
    y = torch.randn(24, 8, generator=g, dtype=torch.float64)
    torch.testing.assert_close(mmd2(x, y), mmd2_reference(x, y), atol=1e-13, rtol=1e-10)
    assert abs(mmd2(x, x).item()) < 1e-12
    values = [mmd2(x, y + shift).item() for shift in (0.0, 0.5, 1.0, 2.0, 4.0)]
    assert all(a < b for a, b in zip(values, values[1:])), values
    # Gradients flow to the samples (the bandwidth is a constant).
    xr = x.clone().requires_grad_(True)
    assert torch.autograd.grad(mmd2(xr, y + 1.0), xr)[0].abs().sum().item() > 0


def layer_outputs(model, batch):
    """(raw output of every decoder layer, final logits), with the test's own hooks."""
    outs = []

    def keep(mod, args, out):
        outs.append(out[0] if isinstance(out, tuple) else out)

    handles = [layer.register_forward_hook(keep) for layer in model.model.layers]
    try:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    finally:
        for h in handles:
            h.remove()
    return outs, logits


def lens_reference(model, hidden, labels) -> torch.Tensor:
    """Per-layer loop: full logits of head(norm(h_l)) at every position, token-mean CE."""
    losses = [token_mean_ce(model.lm_head(model.model.norm(h)), labels) for h in hidden]
    return sum(losses) / len(losses)


def test_logit_lens_equals_per_layer_loop(model):
    m = copy.deepcopy(model)  # output_hidden_states makes transformers keep hooks on the model
    batch = llama_batch(11, 3, 10)
    _, lens = RepNoise().repnoise_terms(m, batch, torch.Generator().manual_seed(0))
    out = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True)
    # hidden_states[l] is layer l's output for l < L; the last entry is already normed, so
    # the last layer's lens is the model's own logits.
    n_layers = len(m.model.layers)
    per_layer = [token_mean_ce(m.lm_head(m.model.norm(out.hidden_states[l])), batch["labels"])
                 for l in range(1, n_layers)] + [token_mean_ce(out.logits, batch["labels"])]
    torch.testing.assert_close(lens, torch.stack(per_layer).mean(), atol=1e-12, rtol=0)


def reference_update(model, align, harmful, beta, alpha, seed, step) -> list[torch.Tensor]:
    params = trainable(model)
    loss = mean_loss(model, pad_cat(align))  # f: token mean over the whole alignment batch
    gen = torch.Generator().manual_seed(noise_seed(seed, step))
    for batch in harmful:
        hidden, _ = layer_outputs(model, batch)
        answer = batch["labels"] != IGNORE_INDEX
        mmds = []
        for h in hidden:
            x = h[answer]
            y = torch.randn(x.shape, generator=gen, dtype=torch.float32).double()
            mmds.append(mmd2_reference(x, y))
        lens = lens_reference(model, hidden, batch["labels"])
        loss = loss + (beta * sum(mmds) / len(mmds) - alpha * torch.log(lens + 1)) / len(harmful)
    return list(torch.autograd.grad(loss, params))


@pytest.mark.parametrize("beta,alpha", [(0.001, 1.0), (0.5, 0.3)])
def test_total_gradient_matches_full_formula(model, beta, alpha):
    align = [llama_batch(1, 2, 9), llama_batch(2, 3, 7)]     # unequal shapes: token-mean over both
    harmful = [llama_batch(3, 2, 8), llama_batch(4, 3, 10)]
    method = RepNoise(RepNoiseConfig(beta=beta, alpha=alpha, seed=5))
    ctx = StepContext(params=trainable(model), step=3)  # step 3 draws the noise of step 3, resumed or not
    logs = method.step(model, {"align": align, "harmful": harmful}, ctx)
    want = reference_update(model, align, harmful, beta, alpha, seed=5, step=3)
    for p, r in zip(ctx.params, want):
        torch.testing.assert_close(p.grad, r, atol=1e-10, rtol=1e-8)
    assert method.state_dict() is None  # nothing of its own to checkpoint: the loop restores the step
    assert set(logs) == {"mmd", "harmful_lens_loss", "align_loss"}
    assert hooks_left(model) == []


def test_each_term_alone_changes_the_gradient(model):
    """β and α each contribute (guards against a term silently dropping out)."""
    align, harmful = [llama_batch(5, 2, 8)], [llama_batch(6, 2, 8)]

    def grads(beta, alpha):
        ctx = StepContext(params=trainable(model))
        RepNoise(RepNoiseConfig(beta=beta, alpha=alpha)).step(model, {"align": align, "harmful": harmful}, ctx)
        return torch.cat([p.grad.flatten() for p in ctx.params])

    base = grads(0.0, 0.0)
    assert (grads(1.0, 0.0) - base).abs().max() > 1e-8
    assert (grads(0.0, 1.0) - base).abs().max() > 1e-8


def test_zero_weights_is_exactly_sft(model):
    align, harmful = [llama_batch(7, 2, 9), llama_batch(8, 2, 6)], [llama_batch(9, 2, 8)]
    ctx = StepContext(params=trainable(model))
    RepNoise(RepNoiseConfig(beta=0.0, alpha=0.0)).step(model, {"align": align, "harmful": harmful}, ctx)
    got = [p.grad.clone() for p in ctx.params]
    ctx = StepContext(params=trainable(model))
    SFT().step(model, {"align": align}, ctx)
    for g, p in zip(got, ctx.params):
        assert torch.equal(g, p.grad)


def test_hooks_removed_when_forward_raises(model):
    bad = llama_batch(10, 2, 8)
    bad["input_ids"][0, 0] = 10**9  # out of the vocabulary: the embedding lookup raises
    with pytest.raises((IndexError, RuntimeError)):
        RepNoise().step(model, {"align": [llama_batch(1, 2, 8)], "harmful": [bad]},
                        StepContext(params=trainable(model)))
    assert hooks_left(model) == []


@pytest.mark.parametrize("key,value", [("beta", -0.1), ("alpha", -1.0), ("seed", -1), ("lens_tokens", 0)])
def test_invalid_hyperparameters(key, value):
    with pytest.raises(ConfigError, match=key):
        from_dict(RepNoiseConfig, {key: value})


def test_lens_tokens_estimates_h_on_one_random_subset_of_answer_tokens_shared_by_layers(model):
    m = copy.deepcopy(model)
    batch = llama_batch(11, 3, 10)
    hidden, _ = layer_outputs(m, batch)
    targets = batch["labels"][:, 1:]
    rows, cols = (targets != IGNORE_INDEX).nonzero(as_tuple=True)
    k = 5
    assert rows.numel() > k
    # Reference: the positions a generator in the same state draws, every layer's CE on them.
    pick = torch.randperm(rows.numel(), generator=torch.Generator().manual_seed(3))[:k]
    r, c = rows[pick], cols[pick]
    per_layer = [torch.nn.functional.cross_entropy(m.lm_head(m.model.norm(h[:, :-1]))[r, c], targets[r, c])
                 for h in hidden]
    from booster.methods.repnoise import logit_lens_loss

    got = logit_lens_loss(hidden, batch["labels"], m.model.norm, m.lm_head, k, torch.Generator().manual_seed(3))
    torch.testing.assert_close(got, torch.stack(per_layer).mean(), atol=1e-12, rtol=0)
    # At least as many tokens as the answer has: the exact loss, with no draw.
    exact = logit_lens_loss(hidden, batch["labels"], m.model.norm, m.lm_head)
    g = torch.Generator().manual_seed(3)
    torch.testing.assert_close(logit_lens_loss(hidden, batch["labels"], m.model.norm, m.lm_head, 10**6, g), exact,
                               atol=0, rtol=0)
    assert torch.equal(g.get_state(), torch.Generator().manual_seed(3).get_state())
