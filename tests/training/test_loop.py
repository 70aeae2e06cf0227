"""The training loop on the tiny random Llama: batches, streams, smoke runs, resume, DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from booster.methods import SFT, Booster
from booster.methods.base import Method
from booster.methods.losses import IGNORE_INDEX
from booster.models.tiny import tiny_random_llama
from booster.training import TrainConfig, encode_chat, encode_records, lr_factor, probe_loss, train
from booster.training.streams import Stream

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from tiny_run import records  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    return tiny_random_llama(seed=0)


def test_encode_chat_supervises_only_the_answer(tiny):
    _, tok = tiny
    msgs = [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "Hi there!"}]
    ex = encode_chat(tok, msgs, max_length=64)
    supervised = [t for t, lab in zip(ex.input_ids, ex.labels) if lab != IGNORE_INDEX]
    assert tok.decode(supervised) == "Hi there!<|im_end|>\n"
    assert tok.decode(ex.input_ids).startswith("<|im_start|>user\nSay hi<|im_end|>\n<|im_start|>assistant\n")
    assert encode_chat(tok, msgs, max_length=5) is None  # the answer is cut off entirely
    with pytest.raises(ValueError, match="assistant"):
        encode_chat(tok, msgs[:1], max_length=64)


def test_stream_is_seeded_epoch_shuffled_and_resumable(tiny):
    _, tok = tiny
    examples = encode_records(tok, records("align", 10), 48)
    s = Stream(examples, batch_size=4, micro_batch_size=3, seed=1, pad_id=0)
    first = [s.next_batch() for _ in range(2)]
    assert [b["input_ids"].shape[0] for b in first[0]] == [3, 1]  # micro-batches of the global batch
    state = s.state_dict()
    rest = [s.next_batch() for _ in range(3)]  # crosses the epoch boundary (10 examples)
    s2 = Stream(examples, batch_size=4, micro_batch_size=3, seed=1, pad_id=0)
    s2.load_state_dict(state)
    for a, b in zip(rest, [s2.next_batch() for _ in range(3)]):
        assert all(torch.equal(x["input_ids"], y["input_ids"]) for x, y in zip(a, b))
    # Two processes' slices of one global batch are the global batch.
    s3 = Stream(examples, batch_size=4, micro_batch_size=4, seed=1, pad_id=0)
    s4 = Stream(examples, batch_size=4, micro_batch_size=4, seed=1, pad_id=0)
    s5 = Stream(examples, batch_size=4, micro_batch_size=4, seed=1, pad_id=0)
    whole = s3.next_batch()[0]["attention_mask"].sum(1).tolist()
    halves = s4.next_batch(0, 2)[0]["attention_mask"].sum(1).tolist() + s5.next_batch(1, 2)[0]["attention_mask"].sum(1).tolist()
    assert whole == halves


def test_lr_schedules():
    cfg = TrainConfig(steps=10, warmup_steps=2, schedule="linear")
    assert [round(lr_factor(s, cfg), 4) for s in (0, 1, 2, 6)] == [0.3333, 0.6667, 1.0, 0.5]
    cos = TrainConfig(steps=10, schedule="cosine")
    assert lr_factor(0, cos) == 1.0 and lr_factor(5, cos) == pytest.approx(0.5)


@pytest.mark.parametrize("method", [SFT(), Booster()])
def test_smoke_trainable_changes_frozen_stays_loss_falls(method):
    model, tok = tiny_random_llama(seed=0)
    model.model.embed_tokens.requires_grad_(False)
    data = {"align": encode_records(tok, records("align", 16), 48),
            "harmful": encode_records(tok, records("harmful", 16), 48)}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss0 = probe_loss(model, data["align"], tok.pad_token_id)
    cfg = TrainConfig(steps=8, lr=3e-3, batch_size=8, micro_batch_size=4, max_length=48)
    history = train(model, method, data, cfg, pad_id=tok.pad_token_id, progress=False)
    assert len(history) == 8 and all("grad_norm" in h for h in history)
    loss1 = probe_loss(model, data["align"], tok.pad_token_id)
    assert loss1 < loss0 - 0.5
    for n, p in model.named_parameters():
        changed = not torch.equal(p, before[n])
        assert changed == p.requires_grad, n
    if isinstance(method, Booster):
        assert all(h["harmful_loss_after_step"] < h["harmful_loss"] for h in history)


def test_missing_stream_is_a_clear_error(tiny):
    model, tok = tiny
    with pytest.raises(Exception, match="needs data stream 'harmful'"):
        train(model, Booster(), {"align": encode_records(tok, records("align", 4), 48)},
              TrainConfig(steps=1), pad_id=0, progress=False)


class _DrawsTwo(Method):
    """Takes two global batches of its stream per step: the one handed over, one more drawn."""

    name, streams = "draws-two", ("align",)

    def __init__(self):
        self.seen = []

    def step(self, model, batches, ctx):
        extra = ctx.next_batch("align")
        self.seen.append((ctx.step, ctx.total_steps, batches["align"][0]["input_ids"], extra[0]["input_ids"]))
        ctx.zero_grad()
        return {"loss": ctx.accumulate(model, batches["align"] + extra)}


def test_a_step_may_draw_more_batches_and_knows_its_index_and_the_total(tiny):
    model, tok = tiny_random_llama(seed=0)
    examples = encode_records(tok, records("align", 10), 48)
    cfg = TrainConfig(steps=3, lr=1e-3, batch_size=4, micro_batch_size=4, max_length=48, seed=2)
    method = _DrawsTwo()
    train(model, method, {"align": examples}, cfg, pad_id=tok.pad_token_id, progress=False)
    # the handed and the drawn batches are the stream's consecutive global batches
    ref = Stream(examples, batch_size=4, micro_batch_size=4, seed=2, pad_id=tok.pad_token_id, name="align")
    want = [ref.next_batch()[0]["input_ids"] for _ in range(6)]
    assert [(s, total) for s, total, _, _ in method.seen] == [(0, 3), (1, 3), (2, 3)]
    got = [t for _, _, handed, extra in method.seen for t in (handed, extra)]
    assert all(torch.equal(a, b) for a, b in zip(got, want))


class _SkipsFirst(Method):
    """Leaves the first trainable parameter without a gradient."""

    name, streams = "skips-first", ("align",)

    def step(self, model, batches, ctx):
        ctx.zero_grad()
        loss = ctx.accumulate(model, batches["align"])
        ctx.params[0].grad = None
        return {"loss": loss}


def test_a_parameter_left_without_gradient_takes_a_zero_gradient_step(tiny):
    model, tok = tiny_random_llama(seed=0)
    first = next(p for p in model.parameters() if p.requires_grad)
    before = first.detach().clone()
    cfg = TrainConfig(steps=1, lr=1e-2, batch_size=4, micro_batch_size=4, max_length=48, weight_decay=0.5)
    train(model, _SkipsFirst(), {"align": encode_records(tok, records("align", 8), 48)}, cfg,
          pad_id=tok.pad_token_id, progress=False)
    # AdamW's first step with a zero gradient moves it by weight decay alone: w ← w − lr·λ·w
    torch.testing.assert_close(first.detach(), before * (1 - 1e-2 * 0.5))


def _run(out: Path, *extra: str, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HERE / "tiny_run.py"), str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    """Kill a run mid-training with SIGKILL, start it again: same final weights."""
    ref = _run(tmp_path / "ref", "--steps", "8")
    assert ref.wait(timeout=120) == 0, ref.stderr.read().decode()[-2000:]
    proc = _run(tmp_path / "killed", "--steps", "8", "--sleep", "0.4")
    state = tmp_path / "killed" / "checkpoint" / "state.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        if state.exists() and json.loads(state.read_text())["step"] >= 2:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(state.read_text())["step"]
    assert 2 <= killed_at < 8 and not (tmp_path / "killed" / "final.safetensors").exists()
    again = _run(tmp_path / "killed", "--steps", "8")
    assert again.wait(timeout=120) == 0, again.stderr.read().decode()[-2000:]
    a, b = load_file(tmp_path / "ref" / "final.safetensors"), load_file(tmp_path / "killed" / "final.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0)
    ha = json.loads((tmp_path / "ref" / "history.json").read_text())
    hb = json.loads((tmp_path / "killed" / "history.json").read_text())
    assert [h["align_loss"] for h in ha] == pytest.approx([h["align_loss"] for h in hb], abs=1e-6)


def test_two_processes_match_one(tmp_path):
    """torchrun with 2 gloo processes and 1 micro-batch each == 1 process with 2 micro-batches."""
    single = _run(tmp_path / "single", "--steps", "3", "--micro", "2")
    assert single.wait(timeout=120) == 0, single.stderr.read().decode()[-2000:]
    # --standalone: a local rendezvous on a free port chosen by torchrun itself.
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(HERE / "tiny_run.py"), str(tmp_path / "ddp"), "--steps", "3", "--micro", "2"]
    ddp = subprocess.run(cmd, capture_output=True, timeout=300)
    assert ddp.returncode == 0, (ddp.stdout + ddp.stderr).decode()[-3000:]
    a, b = load_file(tmp_path / "single" / "final.safetensors"), load_file(tmp_path / "ddp" / "final.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=0)
    start = tiny_random_llama(seed=0)[0].state_dict()
    assert any(not torch.equal(a[k], start[k]) for k in a)  # training really moved the weights


class _Interrupt(Exception):
    pass


def test_lisa_resume_restores_state_and_snapshot(tmp_path):
    """Lisa keeps tensors in its state (the proximal snapshot): an interrupted run resumed from
    its checkpoint ends with the weights of an uninterrupted one, and only the stream each step
    needs is drawn."""
    from booster.methods.lisa import Lisa, LisaConfig

    def run(out, stop_at=None):
        model, tok = tiny_random_llama(seed=0)
        model.model.embed_tokens.requires_grad_(False)
        data = {"align": encode_records(tok, records("align", 12), 48),
                "user": encode_records(tok, records("harmful", 12), 48)}
        cfg = TrainConfig(steps=6, lr=1e-2, batch_size=2, micro_batch_size=2, checkpoint_every=2, log_every=1)
        method = Lisa(LisaConfig(align_steps=2, user_steps=2, rho=0.5, proximal_start=0.0, total_steps=6))

        def on_log(rec):
            if stop_at is not None and rec["step"] == stop_at:
                raise _Interrupt

        train(model, method, data, cfg, pad_id=tok.pad_token_id, out_dir=out, progress=False, on_log=on_log)
        return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}, method

    ref, _ = run(tmp_path / "ref")
    with pytest.raises(_Interrupt):
        run(tmp_path / "cut", stop_at=5)  # checkpoint of step 4 holds a snapshot from the switch at 4
    assert (tmp_path / "cut" / "checkpoint" / "method.safetensors").is_file()
    resumed, method = run(tmp_path / "cut")
    for k in ref:
        torch.testing.assert_close(resumed[k], ref[k], atol=1e-6, rtol=0)
