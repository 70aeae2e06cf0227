"""The alignment stage: the provider trains an adapter with an alignment-stage defense."""

from __future__ import annotations

import random

from booster.config import to_dict
from booster.methods import registry
from booster.methods.registry import Defense
from booster.pipeline.cache import StageResult, digest
from booster.pipeline.context import PROVIDER_STREAMS, Context
from booster.pipeline.resources import measure


def streams(defense: Defense) -> tuple[str, ...]:
    """The provider streams an alignment trains on: the alignment data, and what the defense adds."""
    return ("align",) + tuple(s for s in defense.streams if s != "align")


def key(ctx: Context, defense: Defense) -> str:
    cfg, a = ctx.cfg, ctx.cfg.align
    return digest({
        "stage": "align", "model": ctx.model_key, "dtype": cfg.dtype, "lora": to_dict(cfg.lora),
        "method": defense.name, "method_config": to_dict(registry.config_of(defense, cfg)),
        "train": train_identity(a.train, streams(defense)), "samples": a.samples,
        "harmful_samples": a.harmful_samples if "harmful" in streams(defense) else None,
        "pools": {PROVIDER_STREAMS[s][0]: ctx.pool_hash(PROVIDER_STREAMS[s][0]) for s in streams(defense)},
        "data_seed": cfg.data.seed,
        # the diagnostics change what is logged, not what is trained; keys made without them stay valid
        **({"diagnostics": {"samples": a.probe_samples, "alpha": a.diagnostic_alpha(),
                            "pool": ctx.pool_hash("provider_harmful")}} if a.train.probe_every else {}),
    })


def train_identity(train, read: tuple[str, ...]) -> dict:
    """The training settings as keyed: a per-stream batch size counts only for a defense that
    reads that stream, so that probing Booster's harmful batch leaves SFT's cached stage valid."""
    ident = to_dict(train)
    ident["batch_sizes"] = {s: b for s, b in sorted(train.batch_sizes.items()) if s in read}
    return ident


def run(ctx: Context, defense: Defense, rebuild: bool = False) -> StageResult:
    """The aligned adapter of ``defense`` (cached); ``rebuild``: retrain a cached stage's
    missing adapter (see :func:`with_adapter`)."""
    k = key(ctx, defense)
    with ctx.cache.lock("align", k, every_process=True):  # every process decides under it
        return ctx.cache.reusable("align", k, rebuild) or _train(ctx, defense, k)


def _train(ctx: Context, defense: Defense, k: str) -> StageResult:
    from booster.models.adapters import attach_lora
    from booster.training import encode_records

    a = ctx.cfg.align
    work = ctx.cache.work("align", k)
    record = {"stage": "align", "key": k, "method": defense.name, "bf16_kernels": ctx.bf16_kernels}
    with measure(record):
        base, tok = ctx.base_model()
        model = attach_lora(base, ctx.cfg.lora, seed=a.train.seed)
        data = {s: encode_records(tok, ctx.provider_stream(s), a.train.max_length) for s in streams(defense)}
        method = defense.factory(registry.config_of(defense, ctx.cfg), a.train.steps)
        history = ctx.train(model, method, data, a.train, work, tok, probes=_diagnostics(ctx, tok))
    return ctx.finish_trained("align", k, work, record, model, history)


def _diagnostics(ctx: Context, tok) -> dict | None:
    """The alignment diagnostics (``align.train.probe_every`` > 0): on held-out provider harmful
    examples, the harmful loss and its reduction after one normalised step of size α
    (``booster.training.probes``), measured for every alignment method alike."""
    from booster.training import HarmfulStepProbe, encode_records

    a = ctx.cfg.align
    if not a.train.probe_every:
        return None
    used = {r["messages"][0]["content"] for r in ctx.provider_stream("harmful")}
    held_out = [r for r in ctx.pool("provider_harmful") if r["messages"][0]["content"] not in used]
    if len(held_out) < a.probe_samples:
        from booster.errors import BoosterError

        raise BoosterError(f"align.probe_samples={a.probe_samples} but provider_harmful has only "
                           f"{len(held_out)} examples outside the harmful stream")
    sample = random.Random(f"{ctx.cfg.data.seed}:align-probe").sample(held_out, a.probe_samples)
    return {"harmful_heldout": HarmfulStepProbe(encode_records(tok, sample, a.train.max_length),
                                                a.diagnostic_alpha())}


def with_adapter(ctx: Context, result: StageResult | None) -> StageResult | None:
    """``result`` with its adapter on disk: a stage imported from a ledger has none, so it is
    retrained from the same inputs (same key; equal up to floating-point nondeterminism)."""
    if result is None or result.adapter.exists():
        return result
    return same_key(result, run(ctx, registry.get(result.record["method"]), rebuild=True))


def same_key(old: StageResult, rebuilt: StageResult) -> StageResult:
    from booster.errors import BoosterError

    if rebuilt.key != old.key:
        raise BoosterError(f"cannot rebuild the adapter of {old.kind} stage {old.key}: this config "
                           f"gives key {rebuilt.key} for the same stage (the config changed)")
    return rebuilt
