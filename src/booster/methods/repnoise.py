"""Representation Noising (Rosati et al., "Representation Noising: A Defence Mechanism
Against Harmful Finetuning", NeurIPS 2024, arXiv:2405.14577).

Alignment-stage defense: remove the information about harmful answers from the hidden
states, so that later harmful fine-tuning has little to recover. The loss (Sec. 3; the
authors' ``rep_noise_loss``) over an alignment batch (harmful prompt → safe answer) and a
paired harmful batch (harmful prompt → harmful answer) is

    L = f(w) + β · MMD²(h_harmful, N(0, I)) − α · log(H(w) + 1)

f: token-mean loss on the alignment batch.
MMD²: per decoder layer l, between the hidden states h_l (output of layer l, before the final
    norm) at the harmful *answer* tokens (labels ≠ -100), one sample per token, X ∈ R^{n×d},
    and standard-normal noise Y ∈ R^{n×d}; averaged over layers. Biased estimator
        MMD²(X, Y) = mean K(X, X) + mean K(Y, Y) − 2 mean K(X, Y)
    with the kernel k(a, b) = Σ_{m ∈ {1/4, 1/2, 1, 2, 4}} exp(−‖a − b‖² / (m · s)), where
    s is the mean squared distance between distinct points of the pooled sample [X; Y],
    treated as a constant (no gradient), as in the authors' code.
H: the harmful loss through the logit lens: the final norm and LM head applied to every
    layer's h_l, token-mean cross-entropy on the harmful answer tokens, averaged over layers.
    −α log(H + 1) is a bounded gradient *ascent* on the harmful answers.

Accumulation: f is the global-batch token mean (``ctx.accumulate``). The two RepNoise terms
are nonlinear in the batch (log, MMD), so they are computed per harmful micro-batch and
averaged over the micro-batches of the global batch (all processes): the update depends on
``micro_batch_size`` through these two terms only.

Noise: drawn on the hidden states' device from a generator owned by the method, re-seeded
each step with ``noise_seed(seed, step)``; draws go micro-batch by micro-batch, layer by
layer, as ``torch.randn((n, d), generator=g, dtype=float32)`` cast to the hidden states'
compute dtype. The step is the step context's index (the loop restores it on resume), so a
resumed run draws the same noise and the method keeps no state of its own. (Every process uses the same seed: fine for a noise target, and keeps the rule simple.)

``lens_tokens`` (off by default) estimates H on a random subset of the answer tokens, the
same subset in every layer, drawn after the noise from the same generator: the lens's L
full-vocabulary LM-head passes dominate the step on small-hidden, large-vocabulary models.

Differences from the authors' code, all deliberate: samples are tokens, not whole masked
sequences flattened to one vector; the hidden states are the decoder layers' outputs, where
their code hooks each layer's MLP output; the logit lens averages the L decoder layers,
where their code also includes the embedding output and counts the final logits twice.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from booster.methods.base import Method, StepContext
from booster.methods.configs import RepNoiseConfig  # re-exported: its home is torch-free
from booster.methods.hooks import decoder_layers, final_norm_and_head, first, forward_hooks
from booster.methods.losses import IGNORE_INDEX, to_model_device

BANDWIDTH_MULTIPLIERS = (0.25, 0.5, 1.0, 2.0, 4.0)  # the authors' kernel_mul=2, kernel_num=5


def noise_seed(seed: int, step: int) -> int:
    return seed * 2**32 + step


def mmd2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Biased MMD² between samples x (n×d) and y (m×d), multi-bandwidth Gaussian kernel."""
    z = torch.cat([x, y])
    sq = (z * z).sum(1)
    with torch.autocast(z.device.type, enabled=False):  # distances in z's dtype, not bf16
        dist = (sq[:, None] + sq[None, :] - 2 * z @ z.T).clamp_min(0)
    n_pool = z.size(0)
    scale = (dist.detach().sum() / max(n_pool * n_pool - n_pool, 1)).clamp_min(torch.finfo(z.dtype).tiny)
    k = sum(torch.exp(-dist / (m * scale)) for m in BANDWIDTH_MULTIPLIERS)
    n = x.size(0)
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()


def logit_lens_loss(hidden: list[torch.Tensor], labels: torch.Tensor, norm, head, max_tokens: int | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Mean over layers of the token-mean next-token loss of head(norm(h_l)) on the answer;
    ``max_tokens``: the same random subset of at most that many answer positions in every layer
    (an unbiased estimate of each layer's token mean)."""
    targets = labels[:, 1:]
    rows, cols = (targets != IGNORE_INDEX).nonzero(as_tuple=True)  # row-major: the order of a mask
    if max_tokens is not None and rows.numel() > max_tokens:
        pick = torch.randperm(rows.numel(), generator=generator, device=generator.device if generator else "cpu")
        pick = pick[:max_tokens].to(rows.device)
        rows, cols = rows[pick], cols[pick]
    losses = []
    for h in hidden:
        logits = head(norm(h[rows, cols]))  # only positions that predict an answer token
        losses.append(F.cross_entropy(logits.float() if logits.dtype in (torch.bfloat16, torch.float16) else logits,
                                      targets[rows, cols]))
    return torch.stack(losses).mean()


class RepNoise(Method):
    name = "repnoise"

    def __init__(self, config: RepNoiseConfig | None = None):
        self.config = config or RepNoiseConfig()
        self.config.validate()
        self.streams = (self.config.align_stream, self.config.harmful_stream)

    def repnoise_terms(self, model, batch: dict, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(MMD² to noise, logit-lens harmful loss H) of one harmful micro-batch, both layer means."""
        batch = to_model_device(model, batch)
        if not (batch["labels"][:, 1:] != IGNORE_INDEX).any():
            raise ValueError("harmful micro-batch has no supervised answer tokens (all labels are -100)")
        layers = decoder_layers(model)
        norm, head = final_norm_and_head(model)
        hidden: dict[int, torch.Tensor] = {}

        def capture(i, module, args, output):
            hidden[i] = first(output)

        with forward_hooks(layers, capture):
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        hidden_list = [hidden[i] for i in range(len(layers))]

        answer = batch["labels"] != IGNORE_INDEX
        mmds = []
        for h in hidden_list:
            x = h[answer]
            x = x.to(torch.promote_types(x.dtype, torch.float32))  # kernels in ≥ float32
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=torch.float32)
            mmds.append(mmd2(x, noise.to(x.dtype)))
        lens = logit_lens_loss(hidden_list, batch["labels"], norm, head, self.config.lens_tokens, generator)
        return torch.stack(mmds).mean(), lens

    def step(self, model, batches, ctx: StepContext) -> dict[str, float]:
        beta, alpha = self.config.beta, self.config.alpha
        ctx.zero_grad()
        logs: dict[str, float] = {}
        if beta > 0 or alpha > 0:
            harmful = batches[self.config.harmful_stream]
            n_micro = ctx.all_sum(float(len(harmful)))
            device = next(iter(ctx.params)).device
            generator = torch.Generator(device=device)
            # seeded by the step index (the loop's, restored on resume): a resumed run redraws the same noise
            generator.manual_seed(noise_seed(self.config.seed, ctx.step))
            mmd_sum = lens_sum = 0.0
            # β·MMD² − α·log(H + 1) per micro-batch, averaged over the global batch's micro-batches
            # (Sec. 3; these terms are nonlinear, so no token-level accumulation exists for them).
            for batch in harmful:
                with ctx.autocast():
                    mmd, lens = self.repnoise_terms(model, batch, generator)
                    term = beta * mmd - alpha * torch.log(lens + 1)
                (term / n_micro).backward()
                mmd_sum += float(mmd.detach())
                lens_sum += float(lens.detach())
            logs["mmd"] = ctx.all_sum(mmd_sum) / n_micro
            logs["harmful_lens_loss"] = ctx.all_sum(lens_sum) / n_micro
        # f: adds the global token-mean alignment gradient and all-reduces the whole of p.grad.
        logs["align_loss"] = ctx.accumulate(model, batches[self.config.align_stream])
        return logs
