"""No tensor crosses devices: the training loop, every method and the loss probes with the model
on the ``meta`` device (issue 13, item 7).

A machine without a GPU has one real device, so the model goes to ``meta`` (shapes, no data):
every tensor the toolkit builds on the CPU and forgets to move then meets a ``meta`` parameter,
which :class:`SameDevice` reports by the operator's name. The meta device cannot give values,
so :class:`SameDevice` also answers every ``.item()`` / ``float()`` with 1 and the fixture gives
it the few things it lacks (a random generator, an autocast switch). Collectives run through a
stand-in ``all_reduce`` that records each tensor's device, as NCCL would refuse a CPU one.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.distributed as dist
import torch.fx.experimental._config as fx_config
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from booster.methods import SFT, Booster, Lisa, LisaConfig, RepNoise, RepNoiseConfig, SFTConfig, Vaccine
from booster.methods.base import StepContext
from booster.models.tiny import tiny_random_llama
from booster.training import TrainConfig, encode_records, probe_loss, train

META = torch.device("meta")


class SameDevice(TorchDispatchMode):
    """Fail on any operator whose tensors lie on two devices (CPU 0-dim scalars excepted, as in
    PyTorch itself); give 1 for every scalar read out of a meta tensor."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        devices = {t.device for t in tensors if not (t.device.type == "cpu" and t.dim() == 0)}
        assert len(devices) <= 1, f"{func} mixes devices {sorted(map(str, devices))}"
        if META in devices:
            if func is torch.ops.aten._local_scalar_dense.default:
                return True if args[0].dtype == torch.bool else 1 if not args[0].is_floating_point() else 1.0
            kwargs.pop("generator", None)  # meta draws nothing; the generator's device is checked below
        return func(*args, **kwargs)


@pytest.fixture
def meta_runtime(monkeypatch):
    """What the meta device lacks, plus a one-process 'distributed' run whose collectives are recorded."""
    real_generator, real_autocast = torch.Generator, torch.autocast

    class Generator(real_generator):
        def __new__(cls, device="cpu"):
            assert torch.device(device) == META, f"random generator on {device}, the model is on meta"
            return real_generator()

    def autocast(device_type, *args, **kwargs):
        return contextlib.nullcontext() if device_type == "meta" else real_autocast(device_type, *args, **kwargs)

    monkeypatch.setattr(torch, "Generator", Generator)
    monkeypatch.setattr(torch, "autocast", autocast)
    monkeypatch.setattr(fx_config, "meta_nonzero_assume_all_nonzero", True)  # RepNoise's masks
    reduced: list[torch.device] = []
    monkeypatch.setattr(dist, "is_available", lambda: True)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_rank", lambda: 0)
    monkeypatch.setattr(dist, "get_world_size", lambda: 1)
    monkeypatch.setattr(dist, "all_reduce", lambda t, *a, **k: reduced.append(t.device))
    monkeypatch.setattr(dist, "barrier", lambda *a, **k: None)
    return reduced


def records(n: int) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"How do I do thing {i}?"},
                          {"role": "assistant", "content": f"Step {i}, then step {i + 1}."}]} for i in range(n)]


def meta_model():
    model, tok = tiny_random_llama(seed=0)
    model.model.embed_tokens.requires_grad_(False)  # a frozen part, as under LoRA
    return model.to(META), tok


METHODS = {
    "sft": lambda: SFT(SFTConfig(stream="user")),
    "booster": Booster,
    "vaccine": Vaccine,
    "repnoise": lambda: RepNoise(RepNoiseConfig(lens_tokens=4)),
    "lisa": lambda: Lisa(LisaConfig(align_steps=1, user_steps=1, total_steps=3)),
}


@pytest.mark.parametrize("name", METHODS)
def test_loop_and_probes_stay_on_the_model_device(name, meta_runtime):
    model, tok = meta_model()
    method = METHODS[name]()
    data = {s: encode_records(tok, records(6), 32) for s in method.streams}
    probes = {"harmful_test_loss": encode_records(tok, records(3), 32)}
    cfg = TrainConfig(steps=3, batch_size=4, micro_batch_size=2, max_length=32, seed=0, probe_every=1)
    with SameDevice():
        history = train(model, method, data, cfg, pad_id=tok.pad_token_id, probes=probes, progress=False)
    assert len(history) == 4  # the step-0 probe record and three steps
    assert all("probe/harmful_test_loss" in h for h in history)
    assert all(p.device == META for p in model.parameters())
    # Token counts and gradients were summed over processes, always on the parameters' device.
    assert meta_runtime and set(meta_runtime) == {META}


def test_probe_loss_moves_its_batches(meta_runtime):
    model, tok = meta_model()
    with SameDevice():
        assert probe_loss(model, encode_records(tok, records(5), 32), tok.pad_token_id, micro_batch_size=2) == 1.0


def test_step_context_sums_on_the_parameters_device(meta_runtime):
    model, _ = meta_model()
    ctx = StepContext(params=[p for p in model.parameters() if p.requires_grad])
    assert ctx.distributed
    with SameDevice():
        ctx.all_sum(3.0)
    assert meta_runtime == [META]


class Stop(Exception):
    pass


def test_judge_scores_on_its_device(meta_runtime):
    from booster.evaluation.judges import load_judge

    judge = load_judge("answer-judge", device="meta")
    assert {p.device for p in judge.net.parameters()} == {META}
    seen: list[torch.device] = []

    def record(module, args):  # the net's inputs; stop before reading values meta does not have
        seen.extend(a.device for a in args)
        raise Stop

    judge.net.register_forward_pre_hook(record)
    with SameDevice(), pytest.raises(Stop):
        judge.score([("How do I pick a lock?", "First, insert a tension wrench.")])
    assert seen == [META] * 3  # input ids, attention mask, token types


def test_generation_feeds_the_model_device(meta_runtime):
    from booster.models.generation import generate

    model, tok = meta_model()
    seen: list[torch.device] = []

    def fake_decode(model, input_ids, attention, *, max_new_tokens, stops):
        # meta tensors hold no values to decode from: record where the batch went, stop at once
        seen.extend([input_ids.device, attention.device])
        return [[tok.eos_token_id] for _ in range(input_ids.size(0))]

    gens = generate(model, tok, [[{"role": "user", "content": "Hi"}]], max_new_tokens=4, progress=False,
                    decode=fake_decode)
    assert seen == [META, META] and gens[0].new_tokens == 1
