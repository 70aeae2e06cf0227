"""``booster screen CONFIG``: what each data filter of a grid would keep of every user file,
without fine-tuning.

A fine-tuning-as-a-service provider filtering uploads wants to know, before paying for any
training, how many harmful samples its filter lets through (leakage) and how many benign ones
it throws away (false removals). The grid records both per cell, but only as a by-product of a
fine-tuning run; this command runs just the filters (the registry rows with ``filters=True``:
the moderation filter, SAFT) on the same user files, with the same model and judges, through
the same ``prepare_data`` the attack stage calls, so its reports are the ones the grid's rows
will carry. SAFT embeds with the aligned model, so the alignment stage runs (or is read from
the cache) first; the moderation filter needs only its judge.

Writes ``screen.json`` (one entry per cell: the cell, the filter's report, the aligned stage's
key, and the protocol) and ``screen.md`` (the leakage table beside the survey's beaver-dam
figures) into the run folder.
"""

from __future__ import annotations

from pathlib import Path

from booster import io
from booster.methods import registry
from booster.pipeline.cells import plan


def filter_cells(cfg) -> list[tuple]:
    """The grid's cells whose method is a data filter."""
    return [c for c in plan(cfg) if (d := registry.chain(c[0]).finetune) is not None and d.filters]


def run_screen(cfg, *, progress: bool = True, log=print) -> list[dict]:
    """Screen every user file of the grid with its filter; write screen.json and screen.md."""
    from tqdm.auto import tqdm

    from booster.errors import BoosterError
    from booster.hardware import bf16_products
    from booster.models.loading import load_tokenizer
    from booster.pipeline.context import Context
    from booster.pipeline.grid import check_pools, check_user_data, ensure_data

    cells = filter_cells(cfg)
    if not cells:
        raise BoosterError(f"booster screen: none of the methods {cfg.methods} is a data filter "
                           f"(filters: {', '.join(d.name for d in registry.DEFENSES if d.filters)})")
    ensure_data(cfg)
    ctx = Context(cfg, progress=progress)
    check_pools(cfg, ctx.manifest)
    check_user_data(cfg)
    tok = load_tokenizer(cfg.model)
    entries, aligned_by = [], {}
    with bf16_products(ctx.device, cfg.bf16_emulation):  # SAFT's forward passes as the attack stage runs them
        for cell in tqdm(cells, desc="screen", unit="file", disable=not progress):
            entries.append(_screen(ctx, tok, aligned_by, *cell))
            log(f"{entries[-1]['method']} {_cell_name(entries[-1])}: {line(entries[-1]['report'])}")
    out = Path(cfg.run_dir())
    out.mkdir(parents=True, exist_ok=True)
    io.write_json(out / "screen.json", {"protocol": _protocol(ctx, list(aligned_by.values())), "cells": entries})
    io.write_text(out / "screen.md", markdown(entries))
    log(f"wrote {out / 'screen.json'} and {out / 'screen.md'}")
    return entries


def _screen(ctx, tok, aligned_by: dict, method: str, task: str, n: int, p: float, seed: int, recipe: str) -> dict:
    """One user file through its filter, exactly as the attack stage would transform it."""
    from booster.pipeline import attack

    chain = registry.chain(method)
    cell = attack.Cell(task, n, p, seed, recipe)
    model = _LazyModel(ctx, aligned_by, chain.align, seed, registry.attack_topology(method, ctx.cfg.attack.topology))
    user = attack.user_data(ctx.data_dir, cell)
    _, report = chain.finetune.prepare_data(registry.config_of(chain.finetune, ctx.cfg), user,
                                            attack.data_view(ctx, tok, model, cell))
    return {"method": method, "task": task, "n": n, "p": p, "seed": seed, "recipe": recipe,
            "align_key": model.align_key, "report": report}


def _cell_name(e: dict) -> str:
    return f"{e['task']} n={e['n']} p={e['p']:g} seed={e['seed']} {e['recipe']}"


def _protocol(ctx, aligned: list) -> dict:
    """How the reports were made: code, machine, config, model, data pools, the alignments
    SAFT embedded with (each filter's judge is named in its own report)."""
    from booster.config import to_dict
    from booster.protocol import base_protocol

    pools = ctx.manifest["pools"]
    return {**base_protocol(), "config": to_dict(ctx.cfg), "model": ctx.model_identity,
            "data": {"dir": str(ctx.data_dir), "manifest_sha256": io.sha256_file(ctx.data_dir / "manifest.json"),
                     "pools": {k: {"count": v["count"], "sha256": v["sha256"]} for k, v in pools.items()}},
            "bf16_kernels": ctx.bf16_kernels, "stages": [a.record for a in aligned]}


class _LazyModel:
    """The model a cell's defense would see before fine-tuning, built on first call only (the
    moderation filter never calls it): the aligned model under the cell's attack topology, as
    ``pipeline.attack`` builds it. Alignments are shared across cells."""

    def __init__(self, ctx, aligned_by: dict, defense, seed: int, topology: str):
        self.ctx, self.aligned_by, self.defense, self.seed, self.topology = ctx, aligned_by, defense, seed, topology
        self.model = None
        self.align_key = None

    def __call__(self):
        from booster.pipeline import align, attack

        if self.model is None:
            if self.defense.name not in self.aligned_by:
                self.aligned_by[self.defense.name] = align.with_adapter(self.ctx, align.run(self.ctx, self.defense))
            aligned = self.aligned_by[self.defense.name]
            self.align_key = aligned.key
            base, _ = self.ctx.base_model()
            self.model = attack.model_before_finetuning(self.ctx, base, aligned, self.seed, self.topology)
        return self.model


def line(report: dict) -> str:
    return (f"kept {report['harmful_kept']}/{report['harmful_in']} harmful (leakage {_pct(report['leakage_pct'])}), "
            f"removed {report['benign_removed']}/{report['benign_in']} benign "
            f"(false removals {_pct(report['false_removal_pct'])})")


def _pct(x) -> str:
    return "–" if x is None else f"{x:.1f} %"


def markdown(entries: list[dict]) -> str:
    """The leakage table: one row per screened file."""
    from booster.methods.modfilter import BEAVER_DAM_SURVEY

    rows = ["| filter | attack | p | seed | n | harmful kept | leakage | benign removed | false removals |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for e in entries:
        r = e["report"]
        rows.append(f"| {e['method']} | {e['recipe']} ({e['task']}) | {e['p']:g} | {e['seed']} | {r['n_in']} | "
                    f"{r['harmful_kept']}/{r['harmful_in']} | {_pct(r['leakage_pct'])} | "
                    f"{r['benign_removed']}/{r['benign_in']} | {_pct(r['false_removal_pct'])} |")
    survey = (f"For comparison, the survey measured beaver-dam-7b as a filter at {BEAVER_DAM_SURVEY['leakage_pct']} % "
              f"leakage and {BEAVER_DAM_SURVEY['false_removal_pct']} % false removals ({BEAVER_DAM_SURVEY['source']}).")
    return ("# What the data filters keep of each user file\n\n"
            "Leakage: harmful samples kept / harmful samples in the file; false removals: benign samples "
            "removed / benign samples in the file (`booster screen`, the filters' own `prepare_data`).\n\n"
            + "\n".join(rows) + "\n\n" + survey + "\n")
