"""The training loop: plain code, top to bottom.

The loop owns the optimizer, learning-rate schedule, gradient clipping, checkpoints, resume
and logging. The method (``booster.methods``) owns the per-step gradient: each step the loop
draws one global batch per stream the method declared, asks the method to leave the
step's gradient in ``p.grad``, clips it and steps the optimizer.

Distributed training (``accelerate launch`` / ``torchrun``, CPU or GPU): every process holds
the full model; the method's :class:`~booster.methods.base.StepContext` sums token counts and
gradients over processes explicitly (no DDP wrapper, whose implicit all-reduce on every
backward would break multi-pass methods), so N processes give the update of one process
with the same global batch. Batches are collated on the CPU and moved to the device of the
model's parameters (``to_model_device``) before the method sees them; the probes do the same.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from booster import io
from booster.config import to_dict
from booster.errors import BoosterError
from booster.methods.base import StepContext
from booster.methods.losses import to_model_device
from booster.training.batches import Example
from booster.training.checkpoint import load_checkpoint, save_checkpoint
from booster.training.probes import run_probes
from booster.training.config import TrainConfig  # re-exported: its home is torch-free
from booster.training.streams import Stream


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of ``cfg.lr`` at 0-based ``step``: a pure function of the step, so resuming
    needs no scheduler state."""
    if step < cfg.warmup_steps:
        return (step + 1) / (cfg.warmup_steps + 1)
    if cfg.schedule == "constant":
        return 1.0
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    if cfg.schedule == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.999), eps=1e-8)


def config_hash(cfg: TrainConfig, method) -> str:
    method_cfg = to_dict(getattr(method, "config", None))
    return io.sha256_text(json.dumps({"train": to_dict(cfg), "method": method.name, "method_config": method_cfg},
                                     sort_keys=True, default=str))


def train(model: torch.nn.Module, method, data: dict[str, list[Example]], cfg: TrainConfig, *,
          pad_id: int, out_dir: Path | None = None, probes: dict[str, list[Example]] | None = None,
          progress: bool = True, on_log: Callable[[dict], None] | None = None) -> list[dict]:
    """Train ``model`` in place with ``method``; return the per-step log records.

    With ``out_dir``, checkpoints go to ``out_dir/checkpoint`` and an existing checkpoint is
    resumed (it must come from the same config).
    """
    rank, world = _world()
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if not named:
        raise BoosterError("the model has no trainable parameters")
    missing = [s for s in method.streams if not data.get(s)]
    if missing:
        raise BoosterError(f"method '{method.name}' needs data stream '{missing[0]}', which is missing or empty")
    streams = {
        name: Stream(data[name], batch_size=cfg.batch_sizes.get(name, cfg.batch_size),
                     micro_batch_size=cfg.micro_batch_size, seed=cfg.seed, pad_id=pad_id, name=name)
        for name in method.streams
    }
    device = next(iter(named.values())).device
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if cfg.mixed_precision == "bf16" \
        else contextlib.nullcontext
    optimizer = _make_optimizer(list(named.values()), cfg)
    ctx = StepContext(params=list(named.values()), autocast=autocast, total_steps=cfg.steps,
                      draw=lambda name: [to_model_device(model, b) for b in streams[name].next_batch(rank, world)])
    probes = probes or {}
    digest = config_hash(cfg, method)

    step, history = 0, []
    ckpt = out_dir / "checkpoint" if out_dir is not None else None
    if ckpt is not None and (ckpt / "state.json").exists():
        state = load_checkpoint(ckpt, named, optimizer)
        if state["config_hash"] != digest:
            raise BoosterError(f"checkpoint '{ckpt}' was written with a different configuration; "
                               "use the same config or delete the folder")
        step, history = state["step"], state["history"]
        for name, s in streams.items():
            s.load_state_dict(state["streams"][name])
        method.load_state_dict(state["method"])
    else:
        torch.manual_seed(cfg.seed)
        if probes and cfg.probe_every:
            history.append({"step": 0, **run_probes(model, probes, pad_id, cfg.micro_batch_size, autocast)})

    model.train()
    bar = tqdm(total=cfg.steps, initial=step, desc=f"{method.name}", unit="step",
               disable=not progress or rank != 0, leave=False)
    while step < cfg.steps:
        # Methods that alternate between streams (Lisa) draw only what this step trains on.
        batches = {name: [to_model_device(model, b) for b in streams[name].next_batch(rank, world)]
                   for name in method.streams_for_step(step)}
        ctx.step = step
        lr = cfg.lr * lr_factor(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        method.before_step(model, step, ctx)
        logs = method.step(model, batches, ctx)
        for p in ctx.params:  # a parameter the step left without gradient takes a zero one (methods/base.py)
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        record = {"step": step + 1, "lr": lr, **logs}
        if cfg.max_grad_norm is not None:
            record["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(ctx.params, cfg.max_grad_norm))
        before = [p.detach().clone() for p in ctx.params] if probes and cfg.probe_every else None
        optimizer.step()
        if before is not None:  # the real step in parameter space, to set beside Booster's α
            record["update_norm"] = math.sqrt(sum(float(((p.detach() - b).double() ** 2).sum())
                                                  for p, b in zip(ctx.params, before)))
            del before
        ctx.zero_grad()
        step += 1
        if probes and cfg.probe_every and step % cfg.probe_every == 0:
            record.update(run_probes(model, probes, pad_id, cfg.micro_batch_size, autocast))
        history.append(record)
        bar.update(1)
        if step % cfg.log_every == 0 or step == cfg.steps:
            bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if "loss" in k and isinstance(v, float)})
            if on_log is not None:
                on_log(record)
        if ckpt is not None and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            if rank == 0:
                save_checkpoint(ckpt, named, optimizer, {
                    "step": step, "config_hash": digest, "history": history,
                    "streams": {n: s.state_dict() for n, s in streams.items()},
                    "method": method.state_dict(),
                })
            if world > 1:
                dist.barrier()
    bar.close()
    return history
