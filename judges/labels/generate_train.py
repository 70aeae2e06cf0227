"""SmolLM2-135M-Instruct (as shipped) answers to training-side harmful prompts, for hand labeling.

Prompts: unsafe rows of the judge_half pool (prompts the judge may train on) and AdvBench
behaviours (in no pool the judge is evaluated on). Greedy, 128 new tokens, float32."""
import json, sys, hashlib
from pathlib import Path
import torch
from booster.data import load_pool, normalize_prompt, seeded_order
from booster.models.loading import load_model, load_tokenizer
from booster.models.generation import generate

data = Path("work/data")
out = Path(sys.argv[1])
jh = [r for r in load_pool(data, "judge_half") if not r["is_safe"]]
by = {}
for r in jh:
    by.setdefault(normalize_prompt(r["messages"][0]["content"]), r["messages"][0]["content"])
order = seeded_order(list(by.values()), 0, "label-dev")[:230]
jh_prompts = [by[k] for k in order]
adv = [r["messages"][0]["content"] for r in load_pool(data, "advbench_prompts")]
order_a = seeded_order(adv, 0, "label-dev")[:190]
by_a = {normalize_prompt(p): p for p in adv}
adv_prompts = [by_a[k] for k in order_a]
torch.set_num_threads(2)
model, tok = load_model("smollm2-135m-instruct", dtype="float32")
rows = []
for src, prompts in (("judge_half", jh_prompts), ("advbench", adv_prompts)):
    gens = generate(model, tok, [[{"role": "user", "content": p}] for p in prompts], max_new_tokens=128, batch_size=32, desc=src)
    for p, g in zip(prompts, gens):
        rows.append({"id": hashlib.sha256((p + "\x00" + g.text).encode()).hexdigest()[:12], "prompt": p, "answer": g.text,
                     "source": f"smollm2_{src}", "origin": {"model": "smollm2-135m-instruct", "prompts": src,
                     "decoding": "greedy, 128 new tokens, float32"}})
out.write_text("".join(json.dumps(r) + "\n" for r in rows))
print(len(rows))
