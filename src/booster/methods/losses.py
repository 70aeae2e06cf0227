"""Losses as small functions of (model, micro-batch).

A micro-batch is a dict of tensors: ``input_ids``, ``attention_mask`` and ``labels`` (the
input ids with ``-100`` wherever no loss is taken: prompt, padding). Losses return the *sum*
over supervised tokens and the token count, so that a global batch split into micro-batches
(gradient accumulation) or across processes (DDP) is normalised once, by the global token
count: accumulating k micro-batches then gives exactly the gradient of one k-times-larger
batch, which per-micro-batch means do not when micro-batches hold different token counts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def model_device(model: torch.nn.Module) -> torch.device:
    """Where ``model`` takes its inputs: the device of its first parameter (the input embedding
    of a transformer, also when a device map spreads the layers over several GPUs)."""
    return next(model.parameters()).device


def to_model_device(model: torch.nn.Module, batch: dict) -> dict:
    """``batch`` with every tensor on the model's input device (the same dict if all already are)."""
    device = model_device(model)
    if all(v.device == device for v in batch.values() if torch.is_tensor(v)):
        return batch
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def supervised_tokens(batch: dict) -> int:
    """Number of tokens that carry a loss (labels shifted by one, as in causal LM training)."""
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


def causal_lm_loss_sum(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    """Sum of next-token cross-entropies over supervised tokens (at least float32)."""
    batch = to_model_device(model, batch)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logits = logits[:, :-1]
    if logits.dtype in (torch.bfloat16, torch.float16):
        logits = logits.float()  # reduce in float32; half-precision sums drift
    targets = batch["labels"][:, 1:].to(logits.device)  # a device map may end on another GPU
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
        ignore_index=IGNORE_INDEX, reduction="sum",
    )
