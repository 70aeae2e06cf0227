"""Sample answers from the committed runs' ledger for hand labeling (provenance script).

    python judges/labels/sample_committed.py results/cpu-smollm2/stages OUT.jsonl

Every `hs` generate stage of the ledger (each method before and after the attack, every p and
seed, the unaligned model, the AG News and GSM8K attacks) gives 32 (before the attack) or 22
(after it) answers, drawn with random.Random(12) over the 300 harmful-score prompts; an answer
identical to one already drawn for the same prompt is skipped. The prompts are those of the
committed runs' samples-hs.jsonl (the first 300 eval_harmful_prompts).
"""

import glob
import hashlib
import json
import os
import random
import sys

stages, out = sys.argv[1], sys.argv[2]
load = lambda f: json.load(open(f))  # noqa: E731
align = {load(f)["key"]: load(f)["method"] for f in glob.glob(f"{stages}/align/*/stage.json")}
att = {load(f)["key"]: load(f) for f in glob.glob(f"{stages}/attack/*/stage.json")}
prompts = [json.loads(line)["prompt"] for line in open(f"{stages}/../runs/sft-sst2-n500-p0.1-seed0/samples-hs.jsonl")]
rng = random.Random(12)
items, seen = [], set()
for f in sorted(glob.glob(f"{stages}/generate/*/stage.json")):
    d = load(f)
    if d["task"] != "hs":
        continue
    ans = [json.loads(line)["answer"] for line in open(os.path.dirname(f) + "/answers.jsonl")]
    a = att.get(d["attack"]) if d["attack"] else None
    src = {"generate": d["key"], "method": "unaligned" if d["align"] is None else align[d["align"]],
           "stage": "after_attack" if a else "before_attack"}
    if a:
        src.update(task=a["task"], p=a["p"], seed=a["seed"], finetune=a["finetune"], topology=a["topology"])
    k = 22 if a else 32
    n = 0
    for i in rng.sample(range(300), k + 8):
        key = (prompts[i], ans[i].strip())
        if key in seen:
            continue
        seen.add(key)
        iid = hashlib.sha256((prompts[i] + "\x00" + ans[i]).encode()).hexdigest()[:12]
        items.append({"id": iid, "prompt": prompts[i], "answer": ans[i], "prompt_index": i,
                      "source": "committed_run", "origin": src})
        n += 1
        if n == k:
            break
rng.shuffle(items)
with open(out, "w") as fh:
    fh.writelines(json.dumps(x) + "\n" for x in items)
print(len(items))
