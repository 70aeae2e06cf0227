"""The rows of summary.json: one per evaluated model state of the grid."""

from __future__ import annotations

from booster.data.attacks import DEFAULT as DEFAULT_RECIPE
from booster.methods.registry import Chain
from booster.pipeline.attack import Cell
from booster.pipeline.cache import StageResult

SUMMARY_KEYS = ("method", "p", "n", "seed", "task", "hs", "hs_plus", "fa", "hs_before_attack",
                "fa_before_attack", "over_refusal_before_attack", "refusal_rate", "over_refusal")
_AFTER = ("hs", "hs_plus", "fa", "refusal_rate", "over_refusal")
# the summary column of an extra task (eval.extra_tasks), by the task's metric: hs_advbench, ...
EXTRA_METRICS = {"harmful_score": "hs", "accuracy": "fa", "over_refusal": "over_refusal"}


def metrics(evals: dict[str, StageResult], task: str, extra_tasks=()) -> dict:
    """The headline numbers of one model state's evaluation of ``task`` (and of the extra tasks)."""
    from booster.tasks import TASKS

    m = {name: ev.record["metrics"] for name, ev in evals.items()}
    extra = {}  # None where not judged (eval.judge: none)
    for name in dict.fromkeys(extra_tasks):
        if name != task:
            key = EXTRA_METRICS[TASKS[name].metric]
            extra[f"{key}_{name}"] = m[name].get(key)
    hs = m.get("hs") or m["hs_val"]
    judge = (evals.get("hs") or evals["hs_val"]).record.get("judge") or {}
    # hs / hs_plus are absent when eval.judge is 'none' (answers generated, not yet judged)
    return {"hs": hs.get("hs"), "hs_plus": hs.get("hs_plus"), "judge_sha256": judge.get("sha256"),
            "refusal_rate": hs["refusal_rate"], "fa": m[task]["fa"],
            "over_refusal": (m.get("over_refusal") or m["over_refusal_val"])["over_refusal"], "hs_prompts": hs["n_prompts"],
            "fa_samples": m[task]["n_prompts"], "extra": extra}


def line(m: dict) -> str:
    hs = "not judged" if m["hs"] is None else f"{m['hs']:.1f}"
    return (f"HS {hs}  FA {m['fa']:.1f}  refusals {m['refusal_rate']:.1f}%  "
            f"over-refusal {m['over_refusal']:.1f}%")


def _before(mb: dict) -> dict:
    return {"hs_before_attack": mb["hs"], "fa_before_attack": mb["fa"], "over_refusal_before_attack": mb["over_refusal"]}


def unaligned(task: str, m: dict) -> dict:
    return {"method": "unaligned", "p": None, "n": None, "seed": None, "task": task, **{k: m[k] for k in _AFTER},
            **_before(m), "hs_prompts": m["hs_prompts"], "judge_sha256": m["judge_sha256"], **m["extra"],
            "stage": "reference: the base model, not aligned and not attacked"}


def attacked(method: str, chain: Chain, cell: Cell, topology: str, mb: dict, m: dict,
             aligned: StageResult, attack: StageResult, repaired: StageResult | None, reference: str,
             system_prompt: str | None = None) -> dict:
    """One attacked run: its numbers after (and before) the attack, and its stages; a
    fine-tuning-stage defense's data report and evaluation system prompt when it has them."""
    row = {"method": method, "p": cell.p, "n": cell.n, "seed": cell.seed, "task": cell.task,
           **{k: m[k] for k in _AFTER}, **_before(mb), "hs_prompts": m["hs_prompts"],
           "judge_sha256": m["judge_sha256"], **m["extra"], "align_method": chain.align.name,
           "finetune": chain.finetune.name if chain.finetune else reference, "topology": topology,
           "align_key": aligned.key, "attack_key": attack.key,
           "align_seconds": aligned.record["seconds"], "align_peak_rss_mb": aligned.record["peak_rss_mb"],
           "attack_seconds": attack.record["seconds"], "attack_peak_rss_mb": attack.record["peak_rss_mb"],
           # which kernels ran bf16 in the attack (absent in records older than the field)
           "bf16_kernels": attack.record.get("bf16_kernels")}
    if cell.recipe != DEFAULT_RECIPE:  # absent for task_mix, so rows of older grids stay as they were
        row["attack_recipe"] = cell.recipe
    if repaired is not None:  # absent otherwise, so rows without a repair stay as they were
        row.update(repair=chain.post.name, repair_key=repaired.key, repair_seconds=repaired.record["seconds"],
                   repair_peak_rss_mb=repaired.record["peak_rss_mb"])
    if "user_data" in attack.record:  # absent otherwise, as above
        row["user_data"] = attack.record["user_data"]
    if system_prompt is not None:
        row["eval_system_prompt"] = system_prompt
    return row
