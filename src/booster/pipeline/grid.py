"""``booster run CONFIG.yaml``: expand the grid, run every cached stage, aggregate, report.

Order: for each alignment method, align once and evaluate the aligned model ("before attack");
then attack it at every (p, seed) and evaluate each attacked model. Every stage is cached by
its inputs (``stages.py``), so re-running the command after an interruption skips finished
stages and resumes the one that was cut off from its last checkpoint.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tqdm.auto import tqdm

from booster import io
from booster.config import to_dict
from booster.pipeline.config import FINETUNE_METHODS, HARMFUL_DATA_METHODS, ExperimentConfig, align_method
from booster.pipeline.stages import StageResult, Stages, eval_tasks, pool_sha256
from booster.tasks import TASKS

SUMMARY_KEYS = ("method", "p", "n", "seed", "task", "hs", "hs_plus", "fa", "hs_before_attack",
                "fa_before_attack", "over_refusal_before_attack", "refusal_rate", "over_refusal")


def ensure_data(cfg: ExperimentConfig) -> None:
    """Prepare the data pools when the configured folder has none yet."""
    from booster.data import DataConfig, prepare
    from booster.paths import default_data_source

    if (Path(cfg.data.dir) / "manifest.json").exists():
        return
    source = cfg.data.source or default_data_source() or "hub"
    prepare(source, cfg.data.dir, DataConfig(seed=cfg.data.seed))


def check_config(cfg: ExperimentConfig) -> None:
    """What ``booster run --check`` checks before any training: the data pools (prepared when
    missing), the model name and the dtypes. Torch is not imported (unless the config switches
    bf16_emulation off: then the hardware is asked whether it has native bf16)."""
    from booster.models.registry import resolve_model

    ensure_data(cfg)
    check_pools(cfg)
    resolve_model(cfg.model)
    warn_slow_dtype(cfg)


def check_pools(cfg: ExperimentConfig, manifest: dict | None = None) -> None:
    """Every pool the grid reads must exist before the first step of training."""
    from booster.data import load_manifest

    data_dir = Path(cfg.data.dir)
    manifest = load_manifest(data_dir) if manifest is None else manifest
    tasks = grid_tasks(plan(cfg))
    needed = ["alignment", "attacker_harmful"] + [f"{t}_train" for t in tasks]
    if any(align_method(m) in HARMFUL_DATA_METHODS for m in cfg.methods):
        needed.append("provider_harmful")
    for task in tasks:
        needed += [t.pool for t, _ in eval_tasks(cfg, task)]
    for name in needed:
        pool_sha256(manifest, data_dir, name)


def warn_slow_dtype(cfg: ExperimentConfig, device=None) -> None:
    """Warn when bf16 would run in PyTorch's slow generic kernel (``device``: default, the one
    the stages use)."""
    import sys

    if cfg.bf16_emulation:  # bf16 products then run in float32: never the slow kernel
        return
    import torch

    from booster.hardware import bf16_warning

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    message = bf16_warning(cfg.dtype_settings(), device, cfg.bf16_emulation)
    if message:
        print(f"booster: warning: {message}", file=sys.stderr)


EXTRA_METRICS = {"harmful_score": "hs", "accuracy": "fa", "over_refusal": "over_refusal"}


def _metrics(evals: dict[str, StageResult], task: str, extra_tasks: list[str] = ()) -> dict:
    m = {name: ev.record["metrics"] for name, ev in evals.items()}
    extra = {}  # eval.extra_tasks, e.g. hs_advbench (None when not judged)
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


def _line(m: dict) -> str:
    hs = "not judged" if m["hs"] is None else f"{m['hs']:.1f}"
    return (f"HS {hs}  FA {m['fa']:.1f}  refusals {m['refusal_rate']:.1f}%  "
            f"over-refusal {m['over_refusal']:.1f}%")


def plan(cfg: ExperimentConfig) -> list[tuple]:
    """Every attacked run: (method, task, n, p, seed): the main product, then each
    ``attack.extra`` sub-grid (its missing keys taken from the main grid), without repeats."""
    a = cfg.attack
    cells = [(m, t, n, p, s) for m in cfg.methods for t in a.tasks for n in a.ns for p in a.ps for s in a.seeds]
    for x in a.extra:
        cells += [(m, t, n, p, s) for m in x.methods or cfg.methods for t in x.tasks or a.tasks
                  for n in x.ns or a.ns for p in x.ps or a.ps for s in x.seeds or a.seeds]
    return list(dict.fromkeys(cells))


def grid_tasks(cells: list[tuple]) -> list[str]:
    return list(dict.fromkeys(c[1] for c in cells))


def run_experiment(cfg: ExperimentConfig, *, progress: bool = True, log=print, judge=None) -> dict:
    """Run (or resume) the whole grid; write the run folder; return the summary.

    ``judge``: a judge object to use instead of loading ``cfg.eval.judge`` (see
    ``booster.evaluation.judge``); its identity is recorded like any other judge's."""
    import torch
    from accelerate import PartialState

    from booster.hardware import bf16_products

    state = PartialState(cpu=not torch.cuda.is_available())
    with state.main_process_first():  # one process prepares the data, the others then read it
        ensure_data(cfg)
    stages = Stages(cfg, progress=progress and state.is_main_process, judge=judge)
    # bf16 products are chosen for the device Stages resolved, the one every stage computes on
    with bf16_products(stages.device, cfg.bf16_emulation):
        return _run_grid(cfg, stages, state, progress=progress, log=log)


def _run_grid(cfg: ExperimentConfig, stages: Stages, state, *, progress: bool, log) -> dict:
    from booster.data import P_DEFINITION
    from booster.models.generation import decoding_settings
    from booster.protocol import base_protocol
    from booster.report.summary import write_report

    check_pools(cfg, stages.manifest)
    if state.is_main_process:
        warn_slow_dtype(cfg, stages.device)
    if not state.is_main_process:
        log = lambda *_: None  # noqa: E731
    out = Path(cfg.run_dir())
    ledger = out / "stages"
    with state.main_process_first():
        imported = stages.import_ledger(ledger) if state.is_main_process and ledger.is_dir() else 0
    if imported:
        log(f"imported {imported} finished stages from {ledger} (the run folder's ledger)")
    rows, stage_records, kept = [], {}, {}
    histories: dict = {"align": {}, "attack": []}
    grid = plan(cfg)
    a = cfg.attack
    bar = tqdm(total=len(grid), desc="runs", unit="run", disable=not progress)

    def keep(*results):
        for r in results:
            stage_records[r.key] = r.record
            kept[(r.kind, r.key)] = r

    if cfg.unaligned:
        for task in grid_tasks(grid):
            evals = stages.evaluate(None, None, task)
            keep(*evals.values())
            m = _metrics(evals, task, cfg.eval.extra_tasks)
            rows.append({"method": "unaligned", "p": None, "n": None, "seed": None, "task": task,
                         **{k: m[k] for k in ("hs", "hs_plus", "fa", "refusal_rate", "over_refusal")},
                         "hs_before_attack": m["hs"], "fa_before_attack": m["fa"],
                         "over_refusal_before_attack": m["over_refusal"], "hs_prompts": m["hs_prompts"],
                         "judge_sha256": m["judge_sha256"], **m["extra"],
                         "stage": "reference: the base model, not aligned and not attacked"})
    for method in cfg.methods:
        cells = [c for c in grid if c[0] == method]
        if not cells:
            continue
        am, finetune = align_method(method), ("lisa" if method in FINETUNE_METHODS else "sft")
        bar.set_description(f"align {am}")
        aligned = stages.align(am)
        keep(aligned)
        histories["align"][am] = json.loads((aligned.path / "history.json").read_text())
        for task in grid_tasks(cells):
            before = stages.evaluate(aligned, None, task)
            keep(*before.values())
            mb = _metrics(before, task)
            log(f"{method} ({am}-aligned), before attack: {_line(mb)}")
            for _, _, n, p, seed in (c for c in cells if c[1] == task):
                bar.set_description(f"{method} {task} n={n} p={p} seed={seed}")
                attacked = stages.attack(aligned, task, n, p, seed, finetune=finetune)
                evals = stages.evaluate(aligned, attacked, task)
                keep(attacked, *evals.values())
                m = _metrics(evals, task, cfg.eval.extra_tasks)
                log(f"{method} {task} n={n} p={p} seed={seed}: {_line(m)}")
                histories["attack"].append({"method": method, "task": task, "n": n, "p": p, "seed": seed,
                                            "history": json.loads((attacked.path / "history.json").read_text())})
                rows.append({
                    "method": method, "p": p, "n": n, "seed": seed, "task": task,
                    **{k: m[k] for k in ("hs", "hs_plus", "fa", "refusal_rate", "over_refusal")},
                    "hs_before_attack": mb["hs"], "fa_before_attack": mb["fa"],
                    "over_refusal_before_attack": mb["over_refusal"], "hs_prompts": m["hs_prompts"],
                    "judge_sha256": m["judge_sha256"], **m["extra"], "align_method": am, "finetune": finetune, "topology": a.topology,
                    "align_key": aligned.key, "attack_key": attacked.key,
                    "align_seconds": aligned.record["seconds"], "align_peak_rss_mb": aligned.record["peak_rss_mb"],
                    "attack_seconds": attacked.record["seconds"], "attack_peak_rss_mb": attacked.record["peak_rss_mb"],
                    # which kernels ran bf16 in the attack (absent in records older than the field)
                    "bf16_kernels": attacked.record.get("bf16_kernels"),
                })
                if state.is_main_process:
                    _copy_run(out / "runs" / f"{method}-{task}-n{n}-p{p}-seed{seed}", attacked, evals)
                bar.update(1)
    bar.close()
    if not state.is_main_process:
        return {"rows": rows}

    protocol = {
        **base_protocol(),
        "config": to_dict(cfg),
        "model": stages.model_identity,
        "judge": stages.judge_identity(),
        "data": {"dir": str(stages.data_dir), "manifest_sha256": io.sha256_file(stages.data_dir / "manifest.json"),
                 "seed": stages.manifest.get("seed"),
                 "pools": {k: {"count": v["count"], "sha256": v["sha256"]} for k, v in stages.manifest["pools"].items()}},
        "p_definition": P_DEFINITION,
        "lora": to_dict(cfg.lora),
        "attack_topology": a.topology,
        "decoding": decoding_settings(cfg.eval.max_new_tokens, cfg.eval.batch_size),
        "bf16_kernels": stages.bf16_kernels,
        "harmful_prompts": cfg.eval.prompts,
        "stages": list(stage_records.values()),
    }
    out.mkdir(parents=True, exist_ok=True)
    stages.export_ledger(list(kept.values()), ledger)
    io.write_json(out / "summary.json", rows)
    io.write_json(out / "protocol.json", protocol)
    io.write_json(out / "histories.json", histories)
    import yaml

    io.write_text(out / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
    if protocol["judge"] is None:
        log("eval.judge is 'none': answers are cached but not judged (hs is null in summary.json); "
            "run again with a judge to score them without regenerating")
    else:
        write_report(out, rows, histories, protocol)
    log(f"run folder: {out}")
    return {"rows": rows, "protocol": protocol}


def _copy_run(dest: Path, attack: StageResult, evals: dict[str, StageResult]) -> None:
    """Per-run files a reader wants beside the summary: metrics, curves, per-sample answers."""
    with io.atomic_dir(dest) as tmp:
        io.write_json(tmp / "metrics.json", {name: ev.record["metrics"] for name, ev in evals.items()})
        shutil.copy(attack.path / "history.json", tmp / "history.json")
        for name, ev in evals.items():
            shutil.copy(ev.path / "samples.jsonl", tmp / f"samples-{name}.jsonl")
