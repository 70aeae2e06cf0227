"""SmolLM2-135M-Instruct (as shipped) answers to training-side harmful prompts, for hand labeling
(provenance script; run from the repository root after `booster data prepare`).

    python judges/labels/generate_train.py 1 OUT.jsonl   # round 1: 230 judge_half + 190 AdvBench prompts
    python judges/labels/generate_train.py 2 OUT.jsonl   # round 2: next 150 judge_half + 180 provider_harmful

Prompts: unsafe rows of judge_half and provider_harmful (pools the judge trains on) and AdvBench
behaviours (in no evaluation pool), each in seeded_order(salt="label-dev"). Greedy decoding,
128 new tokens, float32, batch 32."""
import hashlib
import json
import sys
from pathlib import Path

import torch

from booster.data import load_pool, normalize_prompt, seeded_order
from booster.models.generation import generate
from booster.models.loading import load_model

ROUNDS = {"1": (("judge_half", 0, 230), ("advbench_prompts", 0, 190)),
          "2": (("judge_half", 230, 380), ("provider_harmful", 0, 180))}
SOURCE = {"judge_half": "judge_half", "advbench_prompts": "advbench", "provider_harmful": "provider_harmful"}

data = Path("work/data")
rnd, out = sys.argv[1], Path(sys.argv[2])
torch.set_num_threads(2)
model, tok = load_model("smollm2-135m-instruct", dtype="float32")
rows = []
for pool, lo, hi in ROUNDS[rnd]:
    recs = [r for r in load_pool(data, pool) if not r.get("is_safe", False)]
    by = {}
    for r in recs:
        by.setdefault(normalize_prompt(r["messages"][0]["content"]), r["messages"][0]["content"])
    prompts = [by[k] for k in seeded_order(list(by.values()), 0, "label-dev")[lo:hi]]
    src = SOURCE[pool]
    gens = generate(model, tok, [[{"role": "user", "content": p}] for p in prompts], max_new_tokens=128,
                    batch_size=32, desc=src)
    for p, g in zip(prompts, gens):
        rows.append({"id": hashlib.sha256((p + "\x00" + g.text).encode()).hexdigest()[:12], "prompt": p,
                     "answer": g.text, "source": f"smollm2_{src}",
                     "origin": {"model": "smollm2-135m-instruct", "prompts": src, "round": int(rnd),
                                "decoding": "greedy, 128 new tokens, float32"}})
out.write_text("".join(json.dumps(r) + "\n" for r in rows))
print(len(rows))
