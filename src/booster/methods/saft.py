"""SAFT, Safety-Aware Fine-Tuning (Choi et al., "Safety-Aware Fine-Tuning of Large Language
Models", arXiv:2410.10014, 2024, Section 3).

Before fine-tuning, each user sample i is embedded by the model as it is then (the aligned
model): z_i = the mean, over the answer's tokens, of one layer's hidden states. With Z the
centred matrix of the z_i (rows), v1 its top right-singular vector, the score is

    s_i = ⟨z_i − z̄, v1⟩²                                             (Section 3, the filtering score)

(the sign of v1 is arbitrary; the square removes it). Harmful samples are the minority that
moves the data most along one direction, so the highest scores are dropped: a fixed ``share``
of the samples, or those above the ``quantile`` of the scores; the threshold used is recorded,
with leakage and false removals against the mix's ground truth as for the moderation filter.
The rest is fine-tuned on with plain SFT.

Deviations: one layer and the top singular vector only (the paper also studies more singular
vectors); the layer defaults to the middle one (a toolkit choice, not tuned); samples whose
answer max_length cuts away entirely are kept unscored (training drops them anyway).
"""

from __future__ import annotations

import numpy as np

from booster.methods.configs import SAFTConfig  # re-exported: its home is torch-free
from booster.methods.userdata import filter_report


def scores(features: np.ndarray) -> np.ndarray:
    """s_i = ⟨z_i − z̄, v1⟩², v1 the top right-singular vector of the centred features."""
    z = np.asarray(features, dtype=np.float64)
    z = z - z.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    return (z @ vt[0]) ** 2


def select(s: np.ndarray, config: SAFTConfig) -> tuple[np.ndarray, float | None]:
    """(keep mask, threshold): drop the top ``share`` (k = floor(share·n + 0.5), ties broken by
    position) or the scores above the ``quantile``. The threshold of ``share`` is the lowest
    dropped score (None when nothing is dropped)."""
    n = len(s)
    if config.select == "quantile":
        t = float(np.quantile(s, config.quantile))
        return s <= t, t
    from booster.data.mix import harmful_count  # the same rounding as the harmful share p

    k = harmful_count(n, config.share)
    order = np.argsort(-s, kind="stable")
    keep = np.ones(n, dtype=bool)
    keep[order[:k]] = False
    return keep, (float(s[order[k - 1]]) if k else None)


class _Reached(Exception):
    """Raised by the hook below to stop the forward pass once the wanted layer is reached."""

    def __init__(self, hidden):
        self.hidden = hidden


def _decoder_layers(model):
    """The model's stack of decoder layers (the ModuleList with one entry per hidden layer)."""
    import torch

    n = model.config.num_hidden_layers
    return next((m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == n), None)


def _hidden_state(model, input_ids, attention_mask, layer: int):
    """``hidden_states[layer]`` of the forward pass, computing no layer above it: the input of
    decoder layer ``layer`` is that hidden state, so the pass stops there (SAFT reads the middle
    layer: half the layers and no LM head, over the whole user file). The last layer's state
    (after the final norm) needs the full pass."""
    layers = _decoder_layers(model)
    if layers is None or layer >= len(layers):
        return model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True).hidden_states[layer]

    def stop(module, args, kwargs):
        raise _Reached(args[0] if args else kwargs["hidden_states"])

    handle = layers[layer].register_forward_pre_hook(stop, with_kwargs=True)
    try:
        model(input_ids=input_ids, attention_mask=attention_mask)
    except _Reached as reached:
        return reached.hidden
    finally:
        handle.remove()
    raise RuntimeError(f"the forward pass never reached decoder layer {layer}")


def features(model, tokenizer, records: list[dict], layer: int, max_length: int,
             batch_size: int = 8) -> list[np.ndarray | None]:
    """z_i of each record (None where no answer token survives max_length)."""
    import torch

    from booster.training.batches import collate, encode_chat

    examples = [encode_chat(tokenizer, r["messages"], max_length) for r in records]
    out: list[np.ndarray | None] = [None] * len(records)
    todo = [i for i, e in enumerate(examples) if e is not None]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(todo), batch_size):
                idx = todo[start:start + batch_size]
                batch = collate([examples[i] for i in idx], tokenizer.pad_token_id)
                hidden = _hidden_state(model, batch["input_ids"].to(device), batch["attention_mask"].to(device),
                                       layer).double().cpu()
                answer = (batch["labels"] != -100).double().unsqueeze(-1)  # the supervised answer tokens
                means = (hidden * answer).sum(1) / answer.sum(1)
                for row, i in enumerate(idx):
                    out[i] = means[row].numpy()
    finally:
        model.train(was_training)
    return out


def prepare_data(config: SAFTConfig, records: list[dict], view) -> tuple[list[dict], dict]:
    model = view.model()
    layer = config.layer if config.layer is not None else model.config.num_hidden_layers // 2
    z = features(model, view.tokenizer, records, layer, view.max_length)
    scored = [i for i, f in enumerate(z) if f is not None]
    keep = [True] * len(records)
    threshold = None
    if len(scored) >= 2:  # one sample has no direction to score
        mask, threshold = select(scores(np.stack([z[i] for i in scored])), config)
        for i, k in zip(scored, mask):
            keep[i] = bool(k)
    report = {"filter": "SAFT top singular direction", "layer": layer, "select": config.select,
              "share": config.share if config.select == "share" else None,
              "quantile": config.quantile if config.select == "quantile" else None,
              "threshold": threshold, "n_scored": len(scored), **filter_report(records, keep)}
    return [r for r, k in zip(records, keep) if k], report
