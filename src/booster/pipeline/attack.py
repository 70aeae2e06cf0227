"""The attack stage: the user's fine-tuning on the set an attack recipe draws (by default a mix
of benign task data and harmful data; ``booster.data.attacks``), as users run it (plain SFT) or
under a fine-tuning-stage defense of the provider."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from booster.config import to_dict
from booster.data import attacks
from booster.methods import registry
from booster.methods.registry import Defense
from booster.pipeline import align
from booster.pipeline.cache import StageResult, digest
from booster.pipeline.context import PROVIDER_STREAMS, Context
from booster.pipeline.resources import measure


@dataclass(frozen=True)
class Cell:
    """One user fine-tuning: task, n samples, share p harmful, seed, attack recipe (the task is
    the one evaluated; task_mix also fine-tunes on it)."""

    task: str
    n: int
    p: float
    seed: int
    recipe: str = attacks.DEFAULT


def _method(ctx: Context, defense: Defense | None):
    from booster.methods import SFT, SFTConfig

    if defense is None:
        return SFT(SFTConfig(stream="user"))
    k = ctx.cfg.attack
    return defense.factory(registry.config_of(defense, ctx.cfg), k.train.steps)


def _provider_streams(defense: Defense | None) -> tuple[str, ...]:
    return defense.streams if defense is not None else ()


def _defense_key_fields(ctx: Context, defense: Defense | None) -> dict:
    if defense is None:
        return {"finetune": registry.reference().name, **registry.PLAIN_ATTACK_KEY_FIELDS}
    n_align = ctx.cfg.align.samples if "align" in defense.streams else None
    return {"finetune": defense.name, defense.name: to_dict(_method(ctx, defense).config),
            f"{defense.name}_align_samples": n_align}


def key(ctx: Context, aligned: StageResult | None, defense: Defense | None, cell: Cell, topology: str) -> str:
    """``topology``: the resolved one (``fresh`` / ``continue``, ``registry.attack_topology``), so
    that keys made before ``attack.topology: paper`` existed stay valid."""
    cfg, k = ctx.cfg, ctx.cfg.attack
    # the probes read attacker_harmful whatever the recipe draws from
    pools = ("attacker_harmful", *attacks.get(cell.recipe).pools(cell.task),
             *(PROVIDER_STREAMS[s][0] for s in _provider_streams(defense)))
    return digest({
        "stage": "attack", "model": ctx.model_key, "dtype": cfg.dtype, "align": aligned.key if aligned else None,
        "lora": to_dict(cfg.lora), "task": cell.task, "n": cell.n, "p": cell.p, "seed": cell.seed,
        "topology": topology, "train": to_dict(k.train), "probe_samples": k.probe_samples,
        **_defense_key_fields(ctx, defense), "pools": {p: ctx.pool_hash(p) for p in pools},
        **_recipe_key_fields(cell.recipe),
    })


def _recipe_key_fields(recipe: str) -> dict:
    """Nothing for the default recipe, so that keys made before recipes existed stay valid."""
    if recipe == attacks.DEFAULT:
        return {}
    return {"recipe": recipe, "recipe_files": attacks.file_hashes(recipe)}


def run(ctx: Context, aligned: StageResult | None, defense: Defense | None, cell: Cell, topology: str,
        rebuild: bool = False) -> StageResult:
    """Fine-tune on the user's mix; ``defense``: a fine-tuning-stage defense, or None for the
    plain attack; ``topology``: ``fresh`` or ``continue`` (see ``_model``)."""
    k = key(ctx, aligned, defense, cell, topology)
    with ctx.cache.lock("attack", k, every_process=True):  # every process decides under it
        return (ctx.cache.reusable("attack", k, rebuild)
                or _train(ctx, k, align.with_adapter(ctx, aligned), defense, cell, topology))


def _model(ctx: Context, base, aligned: StageResult | None, seed: int, topology: str):
    """The model the user fine-tunes: a fresh LoRA on the (merged) aligned model, or the
    alignment adapter itself trained on ("continue" topology)."""
    from booster.models.adapters import apply_adapter, attach_lora, load_adapter

    if aligned is None:
        return attach_lora(base, ctx.cfg.lora, seed=seed)
    if topology == "continue":
        model = load_adapter(base, aligned.adapter, trainable=True)
        for prm in model.parameters():
            if prm.requires_grad:
                prm.data = prm.data.float()
        return model
    return attach_lora(apply_adapter(base, aligned.adapter), ctx.cfg.lora, seed=seed)


def _probes(ctx: Context, tok, user: list[dict], seed: int) -> dict:
    """Harmful loss on harmful examples the user data holds (train) and on unseen ones (test)."""
    from booster.training import encode_records

    k = ctx.cfg.attack
    harmful_used = {r["messages"][0]["content"] for r in user if r["harmful"]}
    unseen = [r for r in ctx.pool("attacker_harmful") if r["messages"][0]["content"] not in harmful_used]
    unseen = random.Random(f"{seed}:probe").sample(unseen, min(k.probe_samples, len(unseen)))
    probes = {"harmful_test_loss": encode_records(tok, unseen, k.train.max_length)}
    seen = [r for r in user if r["harmful"]][: k.probe_samples]
    if seen:
        probes["harmful_train_loss"] = encode_records(tok, seen, k.train.max_length)
    return probes


def _train(ctx: Context, k: str, aligned: StageResult | None, defense: Defense | None, cell: Cell,
           topology: str) -> StageResult:
    from booster.training import encode_records

    t = ctx.cfg.attack.train
    work = ctx.cache.work("attack", k)
    record = {"stage": "attack", "key": k, "align": aligned.key if aligned else None, "task": cell.task,
              "n": cell.n, "p": cell.p, "seed": cell.seed, "topology": topology,
              "recipe": cell.recipe, "recipe_definition": attacks.definition(cell.recipe),
              "finetune": defense.name if defense else registry.reference().name, "bf16_kernels": ctx.bf16_kernels}
    with measure(record):
        base, tok = ctx.base_model()
        model = _model(ctx, base, aligned, cell.seed, topology)
        user = attacks.build(ctx.data_dir, cell.recipe, cell.task, cell.n, cell.p, cell.seed)
        probes = _probes(ctx, tok, user, cell.seed)
        record.update(n_harmful=sum(r["harmful"] for r in user))
        data = {"user": encode_records(tok, user, t.max_length)}
        for s in _provider_streams(defense):
            data[s] = encode_records(tok, ctx.provider_stream(s), t.max_length)
        history = ctx.train(model, _method(ctx, defense), data, replace(t, seed=cell.seed), work, tok, probes=probes)
    return ctx.finish_trained("attack", k, work, record, model, history)


def with_adapter(ctx: Context, result: StageResult | None) -> StageResult | None:
    """``result`` with its adapter on disk (retrained under the same key when imported from a ledger)."""
    if result is None or result.adapter.exists():
        return result
    rec = result.record
    aligned = ctx.cache.load("align", rec["align"]) if rec.get("align") else None
    found = registry.find(rec.get("finetune") or "")
    defense = found if found is not None and found.stage == "finetune" else None
    cell = Cell(rec["task"], rec["n"], rec["p"], rec["seed"], rec.get("recipe", attacks.DEFAULT))
    return align.same_key(result, run(ctx, aligned, defense, cell, rec["topology"], rebuild=True))
