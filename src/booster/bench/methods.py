"""Cost of every defense's stage against SFT on the same data, under one experiment config.

Each method trains a fresh LoRA for a few optimizer steps through the real training loop
(``booster.training.train``) with the config's batch size, sequence length, precision and
hyperparameters; the alignment-stage methods (SFT, Booster, Vaccine, RepNoise) on the
alignment (and provider-harmful) data, the fine-tuning-stage ones (SFT as the user runs it,
Lisa, and the defenses that transform the user's file, whose transform is timed once on its own:
``prepare_seconds``, ``prepare_peak_rss_mb``, ``prepare_in_sft_steps``) on the user's p-mix. Each method runs in a fresh process: one warm-up step, then the timed
steps, with the peak resident memory reset in between (``/proc/self/clear_refs``), so each
method's peak is its own. Ratios are taken against SFT of the same stage, measured in the same process.
"""

from __future__ import annotations

from dataclasses import replace

from booster.methods import registry
from booster.pipeline.config import ExperimentConfig
from booster.pipeline.resources import measure, rss_mb

# the pipeline stage each trainable defense's cost is measured in
_BENCH_STAGE = {"align": "align", "finetune": "attack"}


def bench_methods(cfg: ExperimentConfig, methods: list[str], steps: int, *, task: str | None = None,
                  p: float | None = None, log=print) -> dict:
    from booster.config import to_dict
    from booster.models import resolve_model
    from booster.protocol import base_protocol

    task = task or cfg.attack.tasks[0]
    p = cfg.attack.ps[0] if p is None else p
    n = cfg.attack.ns[0]
    # The baselines: SFT (the reference) in each stage the benchmarked methods belong to.
    ref = registry.reference().name
    cells = []
    for stage in ("align", "attack"):
        mine = [m for m in methods if _BENCH_STAGE.get(registry.get(m).stage) == stage and m != ref]
        if mine or (stage == "align" and ref in methods):
            cells += [(ref, stage)] + [(m, stage) for m in mine]
    # Each cell in a fresh process: the resident-memory peak of one would otherwise include what
    # the cells before it allocated (freed tensors stay in the allocator's pools).
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    rows = []
    for method, stage in cells:
        with ctx.Pool(1) as pool:
            row = pool.apply(_cell, (cfg, method, stage, steps, task, p, n))
        rows.append(row)
        log(f"{method:>9} ({stage}): {row['seconds_per_step']:.2f} s/step, peak {row['peak_rss_mb']} MB")
    for row in rows:
        ref_row = next(r for r in rows if r["method"] == ref and r["stage"] == row["stage"])
        row["time_over_sft"] = round(row["seconds_per_step"] / ref_row["seconds_per_step"], 2)
        if "prepare_seconds" in row:  # the data transform, once per request, in SFT steps of this config
            row["prepare_in_sft_steps"] = round(row["prepare_seconds"] / ref_row["seconds_per_step"], 2)
        if row["peak_rss_mb"] and ref_row["peak_rss_mb"]:
            row["peak_memory_over_sft"] = round(row["peak_rss_mb"] / ref_row["peak_rss_mb"], 2)
            if row["rss_before_mb"] and ref_row["rss_before_mb"]:
                extra = row["peak_rss_mb"] - row["rss_before_mb"]
                ref_extra = ref_row["peak_rss_mb"] - ref_row["rss_before_mb"]
                row["training_memory_over_sft"] = round(extra / ref_extra, 2) if ref_extra > 0 else None
    import torch

    return {"benchmark": "methods", "config": cfg.name, "model": resolve_model(cfg.model).identity(), "dtype": cfg.dtype,
            "lora": {"rank": cfg.lora.rank, "alpha": cfg.lora.alpha}, "task": task, "n": n, "p": p,
            "batch_size": cfg.align.train.batch_size, "max_length": cfg.align.train.max_length,
            "mixed_precision": cfg.align.train.mixed_precision, "threads": cfg.threads or torch.get_num_threads(),
            "method_configs": {name: to_dict(c) for name, c in registry.stage_configs(cfg).items()},
            "rows": rows, "protocol": base_protocol()}


def _cell(cfg: ExperimentConfig, method: str, stage: str, steps: int, task: str, p: float, n: int) -> dict:
    """One method's stage, timed and its memory peak measured, in the calling (fresh) process."""
    from booster.data import mix
    from booster.hardware import bf16_products
    from booster.methods import SFT, SFTConfig
    from booster.models.adapters import attach_lora
    from booster.pipeline.attack import Cell
    from booster.pipeline.context import Context
    from booster.training import encode_records, train

    ctx = Context(cfg, progress=False)
    defense = registry.get(method)
    train_cfg = cfg.align.train if stage == "align" else cfg.attack.train
    train_cfg = replace(train_cfg, steps=steps, log_every=steps, checkpoint_every=steps, probe_every=0)
    base, tok = ctx.base_model()
    model = attach_lora(base, cfg.lora, seed=train_cfg.seed)
    streams = {s: encode_records(tok, ctx.provider_stream(s), train_cfg.max_length) for s in ("align", *defense.streams)}
    prepare: dict = {}
    if stage == "attack":
        user = mix(ctx.data_dir, task, n, p, 0)
        if defense.stage == "finetune" and defense.prepare_data is not None:
            user = _prepare(ctx, defense, cfg, tok, model, user, Cell(task, n, p, 0), prepare)
        streams["user"] = encode_records(tok, user, train_cfg.max_length)

    def runner():  # a fresh method each time: a stateful one (Lisa's cycle) starts at step 0
        if stage == "attack" and defense.stage != "finetune":
            return SFT(SFTConfig(stream="user"))
        return defense.factory(registry.config_of(defense, cfg), steps)

    with bf16_products(ctx.device, cfg.bf16_emulation):  # as `booster run` computes
        # Warm-up: one step (allocator, autocast caches, lazy imports), not timed.
        train(model, runner(), streams, replace(train_cfg, steps=1, log_every=1, checkpoint_every=1),
              pad_id=tok.pad_token_id, progress=False)
        before = rss_mb()
        record: dict = {}
        with measure(record):
            train(model, runner(), streams, train_cfg, pad_id=tok.pad_token_id, progress=False)
    return {"method": method, "stage": stage, "steps": steps, "seconds_per_step": round(record["seconds"] / steps, 3),
            "peak_rss_mb": record["peak_rss_mb"], "bf16_kernels": ctx.bf16_kernels,
            "rss_before_mb": round(before, 1) if before else None, **prepare}


def _prepare(ctx, defense, cfg, tok, model, user: list[dict], cell, out: dict) -> list[dict]:
    """The defense's transform of the user's file, timed once per request (``out``: its seconds
    and memory peak, which the per-step numbers do not include)."""
    from booster.pipeline.attack import data_view

    view = data_view(ctx, tok, lambda: model, cell)
    record: dict = {}
    with measure(record):
        user, _ = defense.prepare_data(registry.config_of(defense, cfg), user, view)
    out.update(prepare_seconds=record["seconds"], prepare_peak_rss_mb=record["peak_rss_mb"])
    return user
