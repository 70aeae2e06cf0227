"""Lisa's bi-state schedule and proximal update (arXiv:2405.18641, Algorithm 1):

    state s (alignment first, K_align steps; then user, K_user steps; repeat):
        g = ∇f_s(w) + ρ (w − w̃),   w̃ = weights when the state last switched,
    with the proximal term on only at steps t > proximal_start · total_steps.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch.func import functional_call

from booster.config import from_dict
from booster.errors import ConfigError
from booster.methods.base import StepContext
from booster.methods.lisa import Lisa, LisaConfig
from booster.methods.state import join_tensors, split_tensors

from llama_helpers import single_thread
from toy_models import ToyLM, make_batch, trainable

one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)

ALIGN = [make_batch(1, 3, 7), make_batch(2, 2, 9)]
USER = [make_batch(3, 4, 8)]
BATCHES = {"align": ALIGN, "user": USER}


def mean_loss(model, params: dict, batches: list[dict]) -> torch.Tensor:
    """Token-mean loss over several micro-batches, written out independently."""
    total, count = 0.0, 0
    for b in batches:
        logits = functional_call(model, params, (b["input_ids"],)).logits[:, :-1]
        targets = b["labels"][:, 1:]
        total = total + F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                                        ignore_index=-100, reduction="sum")
        count += int((targets != -100).sum())
    return total / count


def reference_grad(model, batches: list[dict], anchor: list[torch.Tensor] | None, rho: float):
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    w = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    loss = mean_loss(model, {**w, **frozen}, batches)
    if anchor is not None:
        loss = loss + rho / 2 * sum(((w[n] - a) ** 2).sum() for n, a in zip(names, anchor))
    return torch.autograd.grad(loss, [w[n] for n in names])


def run(method, model, steps, lr=0.05, start=0):
    """Take ``steps`` steps like the loop (step context at step t, step, SGD update); return per-step info."""
    out = []
    for t in range(start, start + steps):
        ctx = StepContext(params=trainable(model), step=t)
        weights = [p.detach().clone() for p in ctx.params]
        logs = method.step(model, BATCHES, ctx)
        out.append({"t": t, "logs": logs, "weights": weights, "grads": [p.grad.clone() for p in ctx.params],
                    "snapshot": [s.clone() for s in method.snapshot]})
        with torch.no_grad():
            for p in ctx.params:
                p.sub_(p.grad, alpha=lr)
    return out


def test_states_alternate_starting_with_alignment_and_snapshots_at_switches():
    model = ToyLM()
    method = Lisa(LisaConfig(align_steps=2, user_steps=3, rho=0.0))
    expected = ["align", "align", "user", "user", "user"] * 3
    assert [method.state_at(t) for t in range(15)] == expected
    assert [method.streams_for_step(t) for t in range(6)] == [("align",)] * 2 + [("user",)] * 3 + [("align",)]
    info = run(method, model, 15)
    assert [i["logs"]["align_state"] for i in info] == [float(s == "align") for s in expected]
    switches = [t for t in range(15) if t == 0 or expected[t] != expected[t - 1]]
    assert switches == [0, 2, 5, 7, 10, 12]
    for i in info:
        anchor = max(s for s in switches if s <= i["t"])  # w̃ = weights at the last switch
        for s, w in zip(i["snapshot"], info[anchor]["weights"]):
            assert torch.equal(s, w)
    assert method.state == "user"


def test_state_loss_is_the_state_stream_token_mean():
    model = ToyLM()
    info = run(Lisa(LisaConfig(align_steps=1, user_steps=1, rho=0.0)), model, 1)
    for g, r in zip(info[0]["grads"], reference_grad(ToyLM(), ALIGN, None, 0.0)):
        torch.testing.assert_close(g, r, atol=1e-12, rtol=0)


@pytest.mark.parametrize("rho", [1.0, 0.3])
def test_total_gradient_is_state_gradient_plus_proximal(rho):
    model = ToyLM()
    method = Lisa(LisaConfig(align_steps=2, user_steps=3, rho=rho, proximal_start=0.0))
    info = run(method, model, 7)
    for i in info:
        t = i["t"]
        state_batches = ALIGN if method.state_at(t) == "align" else USER
        anchor = i["snapshot"]
        # Independent autograd of f_s(w) + ρ/2‖w − w̃‖² at the step's weights.
        at_w = ToyLM()
        with torch.no_grad():
            for p, w in zip(trainable(at_w), i["weights"]):
                p.copy_(w)
        want = reference_grad(at_w, state_batches, anchor, rho)
        for g, r in zip(i["grads"], want):
            torch.testing.assert_close(g, r, atol=1e-12, rtol=0)
        # The proximal part on its own is ρ(w − w̃).
        plain = reference_grad(at_w, state_batches, None, rho)
        for g, r, w, s in zip(i["grads"], plain, i["weights"], anchor):
            torch.testing.assert_close(g - r, rho * (w - s), atol=1e-12, rtol=0)
        assert i["logs"]["proximal_loss"] == pytest.approx(
            rho / 2 * sum(float(((w - s) ** 2).sum()) for w, s in zip(i["weights"], anchor)), rel=1e-12)
    # The proximal gradient was not zero where the weights had moved away from w̃.
    assert info[1]["logs"]["drift"] > 0 and info[3]["logs"]["drift"] > 0
    assert info[0]["logs"]["drift"] == 0 and info[2]["logs"]["drift"] == 0  # w = w̃ at a switch


def test_no_proximal_term_before_proximal_start():
    model = ToyLM()
    # total 20 steps, start 25%: on from step 6 (t > 5), as in the authors' trainer (steps > 0.1·T).
    method = Lisa(LisaConfig(align_steps=100, user_steps=900, rho=1.0, proximal_start=0.25, total_steps=20))
    info = run(method, model, 8)
    for i in info:
        at_w = ToyLM()
        with torch.no_grad():
            for p, w in zip(trainable(at_w), i["weights"]):
                p.copy_(w)
        plain = reference_grad(at_w, ALIGN, None, 0.0)
        diff = max((g - r).abs().max().item() for g, r in zip(i["grads"], plain))
        if i["t"] <= 5:
            assert diff < 1e-12 and "proximal_loss" not in i["logs"], i["t"]
        else:
            assert diff > 1e-4 and i["logs"]["proximal_loss"] > 0, i["t"]


def test_state_dict_round_trips_through_json_and_safetensors(tmp_path):
    cfg = LisaConfig(align_steps=2, user_steps=3, rho=0.5, proximal_start=0.0)
    a_model, a = ToyLM(), Lisa(cfg)
    run(a, a_model, 4)  # stops inside the user state, with a snapshot from step 2
    scalars, tensors = split_tensors(a.state_dict())
    (tmp_path / "method.json").write_text(json.dumps(scalars))
    save_file(tensors, tmp_path / "method.safetensors")
    restored = join_tensors(json.loads((tmp_path / "method.json").read_text()),
                            load_file(tmp_path / "method.safetensors"))

    b_model, b = ToyLM(), Lisa(cfg)
    b.load_state_dict(restored)
    with torch.no_grad():
        for p, q in zip(trainable(b_model), trainable(a_model)):
            p.copy_(q)
    assert b.state == a.state == "user"
    ia, ib = run(a, a_model, 5, start=4), run(b, b_model, 5, start=4)  # crosses the switch at step 5
    for x, y in zip(ia, ib):
        assert x["logs"] == y["logs"]
        assert all(torch.equal(g, h) for g, h in zip(x["grads"], y["grads"]))


def test_missing_snapshot_is_an_error():
    with pytest.raises(ValueError, match="snapshot"):
        Lisa(LisaConfig(total_steps=10)).load_state_dict({"step": 3, "state": "align", "steps_in_state": 3,
                                                          "snapshot": None})


@pytest.mark.parametrize("data,msg", [
    ({"align_steps": -1}, "align_steps"), ({"align_steps": 0, "user_steps": 0}, "align_steps"),
    ({"rho": -1.0}, "rho"), ({"proximal_start": 1.5}, "proximal_start"), ({"total_steps": 0}, "total_steps"),
    ({"user_stream": "align"}, "stream"),
])
def test_invalid_hyperparameters(data, msg):
    with pytest.raises(ConfigError, match=msg):
        from_dict(LisaConfig, data)


def test_total_steps_required_for_a_delayed_proximal_term():
    with pytest.raises(ConfigError, match="total_steps"):
        Lisa(LisaConfig())
    Lisa(LisaConfig(proximal_start=0.0))  # fine: on from the start
    Lisa(LisaConfig(rho=0.0))             # fine: no proximal term at all
