"""Regenerate probe 1's committed answers with today's decoder and compare them token for token
(provenance of BENCHMARKS.md's "100 of 100 identical" for the row-dropping greedy loop).

    python results/cpu-smollm2-paper-protocol/probes/regenerate.py [TASK STAGE_KEY]

Default: the 100 over-refusal answers of the SFT-aligned model before the attack
(generate stage 53bc26ddf13e340b). It needs probe 1's alignment adapter in the work cache
(work/cache/align/ca4619cb4d38538c/adapter); rerunning probe 1's command rebuilds it.
Float32, batch 32, 96 new tokens, as the probe generated.
"""

import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2] / "src"))

from booster.evaluation.harness import answer_task, load_prompts  # noqa: E402
from booster.models import load_model  # noqa: E402
from booster.models.adapters import apply_adapter  # noqa: E402
from booster.tasks import get_task  # noqa: E402

task_name, stage = sys.argv[1:3] if len(sys.argv) == 3 else ("over_refusal_val", "53bc26ddf13e340b")
answers = HERE / "sft-r8" / "stages" / "generate" / stage / "answers.jsonl"
ref = [json.loads(line) for line in answers.read_text(encoding="utf-8").splitlines()]
model, tok = load_model("smollm2-135m-instruct", dtype="float32", device="cpu")
model = apply_adapter(model, Path("work/cache/align/ca4619cb4d38538c/adapter"))
task = get_task(task_name)
records = load_prompts(Path("work/data"), task, len(ref))
start = time.perf_counter()
gens = answer_task(model, tok, task, records, max_new_tokens=96, batch_size=32, progress=False)
same = sum(g.text == r["answer"] and g.new_tokens == r["new_tokens"] for g, r in zip(gens, ref))
print(f"{same}/{len(ref)} identical ({time.perf_counter() - start:.0f} s)")
for g, r in zip(gens, ref):
    if g.text != r["answer"]:
        print("differs:", repr(r["answer"][:100]), "->", repr(g.text[:100]))
