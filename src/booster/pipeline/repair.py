"""The repair stage (post-fine-tuning): a post-fine-tuning defense takes the aligned and the
attacked model and writes a repaired attack adapter, which the evaluation applies instead of
the attack's own.

A repair defense's factory (``booster.methods.registry``) returns a function

    repair(aligned_state, unaligned_state, attack_lora_state) -> (adapter tensors, report)

``aligned_state`` / ``unaligned_state``: the state dicts (``<module>.weight`` keys) of the base
model with the alignment adapter merged, and of the base model; ``attack_lora_state``: the
attack adapter's tensors as saved (peft keys). It returns tensors with the attack adapter's keys
(written as ``adapter/adapter_model.safetensors`` beside the attack's ``adapter_config.json``)
and a JSON-serialisable report (``report.json``). The stage is computed by the main process.
"""

from __future__ import annotations

import shutil

from booster import io
from booster.config import to_dict
from booster.methods import registry
from booster.methods.registry import Defense
from booster.pipeline import align, attack
from booster.pipeline.cache import StageResult, digest
from booster.pipeline.context import Context
from booster.pipeline.resources import measure


def key(ctx: Context, aligned: StageResult, attacked: StageResult, defense: Defense) -> str:
    return digest({"stage": "repair", "model": ctx.model_key, "dtype": ctx.cfg.dtype, "align": aligned.key,
                   "attack": attacked.key, "method": defense.name,
                   "method_config": to_dict(registry.config_of(defense, ctx.cfg))})


def run(ctx: Context, aligned: StageResult, attacked: StageResult, defense: Defense,
        rebuild: bool = False) -> StageResult:
    """The repaired adapter of ``attacked`` (cached); ``rebuild``: recompute a cached stage's
    missing adapter."""
    k = key(ctx, aligned, attacked, defense)
    with ctx.cache.lock("repair", k, every_process=True):
        found = ctx.cache.reusable("repair", k, rebuild)
        if found is None and ctx.state.is_main_process:
            _repair(ctx, k, align.with_adapter(ctx, aligned), attack.with_adapter(ctx, attacked), defense)
        ctx.state.wait_for_everyone()
    return found or ctx.cache.load("repair", k)


def _states(ctx: Context, aligned: StageResult, attacked: StageResult):
    from safetensors.torch import load_file

    from booster.models.adapters import ADAPTER_WEIGHTS, apply_adapter

    # float32: the merged alignment delta is small against the base weights, and a bf16 merge
    # would round most of W_aligned − W_unaligned away
    base, _ = ctx.base_model("float32")
    unaligned = {n: t.detach().clone() for n, t in base.state_dict().items()}
    aligned_state = apply_adapter(base, aligned.adapter).state_dict()  # merges into base in place
    return aligned_state, unaligned, load_file(str(attacked.adapter / ADAPTER_WEIGHTS))


def _repair(ctx: Context, k: str, aligned: StageResult, attacked: StageResult, defense: Defense) -> None:
    from safetensors.torch import save_file

    from booster.models.adapters import ADAPTER_WEIGHTS

    work = ctx.cache.work("repair", k, fresh=True)
    record = {"stage": "repair", "key": k, "align": aligned.key, "attack": attacked.key, "method": defense.name,
              "bf16_kernels": ctx.bf16_kernels}
    with measure(record):
        repair = defense.factory(registry.config_of(defense, ctx.cfg))
        tensors, report = repair(*_states(ctx, aligned, attacked))
    (work / "adapter").mkdir()
    shutil.copy(attacked.adapter / "adapter_config.json", work / "adapter" / "adapter_config.json")
    save_file({n: t.detach().contiguous().cpu() for n, t in tensors.items()}, str(work / "adapter" / ADAPTER_WEIGHTS))
    io.write_json(work / "report.json", report)
    ctx.cache.finish("repair", k, work, record)


def with_adapter(ctx: Context, result: StageResult | None) -> StageResult | None:
    """``result`` with its adapter on disk (recomputed under the same key when imported from a ledger)."""
    if result is None or result.adapter.exists():
        return result
    rec = result.record
    aligned, attacked = ctx.cache.load("align", rec["align"]), ctx.cache.load("attack", rec["attack"])
    return align.same_key(result, run(ctx, aligned, attacked, registry.get(rec["method"]), rebuild=True))
