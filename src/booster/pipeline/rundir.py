"""The run folder: summary, protocol, histories, config, ledger, per-run files and the report."""

from __future__ import annotations

import shutil
from pathlib import Path

from booster import io
from booster.config import to_dict
from booster.pipeline.cache import StageResult
from booster.pipeline.context import Context


def protocol(ctx: Context, stage_records: list[dict]) -> dict:
    """Everything a reader needs to know how the numbers were made."""
    from booster.data import P_DEFINITION
    from booster.models.generation import decoding_settings
    from booster.protocol import base_protocol

    cfg, manifest = ctx.cfg, ctx.manifest
    return {
        **base_protocol(),
        "config": to_dict(cfg),
        "model": ctx.model_identity,
        "judge": ctx.judge_identity(),
        "data": {"dir": str(ctx.data_dir), "manifest_sha256": io.sha256_file(ctx.data_dir / "manifest.json"),
                 "seed": manifest.get("seed"),
                 "pools": {k: {"count": v["count"], "sha256": v["sha256"]} for k, v in manifest["pools"].items()}},
        "p_definition": P_DEFINITION,
        "attack_recipes": recipes(cfg),
        "lora": to_dict(cfg.lora),
        "attack_topology": cfg.attack.topology,
        "decoding": decoding_settings(cfg.eval.max_new_tokens, cfg.eval.batch_size),
        "bf16_kernels": ctx.bf16_kernels,
        "diagnostic_alpha": cfg.align.diagnostic_alpha(),  # the α of the diagnostics and of the report's line
        "harmful_prompts": cfg.eval.prompts,
        "stages": stage_records,
    }


def recipes(cfg) -> dict:
    """The attack recipes the grid runs, each with its definition (booster.data.attacks)."""
    from booster.data import attacks
    from booster.pipeline.cells import plan

    return {r: attacks.describe(r) for r in dict.fromkeys(c[5] for c in plan(cfg))}


def write(ctx: Context, out: Path, kept: list[StageResult], rows: list[dict], histories: dict, log) -> dict:
    """Write the run folder (main process); returns the protocol."""
    import yaml

    from booster.report.summary import write_report

    proto = protocol(ctx, list({r.key: r.record for r in kept}.values()))
    out.mkdir(parents=True, exist_ok=True)
    ctx.cache.export_ledger(kept, out / "stages")
    io.write_json(out / "summary.json", rows)
    io.write_json(out / "protocol.json", proto)
    io.write_json(out / "histories.json", histories)
    io.write_text(out / "config.yaml", yaml.safe_dump(to_dict(ctx.cfg), sort_keys=False))
    if proto["judge"] is None:
        log("eval.judge is 'none': answers are cached but not judged (hs is null in summary.json); "
            "run again with a judge to score them without regenerating")
    else:
        write_report(out, rows, histories, proto)
    log(f"run folder: {out}")
    return proto


def copy_run(dest: Path, attack: StageResult, evals: dict[str, StageResult], repaired: StageResult | None) -> None:
    """Per-run files a reader wants beside the summary: metrics, curves, per-sample answers."""
    with io.atomic_dir(dest) as tmp:
        io.write_json(tmp / "metrics.json", {name: ev.record["metrics"] for name, ev in evals.items()})
        shutil.copy(attack.path / "history.json", tmp / "history.json")
        if repaired is not None:
            shutil.copy(repaired.path / "report.json", tmp / "repair.json")
        for name, ev in evals.items():
            shutil.copy(ev.path / "samples.jsonl", tmp / f"samples-{name}.jsonl")
