"""Run evaluation tasks on a model: generate, score, aggregate, record the protocol.

:func:`evaluate_model` works on a model in memory; ``booster run`` evaluates through the same
steps (:func:`load_prompts`, :func:`answer_task`, :func:`score_answers`), each cached on its own
(``booster.pipeline.evaluate``); :func:`run_eval` is ``booster eval``: it loads the model (and adapter),
evaluates, and writes a run folder atomically::

    RUN/metrics.json          one object per task, plus the headline numbers
    RUN/samples/TASK.jsonl    prompt, answer and every score, one line per prompt
    RUN/protocol.json         model, adapter, judge identity, decoding, data manifest, code
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from booster import io
from booster.config import option, to_dict
from booster.errors import BoosterError
from booster.models.generation import decoding_settings, generate
from booster.evaluation.signals import is_incoherent, is_refusal, percent
from booster.tasks import Task, parse_tasks


def prompt_of(record: dict) -> list[dict]:
    """The conversation up to (not including) the final assistant answer, if any."""
    messages = record["messages"]
    return messages[:-1] if messages and messages[-1]["role"] == "assistant" else messages


def load_prompts(data_dir: Path, task: Task, limit: int | None) -> list[dict]:
    from booster.data import load_pool

    records = load_pool(data_dir, task.pool)
    n = task.limit if limit is None else limit
    if n is not None:
        records = records[:n]
    if not records:
        raise BoosterError(f"task {task.name!r}: empty prompt set (pool {task.pool!r}, limit {n})")
    return records


def score_task(task: Task, records: list[dict], answers: list[str], judge=None) -> tuple[dict, list[dict]]:
    """Metrics and per-sample rows for one task, given the model's answers."""
    prompts = [prompt_of(r) for r in records]
    rows = [{"prompt": p[-1]["content"], "answer": a} for p, a in zip(prompts, answers)]
    metrics: dict = {"task": task.name, "n_prompts": len(rows), "rule": task.rule}
    refusals = [is_refusal(a) for a in answers]
    for row, r in zip(rows, refusals):
        row["refusal"] = r
    if task.metric == "harmful_score":
        incoherent = [is_incoherent(a) for a in answers]
        for row, inc in zip(rows, incoherent):
            row["incoherent"] = inc
        metrics.update(refusal_rate=percent(refusals), incoherent_rate=percent(incoherent))
        if judge is not None:  # judge=None: answers only, scored later (booster eval --rescore)
            judge_rows(task, rows, metrics, judge)
    elif task.metric == "accuracy":
        correct = [task.correct(a, r["label"]) for a, r in zip(answers, records)]
        for row, r, c in zip(rows, records, correct):
            row.update(gold=r["label"], correct=c)
        metrics["fa"] = percent(correct)
    elif task.metric == "over_refusal":
        metrics["over_refusal"] = percent(refusals)
    return metrics, rows


def judge_rows(task: Task, rows: list[dict], metrics: dict, judge) -> None:
    """Add the judge's verdicts to harmful-score rows and HS/HS+ to ``metrics`` (in place)."""
    probs = judge.score([(row["prompt"], row["answer"]) for row in rows])
    flags = judge.flag_from_scores(probs)
    for row, p, f in zip(rows, probs, flags):
        row.update(judge_prob=float(p), harmful=bool(f))
    metrics.update(hs=percent(flags), hs_plus=percent([f or row["incoherent"] for f, row in zip(flags, rows)]))


def with_system(conversation: list[dict], system: str | None) -> list[dict]:
    """``conversation`` with ``system`` as its system prompt, replacing any it had (None: as it is)."""
    if system is None:
        return conversation
    return [{"role": "system", "content": system}] + [m for m in conversation if m["role"] != "system"]


def answer_task(model, tokenizer, task: Task, records: list[dict], *, max_new_tokens: int, batch_size: int,
                progress: bool = True, system: str | None = None):
    """Greedy answers of an in-memory model to one task's prompts (``Generation`` objects);
    ``system``: a system prompt put in front of each (a provider's safety prompt or trigger)."""
    return generate(model, tokenizer, [with_system(prompt_of(r), system) for r in records],
                    max_new_tokens=task.max_new_tokens or max_new_tokens, batch_size=batch_size,
                    desc=task.name, progress=progress)


def score_answers(task: Task, records: list[dict], answers: list[str], judge, *, max_new_tokens: int,
                  generation_seconds: float, generated_tokens: int) -> tuple[dict, list[dict]]:
    """:func:`score_task` plus what the answers cost: the metrics every evaluation records."""
    metrics, rows = score_task(task, records, answers, judge)
    metrics.update(max_new_tokens=task.max_new_tokens or max_new_tokens, generation_seconds=generation_seconds,
                   generated_tokens=generated_tokens)
    return metrics, rows


def evaluate_model(model, tokenizer, tasks: list[Task], data_dir: Path, *, judge=None,
                   limit: int | None = None, max_new_tokens: int = 128, batch_size: int = 16,
                   progress: bool = True) -> tuple[dict[str, dict], dict[str, list[dict]]]:
    """Evaluate an in-memory model on ``tasks``; returns (metrics by task, samples by task).

    ``booster run`` takes the same three steps (prompts, answers, scores) with each cached on
    its own (``booster.pipeline.evaluate``)."""
    metrics, samples = {}, {}
    for task in tasks:
        records = load_prompts(data_dir, task, limit)
        start = time.perf_counter()
        gens = answer_task(model, tokenizer, task, records, max_new_tokens=max_new_tokens, batch_size=batch_size,
                           progress=progress)
        seconds = round(time.perf_counter() - start, 2)
        metrics[task.name], samples[task.name] = score_answers(
            task, records, [g.text for g in gens], judge, max_new_tokens=max_new_tokens,
            generation_seconds=seconds, generated_tokens=sum(g.new_tokens for g in gens))
    return metrics, samples


HEADLINE = ("hs", "hs_plus", "refusal_rate", "fa", "over_refusal")


def headline(metrics: dict[str, dict]) -> dict:
    """Flat summary: HS numbers from 'hs', FA from the first accuracy task, over-refusal."""
    out = {}
    for name, m in metrics.items():
        for key in HEADLINE:
            if key in m and key not in out and (key not in ("hs", "hs_plus", "refusal_rate") or name == "hs"):
                out[key] = m[key]
                if key == "fa":
                    out["fa_task"] = name
    return out


@dataclass
class EvalConfig:
    model: str = option(help="model: short name (smollm2-135m-instruct), local folder or hub id")
    adapter: str | None = option(None, "LoRA adapter folder (peft, safetensors) applied on top of the model")
    tasks: str = option("hs,sst2", "comma-separated task names (see booster.tasks.TASKS)")
    data: str = option("work/data", "prepared data folder (booster data prepare)")
    judge: str = option("answer-judge", "moderation judge: 'answer-judge' (committed default), 'minilm-judge' (the first, for comparison), a judge folder, an HF id, or 'none' "
                                  "(generate now, score later with `booster eval --rescore`)")
    limit: int | None = option(None, "prompts per task (default: each task's own; paper: 1000 for HS)")
    max_new_tokens: int = option(128, "new tokens per answer unless the task caps it (paper: 512)")
    batch_size: int = option(16, "generation batch size")
    dtype: str = option("float32", "model dtype for evaluation: float32 or bfloat16")
    device: str | None = option(None, "where the model generates and the judge scores: cpu, cuda, cuda:1, ... "
                                      "(default: cuda when a GPU is visible, else cpu)")


def run_eval(cfg: EvalConfig, out_dir: Path, progress: bool = True) -> dict:
    from booster.data import load_manifest
    from booster.evaluation.judges import load_judge
    from booster.models import load_model, resolve_model
    from booster.models.adapters import apply_adapter, check_adapter_folder
    from booster.protocol import base_protocol

    tasks = parse_tasks(cfg.tasks)
    data_dir = Path(cfg.data)
    manifest = load_manifest(data_dir)  # fails early, before loading any model
    for task in tasks:  # every prompt set must exist and be non-empty before generating anything
        load_prompts(data_dir, task, cfg.limit)
    if cfg.adapter is not None:
        check_adapter_folder(Path(cfg.adapter))
    from booster.hardware import bf16_kernels, bf16_products, default_device

    device = cfg.device or default_device()
    needs_judge = any(t.metric == "harmful_score" for t in tasks) and cfg.judge != "none"
    judge = load_judge(cfg.judge, device=device) if needs_judge else None
    resolved = resolve_model(cfg.model)
    model, tokenizer = load_model(cfg.model, dtype=cfg.dtype, device=device)
    if cfg.adapter is not None:
        model = apply_adapter(model, Path(cfg.adapter))

    with bf16_products(device):  # bf16 answers at float32 speed where the CPU has no native bf16
        metrics, samples = evaluate_model(model, tokenizer, tasks, data_dir, judge=judge, limit=cfg.limit,
                                          max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size,
                                          progress=progress)
    protocol = {
        **base_protocol(),
        "config": to_dict(cfg),
        "model": resolved.identity(),
        "adapter": adapter_identity(cfg.adapter),
        "judge": judge.identity() if judge else None,
        "decoding": decoding_settings(cfg.max_new_tokens, cfg.batch_size),
        "bf16_kernels": bf16_kernels(device) if cfg.dtype == "bfloat16" else None,
        "data_manifest_sha256": io.sha256_file(data_dir / "manifest.json"),
        "data_pools": {t.pool: manifest["pools"][t.pool]["sha256"] for t in tasks},
        "tasks": {t.name: {"pool": t.pool, "rule": t.rule, "n_prompts": metrics[t.name]["n_prompts"],
                           "max_new_tokens": metrics[t.name]["max_new_tokens"]} for t in tasks},
    }
    result = {"summary": headline(metrics), "tasks": metrics}
    with io.atomic_dir(out_dir) as tmp:
        io.write_json(tmp / "metrics.json", result)
        io.write_json(tmp / "protocol.json", protocol)
        for name, rows in samples.items():
            io.write_jsonl(tmp / "samples" / f"{name}.jsonl", rows)
    return result


def adapter_identity(adapter: str | None) -> dict | None:
    if adapter is None:
        return None
    weights = Path(adapter) / "adapter_model.safetensors"
    return {"path": str(adapter), "sha256": io.sha256_file(weights) if weights.exists() else None}


def rescore(run_dir: Path, judge_spec: str) -> dict:
    """Score the saved answers of a ``booster eval`` run folder with another judge.

    Generation is the expensive part of an evaluation; the answers in ``samples/`` are judged
    again (e.g. CPU-generated answers by beaver-dam-7b on a GPU machine) and the run folder is
    rewritten atomically with the new metrics and the new judge's identity."""
    import json

    from booster.evaluation.judges import load_judge
    from booster.tasks import TASKS

    run_dir = Path(run_dir)
    files = [run_dir / "metrics.json", run_dir / "protocol.json"]
    if not all(f.is_file() for f in files):
        raise BoosterError(f"'{run_dir}' is not a `booster eval` run folder (metrics.json/protocol.json missing)")
    result = json.loads(files[0].read_text(encoding="utf-8"))
    protocol = json.loads(files[1].read_text(encoding="utf-8"))
    hs_tasks = [name for name in result["tasks"] if TASKS[name].metric == "harmful_score"]
    if not hs_tasks:
        raise BoosterError(f"'{run_dir}' has no harmful-score task to rescore")
    from booster.hardware import default_device

    judge = load_judge(judge_spec, device=default_device())
    samples = {}
    for name in hs_tasks:
        rows = io.read_jsonl(run_dir / "samples" / f"{name}.jsonl")
        judge_rows(TASKS[name], rows, result["tasks"][name], judge)
        samples[name] = rows
    result["summary"] = headline(result["tasks"])
    protocol["judge"] = judge.identity()
    with io.atomic_dir(run_dir) as tmp:
        for f in run_dir.rglob("*"):
            if f.is_file():
                (tmp / f.relative_to(run_dir)).parent.mkdir(parents=True, exist_ok=True)
                (tmp / f.relative_to(run_dir)).write_bytes(f.read_bytes())
        io.write_json(tmp / "metrics.json", result)
        io.write_json(tmp / "protocol.json", protocol)
        for name, rows in samples.items():
            io.write_jsonl(tmp / "samples" / f"{name}.jsonl", rows)
    return result
