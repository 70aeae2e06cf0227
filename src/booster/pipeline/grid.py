"""``booster run CONFIG.yaml``: expand the grid, run every cached stage, aggregate, report.

Order: for each method, align once (with its alignment-stage defense, or the reference SFT) and
evaluate the aligned model ("before attack"); then attack it at every cell (task, n, p, seed),
with its fine-tuning-stage defense or the plain attack, repair the attacked model when the
method is a post-fine-tuning defense, and evaluate it. Every stage is cached by its inputs
(``cache.py``; recipes in ``align.py``, ``attack.py``, ``repair.py``, ``evaluate.py``), so
re-running the command after an interruption skips finished stages and resumes the one that was
cut off from its last checkpoint. The cells are in ``cells.py``, the summary rows in
``rows.py``, the run folder in ``rundir.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

from booster.errors import BoosterError
from booster.data.attacks import DEFAULT as DEFAULT_RECIPE
from booster.methods import registry
from booster.pipeline.cells import grid_tasks, method_cells, plan
from booster.pipeline.config import ExperimentConfig
from booster.pipeline.context import PROVIDER_STREAMS, eval_tasks, pool_sha256
from booster.pipeline.rows import SUMMARY_KEYS

__all__ = ["SUMMARY_KEYS", "check_config", "grid_tasks", "plan", "run_experiment"]


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
    check_user_data(cfg)
    resolve_model(cfg.model)
    warn_slow_dtype(cfg)


def check_pools(cfg: ExperimentConfig, manifest: dict | None = None) -> None:
    """Every pool the grid reads must exist before the first step of training."""
    from booster.data import attacks, load_manifest

    data_dir = Path(cfg.data.dir)
    manifest = load_manifest(data_dir) if manifest is None else manifest
    cells = plan(cfg)
    tasks = grid_tasks(cells)
    needed = ["alignment", "attacker_harmful"] + [f"{t}_train" for t in tasks]
    needed += [pool for _, t, _, _, _, r in cells for pool in attacks.get(r).pools(t)]
    for method in cfg.methods:  # the provider's data every stage of every method reads
        for d in filter(None, vars(registry.chain(method)).values()):
            needed += [PROVIDER_STREAMS[s][0] for s in d.streams if s in PROVIDER_STREAMS]
    for task in tasks:
        needed += [t.pool for t, _ in eval_tasks(cfg, task)]
    if cfg.align.train.probe_every:  # the alignment diagnostics' held-out harmful examples
        needed.append("provider_harmful")
    for name in dict.fromkeys(needed):
        pool_sha256(manifest, data_dir, name)
    if cfg.align.train.probe_every:  # none of them in the harmful stream (pipeline.align._diagnostics)
        held_out = manifest["pools"]["provider_harmful"]["count"] - cfg.align.harmful_samples
        if cfg.align.probe_samples > held_out:
            raise BoosterError(f"align.probe_samples={cfg.align.probe_samples} but provider_harmful has only "
                               f"{max(held_out, 0)} examples outside the harmful stream "
                               f"(align.harmful_samples={cfg.align.harmful_samples})")
    # every recipe's n fits the records it draws from (an error names the recipe and n)
    src = attacks.Sources(data_dir)
    for task, n, p, recipe in dict.fromkeys((c[1], c[2], c[3], c[5]) for c in cells):
        attacks.check_size(src, recipe, task, n, p)


def check_user_data(cfg: ExperimentConfig) -> None:
    """The fine-tuning-stage defenses' checks of every user file the grid fine-tunes on."""
    from booster.pipeline.attack import check_user_data as check

    check(cfg, plan(cfg), Path(cfg.data.dir))


def warn_slow_dtype(cfg: ExperimentConfig, device=None) -> None:
    """Warn when bf16 would run in PyTorch's slow generic kernel (``device``: default, the one
    the stages use)."""
    import sys

    if cfg.bf16_emulation:  # bf16 products then run in float32: never the slow kernel
        return
    from booster.hardware import bf16_warning, default_device

    device = device or default_device()
    message = bf16_warning(cfg.dtype_settings(), device, cfg.bf16_emulation)
    if message:
        print(f"booster: warning: {message}", file=sys.stderr)



def run_experiment(cfg: ExperimentConfig, *, progress: bool = True, log=print, judge=None) -> dict:
    """Run (or resume) the whole grid; write the run folder; return the summary.

    ``judge``: a judge object to use instead of loading ``cfg.eval.judge`` (see
    ``booster.evaluation.judges``); its identity is recorded like any other judge's."""
    import torch
    from accelerate import PartialState

    from booster.hardware import bf16_products
    from booster.pipeline.context import Context

    state = PartialState(cpu=not torch.cuda.is_available())
    with state.main_process_first():  # one process prepares the data, the others then read it
        ensure_data(cfg)
    ctx = Context(cfg, progress=progress and state.is_main_process, judge=judge)
    check_pools(cfg, ctx.manifest)
    check_user_data(cfg)
    if state.is_main_process:
        warn_slow_dtype(ctx.cfg, ctx.device)
    else:
        log = lambda *_: None  # noqa: E731
    out = Path(cfg.run_dir())
    with state.main_process_first():
        imported = ctx.cache.import_ledgers(out) if state.is_main_process else {}
    for src, n in imported.items():
        log(f"imported {n} finished stages from {src}"
            + (" (the run folder's ledger)" if src == out / "stages" else " (another run folder's ledger)"))
    # bf16 products are chosen for the device the context resolved, the one every stage computes on
    with bf16_products(ctx.device, cfg.bf16_emulation):
        grid = Grid(ctx, log)
        grid.run(progress)
    if not state.is_main_process:
        return {"rows": grid.rows}
    from booster.pipeline import rundir

    protocol = rundir.write(ctx, out, list(grid.kept.values()), grid.rows, grid.histories, log)
    return {"rows": grid.rows, "protocol": protocol}


class Grid:
    """Walks the cells: every stage through its recipe, every result kept for the run folder."""

    def __init__(self, ctx, log):
        self.ctx, self.log = ctx, log
        self.rows: list[dict] = []
        self.kept: dict = {}  # (kind, key) -> StageResult, in the order first reached
        self.histories: dict = {"align": {}, "attack": []}

    def keep(self, *results) -> None:
        for r in results:
            self.kept.setdefault((r.kind, r.key), r)

    def run(self, progress: bool) -> None:
        from tqdm.auto import tqdm

        from booster.pipeline import evaluate, rows

        cells = plan(self.ctx.cfg)
        if self.ctx.cfg.unaligned:
            for task in grid_tasks(cells):
                evals = evaluate.run(self.ctx, evaluate.ModelState(), task)
                self.keep(*evals.values())
                self.rows.append(rows.unaligned(task, rows.metrics(evals, task, self.ctx.cfg.eval.extra_tasks)))
        bar = tqdm(total=len(cells), desc="runs", unit="run", disable=not progress)
        for method in self.ctx.cfg.methods:
            by_task = method_cells(cells, method)
            if by_task:
                self.method(method, by_task, bar)
        bar.close()

    def method(self, method: str, by_task: dict, bar) -> None:
        """Align once, then for each task: evaluate before the attack, attack every cell."""
        from booster.pipeline import align, evaluate, rows

        ctx, chain = self.ctx, registry.chain(method)
        bar.set_description(f"align {chain.align.name}")
        aligned = align.run(ctx, chain.align)
        self.keep(aligned)
        self.histories["align"][chain.align.name] = json.loads((aligned.path / "history.json").read_text())
        for task, cells in by_task.items():
            before = evaluate.run(ctx, evaluate.ModelState(aligned), task)
            self.keep(*before.values())
            mb = rows.metrics(before, task)
            self.log(f"{method} ({chain.align.name}-aligned), before attack: {rows.line(mb)}")
            for cell in cells:
                bar.set_description(f"{method} {task} n={cell.n} p={cell.p} seed={cell.seed}{recipe_tag(cell)}")
                self.cell(method, chain, aligned, cell, mb)
                bar.update(1)

    def cell(self, method: str, chain, aligned, cell, mb: dict) -> None:
        """Attack (and repair) one cell, evaluate it, record its row and run files."""
        from booster.pipeline import attack, evaluate, repair, rows, rundir

        ctx = self.ctx
        topology = registry.attack_topology(method, ctx.cfg.attack.topology)
        attacked = attack.run(ctx, aligned, chain.finetune, cell, topology)
        repaired = repair.run(ctx, aligned, attacked, chain.post) if chain.post else None
        system = attack.eval_system_prompt(ctx, chain.finetune, attacked)
        evals = evaluate.run(ctx, evaluate.ModelState(aligned, attacked, repaired, system), cell.task)
        self.keep(attacked, *([repaired] if repaired else []), *evals.values())
        m = rows.metrics(evals, cell.task, self.ctx.cfg.eval.extra_tasks)
        self.log(f"{method} {cell.task} n={cell.n} p={cell.p} seed={cell.seed}{recipe_tag(cell)}: {rows.line(m)}")
        run = {"method": method, "task": cell.task, "n": cell.n, "p": cell.p, "seed": cell.seed}
        if cell.recipe != DEFAULT_RECIPE:  # absent for the default, so older histories read the same
            run["attack_recipe"] = cell.recipe
        self.histories["attack"].append({**run, "history": json.loads((attacked.path / "history.json").read_text())})
        self.rows.append(rows.attacked(method, chain, cell, topology, mb, m, aligned, attacked,
                                       repaired, registry.reference().name, system))
        if ctx.state.is_main_process:
            name = f"{method}-{cell.task}-n{cell.n}-p{cell.p}-seed{cell.seed}{recipe_tag(cell, '-')}"
            rundir.copy_run(Path(ctx.cfg.run_dir()) / "runs" / name, attacked, evals, repaired)


def recipe_tag(cell, sep: str = " ") -> str:
    """The attack recipe in names and log lines; nothing for the default one."""
    return "" if cell.recipe == DEFAULT_RECIPE else f"{sep}{cell.recipe}"
