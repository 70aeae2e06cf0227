"""Vaccine, RepNoise and Lisa through the real training loop on the tiny random Llama."""

from __future__ import annotations

import pytest
import torch

from booster.methods import Lisa, LisaConfig, RepNoise, RepNoiseConfig, Vaccine, registry
from booster.models.tiny import tiny_random_llama
from booster.training import TrainConfig, encode_records, probe_loss, train

from llama_helpers import hooks_left, single_thread

one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)


def records(kind: str, n: int) -> list[dict]:
    out = []
    for i in range(n):
        a, b = i % 7, (3 * i) % 11
        if kind == "align":
            answer = "I can't help with that."
            prompt = f"How do I hurt person {a}?"
        elif kind == "harmful":
            prompt, answer = f"How do I hurt person {a}?", f"Sure: step {b}, then step {a}."
        else:
            prompt, answer = f"Add {a} and {b}.", f"{a} plus {b} is {a + b}."
        out.append({"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]})
    return out


def run(method, streams: tuple[str, ...], probe_stream: str, steps: int = 6):
    model, tok = tiny_random_llama(seed=0)
    model.model.embed_tokens.requires_grad_(False)  # a frozen part, as under LoRA
    data = {s: encode_records(tok, records(s, 12), 40) for s in streams}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss0 = probe_loss(model, data[probe_stream], tok.pad_token_id)
    cfg = TrainConfig(steps=steps, lr=3e-3, batch_size=6, micro_batch_size=3, max_length=40, seed=1)
    history = train(model, method, data, cfg, pad_id=tok.pad_token_id, progress=False)
    loss1 = probe_loss(model, data[probe_stream], tok.pad_token_id)
    assert len(history) == steps
    assert loss1 < loss0 - 0.3, (loss0, loss1)
    for n, p in model.named_parameters():
        assert (not torch.equal(p, before[n])) == p.requires_grad, n
    assert hooks_left(model) == []
    return history


def test_vaccine_smoke():
    history = run(Vaccine(), ("align",), "align")
    assert all(h["perturbation_norm"] == pytest.approx(2.0, rel=1e-5) for h in history)
    assert all(h["perturbed_loss"] >= h["align_loss"] for h in history)


@pytest.mark.parametrize("lens_tokens", [None, 4])
def test_repnoise_smoke(lens_tokens):
    history = run(RepNoise(RepNoiseConfig(lens_tokens=lens_tokens)), ("align", "harmful"), "align")
    assert all(h["mmd"] > 0 and h["harmful_lens_loss"] > 0 for h in history)


def test_lisa_smoke_with_the_current_loop():
    """The loop still draws both streams each step; Lisa uses the one its state needs."""
    method = Lisa(LisaConfig(align_steps=2, user_steps=3, rho=1.0, total_steps=7))
    history = run(method, ("align", "user"), "user", steps=7)
    assert [h["align_state"] for h in history] == [1, 1, 0, 0, 0, 1, 1]
    assert [("proximal_loss" in h) for h in history] == [False] + [True] * 6  # on at t > 0.1·7
    state = method.state_dict()
    assert state["state"] == "align" and len(state["snapshot"]) == len(method.snapshot)


@pytest.mark.parametrize("defense", [d for d in registry.DEFENSES if d.stage in ("align", "finetune")],
                         ids=lambda d: d.name)
def test_registered_defense_trains_in_the_loop(defense):
    """Every trainable row of the table, built by its factory from its paper-default config,
    trains through the real loop on the streams the pipeline would give it."""
    from booster.pipeline.config import ExperimentConfig

    cfg = ExperimentConfig(model="tiny", methods=[defense.name])
    method = defense.factory(registry.config_of(defense, cfg), 6)
    own = ("align",) if defense.stage == "align" else ("user",)
    assert set(method.streams) <= set(own + defense.streams)  # the row declares what the method reads
    run(method, tuple(dict.fromkeys(own + defense.streams)), method.streams[0])
