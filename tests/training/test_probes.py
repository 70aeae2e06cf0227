"""The alignment diagnostic (booster.training.probes) against the formula computed independently
on the toy model: h(w), h(w − α∇h/‖∇h‖) and their difference, Booster's quantity (Sec. 4)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from booster.training import HarmfulStepProbe
from booster.training.batches import Example
from booster.training.probes import harmful_step_probe, probe_loss, run_probes

sys.path.insert(0, str(Path(__file__).parents[1]))
from toy_models import ToyLM  # noqa: E402


def examples(seed: int, count: int, vocab: int = 13) -> list[Example]:
    """Ragged examples: a 2-token prompt without loss, an answer of 2 to 6 tokens."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        n = int(torch.randint(4, 9, (1,), generator=g))
        ids = torch.randint(0, vocab, (n,), generator=g).tolist()
        out.append(Example(input_ids=ids, labels=[-100, -100] + ids[2:]))
    return out


def reference(model, exs: list[Example], alpha: float) -> tuple[float, float, float]:
    """Token-mean loss over all examples at once, one sequence at a time (no padding at all)."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}

    def h(w):
        total, tokens = 0.0, 0
        for e in exs:
            ids = torch.tensor([e.input_ids])
            logits = functional_call(model, {**w, **frozen}, (ids,)).logits[0, :-1]
            labels = torch.tensor(e.labels[1:])
            total = total + F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum")
            tokens += int((labels != -100).sum())
        return total / tokens

    w = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters() if p.requires_grad}
    before = h(w)
    grads = torch.autograd.grad(before, [w[n] for n in names])
    norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
    stepped = {n: (w[n] - alpha * g / norm).detach() for n, g in zip(names, grads)}
    after = h(stepped)
    return float(before.detach()), float(after), float(norm)


@pytest.mark.parametrize("alpha", [0.01, 0.1, 1.0])
def test_harmful_step_probe_matches_the_formula(alpha):
    model, exs = ToyLM(seed=1), examples(0, 7)
    got = harmful_step_probe(model, HarmfulStepProbe(exs, alpha), pad_id=0, micro_batch_size=3)
    before, after, norm = reference(model, exs, alpha)
    assert got[""] == pytest.approx(before, rel=1e-10)
    assert got["_after_step"] == pytest.approx(after, rel=1e-10)
    assert got["_reduction"] == pytest.approx(before - after, rel=1e-8, abs=1e-12)
    assert got["_grad_norm"] == pytest.approx(norm, rel=1e-10)
    assert got["_reduction"] > 0  # a small step along −∇h lowers h


def test_probe_leaves_weights_grads_and_mode_as_they_were():
    model, exs = ToyLM(seed=2), examples(1, 5)
    model.train()
    for p in model.parameters():
        if p.requires_grad:
            p.grad = torch.full_like(p, 0.25)
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    harmful_step_probe(model, HarmfulStepProbe(exs, 0.5), pad_id=0)
    assert model.training
    for n, p in model.named_parameters():
        assert torch.equal(p, weights[n]), n
        if p.requires_grad:
            assert torch.equal(p.grad, torch.full_like(p, 0.25)), n


def test_run_probes_names_loss_and_step_probes():
    model, exs = ToyLM(seed=3), examples(2, 4)
    out = run_probes(model, {"plain": exs, "held": HarmfulStepProbe(exs, 0.1)}, pad_id=0, micro_batch_size=2,
                     autocast=contextlib.nullcontext)
    assert set(out) == {"probe/plain", "probe/held", "probe/held_after_step", "probe/held_reduction",
                        "probe/held_grad_norm"}
    assert out["probe/plain"] == pytest.approx(probe_loss(model, exs, 0)) == pytest.approx(out["probe/held"])
