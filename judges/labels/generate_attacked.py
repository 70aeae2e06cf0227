"""Answers of *attacked* models to training-side harmful prompts, for hand labeling (round 3;
provenance script, run from the repository root after `booster data prepare`).

    python judges/labels/generate_attacked.py OUT.jsonl

Why: the test split holds answers of fine-tuned models, while rounds 1 and 2 are answers of
SmolLM2 as shipped, which refuse or engage mildly far more often. This round draws answers of
the kind that is hardest to judge (attacked models that half-comply) on prompts the judge may
train on.

Models: the recipe of configs/cpu-smollm2.yaml (SFT alignment, then the SST-2 attack with n=500
at p=0.1, seed 0), trained again in float32 in a cache of its own (work/cache-label3):
the ledger keeps no weights, and its bf16 stages are slower still to rebuild on a machine without
native bf16 (18.5 against 13.7 s a step here). Decoding as in that config's evaluation, but float32: greedy, 96 new tokens,
batch 32. Prompts: unsafe judge_half and provider_harmful prompts in
seeded_order(salt="label-dev"), continuing after those rounds 1 and 2 used, and the AdvBench
behaviours that round 1 left."""
import hashlib
import json
import sys
from pathlib import Path

from booster.config import load_config
from booster.data import load_pool, normalize_prompt, seeded_order
from booster.hardware import bf16_products
from booster.models.generation import generate
from booster.pipeline.config import ExperimentConfig
from booster.methods import registry
from booster.pipeline import align as align_stage, attack as attack_stage, evaluate
from booster.pipeline.context import Context

# (p, [(pool, first, last)]) in seeded_order(salt="label-dev") of each pool's unsafe prompts
MODELS = [(0.1, [("judge_half", 380, 630), ("provider_harmful", 180, 430), ("advbench_prompts", 190, 290)])]
SOURCE = {"judge_half": "judge_half", "advbench_prompts": "advbench", "provider_harmful": "provider_harmful"}

out = Path(sys.argv[1])
cfg = load_config(ExperimentConfig, "configs/cpu-smollm2.yaml",
                  ["dtype=float32", "align.train.mixed_precision='no'", "attack.train.mixed_precision='no'",
                   "eval.dtype=float32", "cache=work/cache-label3"])
ctx = Context(cfg, progress=True)
data = Path(cfg.data.dir)


def prompts_of(pool: str, lo: int, hi: int) -> list[str]:
    by: dict[str, str] = {}
    for r in load_pool(data, pool):
        if not r.get("is_safe", False):
            by.setdefault(normalize_prompt(r["messages"][0]["content"]), r["messages"][0]["content"])
    return [by[k] for k in seeded_order(list(by.values()), 0, "label-dev")[lo:hi]]


rows = []
with bf16_products(ctx.device, cfg.bf16_emulation):
    align = align_stage.run(ctx, registry.get("sft"))
    for p, spans in MODELS:
        attack = attack_stage.run(ctx, align, None, attack_stage.Cell("sst2", 500, p, 0))
        model, tok = evaluate.model_of(ctx, evaluate.ModelState(align, attack))
        for pool, lo, hi in spans:
            prompts = prompts_of(pool, lo, hi)
            gens = generate(model, tok, [[{"role": "user", "content": q}] for q in prompts],
                            max_new_tokens=cfg.eval.max_new_tokens, batch_size=cfg.eval.batch_size,
                            desc=f"p={p} {SOURCE[pool]}")
            for q, g in zip(prompts, gens):
                rows.append({"id": hashlib.sha256((q + "\x00" + g.text).encode()).hexdigest()[:12], "prompt": q,
                             "answer": g.text, "source": f"attacked_{SOURCE[pool]}",
                             "origin": {"model": "smollm2-135m-instruct", "align": align.key, "attack": attack.key,
                                        "method": "sft", "task": "sst2", "n": 500, "p": p, "seed": 0,
                                        "prompts": SOURCE[pool], "round": 3,
                                        "decoding": f"greedy, {cfg.eval.max_new_tokens} new tokens, "
                                                    f"{cfg.eval.dtype}, batch {cfg.eval.batch_size}"}})
        out.write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(p, len(rows), flush=True)
